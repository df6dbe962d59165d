#pragma once
// Sparse autoencoder: a sigmoid code with the KL sparsity penalty
// beta * sum_j KL(rho || rho_hat_j), rho = 0.05 by default.
#include <adx/detectors/autoencoder/autoencoder.hpp>

namespace adx {

/// AutoencoderOptions with the sparsity penalty on (beta 0.1, rho 0.05) and a wider code.
struct SparseAutoencoderOptions : AutoencoderOptions {
  SparseAutoencoderOptions() {
    sparsity_weight(0.1);
    sparsity_target(0.05);
    bottleneck(64);
  }
};

class SparseAutoencoder : public Autoencoder {
 public:
  using Options = SparseAutoencoderOptions;
  explicit SparseAutoencoder(const AutoencoderOptions& options = Options());
  std::string type() const override { return "sparse_autoencoder"; }
  /// The autoencoder's checks, and the penalty the variant needs's own.
  void validate_options() const override;
};

}  // namespace adx
