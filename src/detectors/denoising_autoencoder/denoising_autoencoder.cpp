#include <adx/detectors/denoising_autoencoder/denoising_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

DenoisingAutoencoder::DenoisingAutoencoder(const AutoencoderOptions& options) : Autoencoder(options) { validate_options(); }

void DenoisingAutoencoder::validate_options() const {
  Autoencoder::validate_options();
  const OptionChecks c("");
  c.that(options_.noise() != NoiseKind::None, "noise", "must be gaussian, masking or dropout: {} trains on noisy inputs", type());
  c.above("noise_level", options_.noise_level(), 0.0);
}

ADX_BUILTIN_DETECTOR(denoising_autoencoder, factory_for<DenoisingAutoencoder>(),
                     "autoencoder trained to undo Gaussian/masking/dropout noise")

}  // namespace adx
