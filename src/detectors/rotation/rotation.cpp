#include <adx/detectors/rotation/rotation.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

void RotationOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .at_least("transforms_per_image", transforms_per_image(), 0)
      .each_at_least("channels", channels(), 1)
      .at_least("convs_per_stage", convs_per_stage(), 1);
}

namespace {

// psi^-1 by Newton's method from Minka's initial guess (the GEOM code's inv_psi, 5 steps).
torch::Tensor inverse_digamma(const torch::Tensor& y) {
  const double psi_one = -0.57721566490153286;  // digamma(1) = -Euler's gamma
  auto x = torch::where(y >= -2.22, torch::exp(y) + 0.5, -1.0 / (y - psi_one));
  for (int i = 0; i < 5; ++i) x = x - (torch::digamma(x) - y) / torch::polygamma(1, x);
  return x;
}

}  // namespace

torch::Tensor dirichlet_mle(const torch::Tensor& log_probabilities) {
  ADX_CHECK_AS(ShapeError, log_probabilities.dim() == 2 && log_probabilities.size(0) >= 2,
               "a Dirichlet fit needs N x K log-probabilities with N >= 2, got {}",
               shape_string(log_probabilities.sizes().vec()));
  const auto log_p = log_probabilities.to(torch::kCPU, torch::kFloat64);
  const double n = static_cast<double>(log_p.size(0)), k = static_cast<double>(log_p.size(1));
  const auto mean = log_p.exp().mean(0);          // f
  const auto log_p_hat = log_p.mean(0);           // mean log p
  // Approximate sum of the parameters (the GEOM code's calc_approx_alpha_sum).
  const double psi_one = -0.57721566490153286;
  const double denominator =
      (n * (mean * mean.log()).sum() - (mean * log_p.sum(0)).sum()).item<double>();
  const double alpha_sum = n * (k - 1) * (-psi_one) / denominator;
  auto alpha = mean * (std::isfinite(alpha_sum) && alpha_sum > 0 ? alpha_sum : 1.0);
  // Minka's fixed point alpha <- psi^-1(psi(sum alpha) + mean log p), up to 1000 steps.
  for (int iteration = 0; iteration < 1000; ++iteration) {
    const auto next = inverse_digamma(torch::digamma(alpha.sum()) + log_p_hat);
    const double change = (next - alpha).norm().item<double>();
    alpha = next;
    if (change < 1e-9) break;
  }
  return alpha;
}

ADX_BUILTIN_DETECTOR(rotation, factory_for<Rotation>(),
                     "predicts rotations / GEOM transformations; score = -log-likelihood")

}  // namespace adx
