#pragma once
// Denoising autoencoder: the MLP autoencoder trained to reconstruct clean
// inputs from corrupted ones (Gaussian, masking or dropout noise).
#include <adx/detectors/autoencoder/autoencoder.hpp>

namespace adx {

/// AutoencoderOptions with Gaussian input noise (sigma 0.2) switched on.
struct DenoisingAutoencoderOptions : AutoencoderOptions {
  DenoisingAutoencoderOptions() {
    noise(NoiseKind::Gaussian);
    noise_level(0.2);
  }
};

class DenoisingAutoencoder : public Autoencoder {
 public:
  using Options = DenoisingAutoencoderOptions;
  explicit DenoisingAutoencoder(const AutoencoderOptions& options = Options()) : Autoencoder(options) {
    ADX_CHECK_AS(OptionError, options.noise() != NoiseKind::None && options.noise_level() > 0,
                 "denoising_autoencoder needs input noise: set noise to gaussian, masking or dropout and "
                 "noise_level > 0 (got {} / {})",
                 detail::option_to_string(options.noise()), options.noise_level());
  }
  std::string type() const override { return "denoising_autoencoder"; }
};

}  // namespace adx
