#pragma once
// Everything adx offers, in one include: the base and every detector's class.
#include <adx/base.hpp>
#include <adx/detectors/anogan/anogan.hpp>
#include <adx/detectors/autoencoder/autoencoder.hpp>
#include <adx/detectors/conv_autoencoder/conv_autoencoder.hpp>
#include <adx/detectors/deep_svdd/deep_svdd.hpp>
#include <adx/detectors/denoising_autoencoder/denoising_autoencoder.hpp>
#include <adx/detectors/f_anogan/f_anogan.hpp>
#include <adx/detectors/ganomaly/ganomaly.hpp>
#include <adx/detectors/padim/padim.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/detectors/rotation/rotation.hpp>
#include <adx/detectors/simclr/simclr.hpp>
#include <adx/detectors/skip_ganomaly/skip_ganomaly.hpp>
#include <adx/detectors/spade/spade.hpp>
#include <adx/detectors/sparse_autoencoder/sparse_autoencoder.hpp>
#include <adx/detectors/vae/vae.hpp>
