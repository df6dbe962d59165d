#include <adx/detectors/sparse_autoencoder/sparse_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

SparseAutoencoder::SparseAutoencoder(const AutoencoderOptions& options) : Autoencoder(options) { validate_options(); }

void SparseAutoencoder::validate_options() const {
  Autoencoder::validate_options();
  OptionChecks("").above("sparsity_weight", options_.sparsity_weight(), 0.0);
}

ADX_BUILTIN_DETECTOR(sparse_autoencoder, factory_for<SparseAutoencoder>(), "autoencoder with a KL sparsity penalty")

}  // namespace adx
