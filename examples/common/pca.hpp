#pragma once
// Principal-component reconstruction, the classic baseline for tables and image patches: keep the
// components that explain a share of the training variance, score a row by its squared residual.
#include <torch/torch.h>

#include <algorithm>

namespace adx::examples {

struct PcaModel {
  torch::Tensor mean, scale, components;  ///< D, D (ones unless standardised), k x D; float64
};

/// Fits on the rows of `train` (N x D). `standardise` divides each column by its training spread
/// (constant columns by 1). The covariance's eigenvectors are the components: D x D, whatever N is.
inline PcaModel fit_pca(const torch::Tensor& train, double explained, bool standardise) {
  const auto x = train.to(torch::kFloat64);
  PcaModel model;
  model.mean = x.mean(0);
  const auto spread = x.std(0, false);
  model.scale = standardise ? torch::where(spread > 0, spread, torch::ones_like(spread)) : torch::ones_like(spread);
  const auto centred = (x - model.mean) / model.scale;
  const auto covariance = centred.t().matmul(centred) / static_cast<double>(std::max<int64_t>(1, x.size(0)));
  const auto eig = torch::linalg::eigh(covariance, "L");
  const auto variance = std::get<0>(eig).flip(0).clamp_min(0);  // descending
  const auto vectors = std::get<1>(eig).flip(1);
  const auto share = variance.cumsum(0) / variance.sum().clamp_min(1e-300);
  const int64_t k = std::min<int64_t>((share < explained).sum().item<int64_t>() + 1, variance.size(0));
  model.components = vectors.slice(1, 0, k).t().contiguous();
  return model;
}

/// Squared reconstruction error of each row of `rows` (M x D), float64.
inline torch::Tensor pca_residual(const PcaModel& model, const torch::Tensor& rows) {
  const auto y = (rows.to(torch::kFloat64) - model.mean) / model.scale;
  const auto reconstructed = y.matmul(model.components.t()).matmul(model.components);
  return (y - reconstructed).pow(2).sum(1);
}

}  // namespace adx::examples
