#pragma once
// Image losses of the self-supervised inspection methods.
#include <torch/torch.h>

namespace adx::nn {

/// Mean structural similarity of two N x C x H x W images with values in a range of `value_range`
/// (Wang et al. 2004, as DRAEM's reference computes it): 11 x 11 Gaussian windows (sigma 1.5) per
/// channel with zero padding, C1 = (0.01 L)^2, C2 = (0.03 L)^2.
inline torch::Tensor ssim(const torch::Tensor& a, const torch::Tensor& b, double value_range = 1.0,
                          int64_t window_size = 11) {
  const int64_t channels = a.size(1);
  const auto g = torch::exp(-(torch::arange(window_size, a.options()) - static_cast<double>(window_size / 2)).pow(2) /
                            (2 * 1.5 * 1.5));
  const auto g1 = g / g.sum();
  const auto window = torch::outer(g1, g1).expand({channels, 1, window_size, window_size}).contiguous();
  namespace F = torch::nn::functional;
  const auto options = F::Conv2dFuncOptions().padding(window_size / 2).groups(channels);
  auto filter = [&](const torch::Tensor& x) { return F::conv2d(x, window, options); };
  const auto mu_a = filter(a), mu_b = filter(b);
  const auto var_a = filter(a * a) - mu_a * mu_a, var_b = filter(b * b) - mu_b * mu_b;
  const auto covariance = filter(a * b) - mu_a * mu_b;
  const double c1 = std::pow(0.01 * value_range, 2), c2 = std::pow(0.03 * value_range, 2);
  const auto map = ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
  return map.mean();
}

/// Focal loss (Lin et al. 2017) of per-pixel class probabilities `probabilities` (N x 2 x H x W, a softmax)
/// against a 0/1 mask (N x 1 x H x W), as DRAEM's reference computes it: the one-hot target smoothed to
/// [1e-5, 1 - 1e-5], p_t = its dot product with the probabilities + 1e-5, loss = mean of
/// -(1 - p_t)^gamma log p_t.
inline torch::Tensor focal_loss(const torch::Tensor& probabilities, const torch::Tensor& mask, double gamma = 2.0) {
  constexpr double smooth = 1e-5;
  const auto anomalous = mask.to(probabilities.scalar_type());
  const auto one_hot = torch::cat({1 - anomalous, anomalous}, 1).clamp(smooth, 1 - smooth);
  const auto p_t = (one_hot * probabilities).sum(1) + smooth;
  return (-(1 - p_t).pow(gamma) * p_t.log()).mean();
}

}  // namespace adx::nn
