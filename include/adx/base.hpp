#pragma once
// Everything adx offers except the individual detectors: data, input kinds,
// metrics, thresholds, training, model files, the detector interface and the
// registry. Enough to use any detector by name (make_detector, load) or to
// write one; include a detector's own header (adx/detectors/<name>/<name>.hpp)
// for its class, so that touching one detector does not rebuild every user.
#include <adx/core/error.hpp>
#include <adx/core/options.hpp>
#include <adx/core/progress.hpp>
#include <adx/core/runtime.hpp>
#include <adx/data/data.hpp>
#include <adx/data/formats/edge_lists.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/data/formats/video_io.hpp>
#include <adx/data/generators/injected_graphs.hpp>
#include <adx/data/generators/synthetic_industrial.hpp>
#include <adx/data/generators/synthetic_series.hpp>
#include <adx/data/generators/synthetic_video.hpp>
#include <adx/data/graphs.hpp>
#include <adx/data/input_kind.hpp>
#include <adx/data/synthesis/poisson_blend.hpp>
#include <adx/data/synthesis/synthesis.hpp>
#include <adx/data/transforms.hpp>
#include <adx/detectors/detector.hpp>
#include <adx/detectors/registry.hpp>
#include <adx/detectors/stream.hpp>
#include <adx/io/model_file.hpp>
#include <adx/io/state_dict.hpp>
#include <adx/metrics/metrics.hpp>
#include <adx/metrics/pixel_metrics.hpp>
#include <adx/metrics/pixel_tensors.hpp>
#include <adx/metrics/series_metrics.hpp>
#include <adx/serve/monitoring.hpp>
#include <adx/threshold/threshold.hpp>
#include <adx/train/trainer.hpp>
