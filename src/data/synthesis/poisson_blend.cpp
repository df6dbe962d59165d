#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/synthesis/poisson_blend.hpp>

#include <torch/torch.h>

#include <array>
#include <cmath>

namespace adx {
namespace {

// The four neighbours of a pixel, as (row, column) offsets.
constexpr std::array<std::array<int64_t, 2>, 4> kNeighbours{{{-1, 0}, {1, 0}, {0, -1}, {0, 1}}};

// `x` seen from each pixel's neighbour at (dy, dx). Only used where that neighbour lies in the crop.
at::Tensor neighbour(const at::Tensor& x, int64_t dy, int64_t dx) { return torch::roll(x, {-dy, -dx}, {-2, -1}); }

}  // namespace

at::Tensor poisson_blend(const at::Tensor& target, const at::Tensor& source, const at::Tensor& mask,
                         const PoissonBlendOptions& options) {
  ADX_CHECK_AS(ShapeError, target.defined() && target.dim() == 3 && source.defined() && source.sizes() == target.sizes(),
               "poisson_blend needs a C x H x W target and a source of its shape, got {} and {}",
               target.defined() ? shape_string(target.sizes().vec()) : "nothing",
               source.defined() ? shape_string(source.sizes().vec()) : "nothing");
  ADX_CHECK_AS(ShapeError, mask.defined() && mask.dim() == 2 && mask.size(0) == target.size(1) && mask.size(1) == target.size(2),
               "poisson_blend needs an H x W mask for a {} target, got {}", shape_string(target.sizes().vec()),
               mask.defined() ? shape_string(mask.sizes().vec()) : "nothing");
  ADX_CHECK_AS(ValueError, torch::isfinite(target).all().item<bool>() && torch::isfinite(source).all().item<bool>(),
               "poisson_blend needs finite target and source values");
  ADX_CHECK_AS(OptionError, options.max_iterations >= 0 && options.tolerance > 0,
               "poisson_blend needs max_iterations >= 0 and tolerance > 0, got {} and {}", options.max_iterations,
               options.tolerance);
  torch::NoGradGuard no_grad;
  const int64_t height = target.size(1), width = target.size(2);
  auto inside = mask.to(target.device()).ne(0);
  // The unknowns need all four neighbours: pixels on the image border stay the target's.
  inside.slice(0, 0, 1).fill_(false);
  inside.slice(0, height - 1).fill_(false);
  inside.slice(1, 0, 1).fill_(false);
  inside.slice(1, width - 1).fill_(false);
  if (!inside.any().item<bool>()) return target.clone();

  // Work on the mask's bounding box grown by one pixel: every unknown's neighbours lie in it.
  const auto rows = inside.any(1).nonzero().reshape({-1}), cols = inside.any(0).nonzero().reshape({-1});
  const int64_t top = rows.min().item<int64_t>() - 1, bottom = rows.max().item<int64_t>() + 2;
  const int64_t left = cols.min().item<int64_t>() - 1, right = cols.max().item<int64_t>() + 2;
  const auto crop = [&](const at::Tensor& x) { return x.slice(-2, top, bottom).slice(-1, left, right); };
  const auto t = crop(target).to(torch::kFloat64), g = crop(source).to(torch::kFloat64);
  const auto m = crop(inside).to(torch::kFloat64).unsqueeze(0);  // 1 x h x w

  // Right-hand side: the guidance field's divergence, plus the known boundary values.
  auto rhs = torch::zeros_like(t);
  for (const auto& [dy, dx] : kNeighbours) {
    auto v = g - neighbour(g, dy, dx);
    if (options.mixed) {
      const auto vt = t - neighbour(t, dy, dx);
      v = torch::where(vt.abs() > v.abs(), vt, v);
    }
    rhs += v + (1 - neighbour(m, dy, dx)) * neighbour(t, dy, dx);
  }
  rhs *= m;
  // The system 4 f_p - sum of inside neighbours f_q = rhs_p is symmetric positive definite: conjugate gradients.
  const auto apply = [&](const at::Tensor& x) {
    auto out = 4 * x;
    for (const auto& [dy, dx] : kNeighbours) out -= neighbour(x, dy, dx);
    return out * m;
  };
  auto x = t * m;
  auto r = rhs - apply(x);
  auto p = r.clone();
  double rs = r.square().sum().item<double>();
  const double stop = options.tolerance * options.tolerance * std::max(rhs.square().sum().item<double>(), 1e-300);
  const int64_t iterations =
      options.max_iterations > 0 ? options.max_iterations : std::max<int64_t>(50, 4 * std::max(bottom - top, right - left));
  for (int64_t it = 0; it < iterations && rs > stop; ++it) {
    const auto ap = apply(p);
    const double alpha = rs / (p * ap).sum().item<double>();
    x += alpha * p;
    r -= alpha * ap;
    const double next = r.square().sum().item<double>();
    p = r + (next / rs) * p;
    rs = next;
  }
  auto out = target.clone();
  crop(out).copy_((m * x + (1 - m) * t).to(target.scalar_type()));
  return out;
}

}  // namespace adx
