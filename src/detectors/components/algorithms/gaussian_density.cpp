#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/detectors/components/algorithms/gaussian_density.hpp>

namespace adx {

GaussianDensity fit_gaussian_density(const torch::Tensor& rows) {
  ADX_CHECK_AS(ShapeError, rows.dim() == 2 && rows.size(0) >= 2 && rows.size(1) >= 1,
               "a Gaussian density needs N x D rows with N >= 2, got {}", shape_string(rows.sizes().vec()));
  const auto x = rows.detach().to(torch::kCPU, torch::kFloat64);
  const double n = static_cast<double>(x.size(0)), d = static_cast<double>(x.size(1));
  GaussianDensity density;
  density.mean = x.mean(0);
  const auto centred = x - density.mean;
  const auto covariance = centred.t().mm(centred) / n;
  // Ledoit-Wolf shrinkage, term for term as scikit-learn's ledoit_wolf_shrinkage.
  const auto variances = centred.pow(2).sum(0) / n;
  const double mu = variances.sum().item<double>() / d;
  const auto squared = centred.pow(2);
  const double beta_sum = squared.t().mm(squared).sum().item<double>();
  const double delta_sum = centred.t().mm(centred).pow(2).sum().item<double>() / (n * n);
  double beta = (beta_sum / n - delta_sum) / (d * n);
  const double delta = (delta_sum - 2.0 * mu * variances.sum().item<double>() + d * mu * mu) / d;
  beta = std::min(beta, delta);
  density.shrinkage = beta == 0 ? 0.0 : beta / delta;
  const auto shrunk = (1 - density.shrinkage) * covariance +
                      density.shrinkage * mu * torch::eye(x.size(1), torch::kFloat64);
  density.precision = torch::linalg::pinv(shrunk);
  return density;
}

torch::Tensor padim_squared_distances(const torch::Tensor& embeddings, const torch::Tensor& mean,
                                      const torch::Tensor& inverse_covariance) {
  const auto delta = embeddings - mean.unsqueeze(1);  // P x n x d
  return (torch::bmm(delta, inverse_covariance) * delta).sum(2).clamp_min(0);
}

torch::Tensor padim_distances(const torch::Tensor& embeddings, const torch::Tensor& mean,
                              const torch::Tensor& inverse_covariance) {
  return padim_squared_distances(embeddings, mean, inverse_covariance).sqrt();
}

torch::Tensor mahalanobis_distances(const GaussianDensity& density, const torch::Tensor& rows) {
  ADX_CHECK_AS(ShapeError, rows.dim() == 2 && density.mean.defined() && rows.size(1) == density.mean.size(0),
               "Mahalanobis distances need N x {} rows, got {}", density.mean.defined() ? density.mean.size(0) : 0,
               shape_string(rows.sizes().vec()));
  const auto options = rows.options().dtype(torch::kFloat32);
  // One position of PaDiM's per-position distances.
  return padim_distances(rows.to(torch::kFloat32).unsqueeze(0), density.mean.to(options).unsqueeze(0),
                         density.precision.to(options).unsqueeze(0))
      .squeeze(0);
}

torch::Tensor padim_left_out_distances(const torch::Tensor& distances, int64_t images) {
  ADX_CHECK_AS(ValueError, images >= 3, "leave-one-out distances need at least 3 images, got {}", images);
  const double n = static_cast<double>(images), c = n / (n - 1.0);
  const auto m = distances.square();
  // 1 - c m / (n - 1) > 0 for a regularised covariance (leverage below 1); the clamp guards rounding.
  const auto denominator = (1.0 - m * (c / (n - 1.0))).clamp_min(1e-12);
  return (m * (c * c) / denominator).sqrt();
}

PadimGaussian padim_gaussian(const torch::Tensor& embeddings, double regularization) {
  const int64_t n = embeddings.size(1), d = embeddings.size(2);
  PadimGaussian g;
  g.mean = embeddings.mean(1);
  const auto centred = embeddings - g.mean.unsqueeze(1);
  const auto identity = torch::eye(d, embeddings.options());
  const auto covariance =
      torch::bmm(centred.transpose(1, 2), centred) / static_cast<double>(n - 1) + regularization * identity;
  g.inverse_covariance = torch::linalg_inv(covariance);
  return g;
}

}  // namespace adx
