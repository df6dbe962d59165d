#pragma once
// Gaussian densities of feature rows: one with Ledoit and Wolf's shrunk covariance (CutPaste's
// density estimate; its reference uses scikit-learn's LedoitWolf), and PaDiM's Gaussian per position with
// its Mahalanobis distances, in-sample and leave-one-image-out.
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

/// Squared Mahalanobis distance of `embeddings` (P x n x d) to each position's Gaussian (mean P x d,
/// inverse covariance P x d x d), rounding below 0 clamped to 0: P x n.
torch::Tensor padim_squared_distances(const torch::Tensor& embeddings, const torch::Tensor& mean,
                                      const torch::Tensor& inverse_covariance);

/// Mahalanobis distance: the square root of padim_squared_distances, P x n.
torch::Tensor padim_distances(const torch::Tensor& embeddings, const torch::Tensor& mean,
                              const torch::Tensor& inverse_covariance);

/// PaDiM's Gaussian of each position: the mean (P x d) and the inverse of the unbiased
/// covariance + `regularization` * I (P x d x d) of `embeddings` (P positions x n images x d).
struct PadimGaussian {
  torch::Tensor mean, inverse_covariance;
};
PadimGaussian padim_gaussian(const torch::Tensor& embeddings, double regularization);

/// Leave-one-image-out distances from the in-sample ones (P x n) of the n images the Gaussian was fitted
/// on: the distance of each image to the Gaussian of the other n - 1, computed in closed form. Removing
/// x_i moves the mean to mu_-i (so x_i - mu_-i = c u, u = x_i - mu, c = n / (n - 1)) and the scatter by
/// -c u u^T; keeping the normaliser n - 1 makes the covariance change rank one, and Sherman-Morrison
/// gives d_-i^2 = c^2 m / (1 - c m / (n - 1)) with m the in-sample squared distance. (An exact refit
/// divides by n - 2: a factor (n - 1) / (n - 2) on the data part of the covariance.)
torch::Tensor padim_left_out_distances(const torch::Tensor& distances, int64_t images);

/// Mahalanobis distance of each row (N x D) to the density: N values on the rows' device, float32.
torch::Tensor mahalanobis_distances(const GaussianDensity& density, const torch::Tensor& rows);

}  // namespace adx
