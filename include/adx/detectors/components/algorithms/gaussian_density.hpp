#pragma once
// Gaussian densities of feature rows: one with Ledoit and Wolf's shrunk covariance (CutPaste's
// density estimate; its reference uses scikit-learn's LedoitWolf), and the Mahalanobis distances
// to one Gaussian per position that PaDiM fits.
#include <torch/torch.h>

namespace adx {

struct GaussianDensity {
  torch::Tensor mean;       ///< D, float64
  torch::Tensor precision;  ///< D x D, the inverse of the shrunk covariance, float64
  double shrinkage = 0;     ///< Ledoit and Wolf's weight of the scaled identity, in [0, 1]
};

/// Fits the mean and the covariance (1 - s) S + s (tr S / D) I of `rows` (N x D, N >= 2), S the maximum-likelihood
/// covariance and s Ledoit and Wolf's shrinkage, computed as scikit-learn's ledoit_wolf_shrinkage; in float64.
GaussianDensity fit_gaussian_density(const torch::Tensor& rows);

/// Mahalanobis distance of `embeddings` (P x n x d) to each position's Gaussian (mean P x d, inverse
/// covariance P x d x d): P x n.
torch::Tensor padim_distances(const torch::Tensor& embeddings, const torch::Tensor& mean,
                              const torch::Tensor& inverse_covariance);

/// Mahalanobis distance of each row (N x D) to the density: N values on the rows' device, float32.
torch::Tensor mahalanobis_distances(const GaussianDensity& density, const torch::Tensor& rows);

}  // namespace adx
