#include <adx/detectors/sparse_autoencoder/sparse_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

SparseAutoencoder::SparseAutoencoder(const AutoencoderOptions& options) : Autoencoder(options) {
  ADX_CHECK_AS(OptionError, options.sparsity_weight() > 0, "sparse_autoencoder needs sparsity_weight > 0, got {}",
               options.sparsity_weight());
}

ADX_BUILTIN_DETECTOR(sparse_autoencoder, factory_for<SparseAutoencoder>(), "autoencoder with a KL sparsity penalty")

}  // namespace adx
