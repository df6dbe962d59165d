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
  explicit DenoisingAutoencoder(const AutoencoderOptions& options = Options());
  std::string type() const override { return "denoising_autoencoder"; }
  /// The autoencoder's checks, and the noise the variant needs's own.
  void validate_options() const override;
};

}  // namespace adx
