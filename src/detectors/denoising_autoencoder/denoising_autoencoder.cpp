#include <adx/detectors/denoising_autoencoder/denoising_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

DenoisingAutoencoder::DenoisingAutoencoder(const AutoencoderOptions& options) : Autoencoder(options) {
  ADX_CHECK_AS(OptionError, options.noise() != NoiseKind::None && options.noise_level() > 0,
               "denoising_autoencoder needs input noise: set noise to gaussian, masking or dropout and "
               "noise_level > 0 (got {} / {})",
               detail::option_to_string(options.noise()), options.noise_level());
}

ADX_BUILTIN_DETECTOR(denoising_autoencoder, factory_for<DenoisingAutoencoder>(),
                     "autoencoder trained to undo Gaussian/masking/dropout noise")

}  // namespace adx
