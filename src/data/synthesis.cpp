#include <adx/data/synthesis.hpp>

#include <adx/core/error.hpp>
#include <adx/data/data.hpp>

#include <torch/torch.h>

#include <cmath>

namespace adx {
namespace {

double uniform(at::Generator& generator, double low, double high) {
  return torch::empty({1}, torch::kDouble).uniform_(low, high, generator).item<double>();
}

}  // namespace

at::Tensor perlin_noise(const at::Tensor& angles, int64_t height, int64_t width) {
  ADX_CHECK_AS(ShapeError, angles.defined() && angles.dim() == 2 && angles.size(0) >= 2 && angles.size(1) >= 2,
               "Perlin angles must be (cells_y + 1) x (cells_x + 1) with at least one cell, got {}",
               angles.defined() ? shape_string(angles.sizes().vec()) : "an undefined tensor");
  const int64_t cells_y = angles.size(0) - 1, cells_x = angles.size(1) - 1;
  ADX_CHECK_AS(ShapeError, height >= cells_y && width >= cells_x && height % cells_y == 0 && width % cells_x == 0,
               "Perlin noise of {} x {} needs sides that are multiples of its {} x {} cells", height, width, cells_y,
               cells_x);
  const int64_t dy = height / cells_y, dx = width / cells_x;
  const auto a = angles.to(torch::kFloat64);
  // Position inside its cell, in [0, 1), for every pixel (the reference's mgrid % 1).
  const auto fy = (torch::arange(height, torch::kFloat64) / static_cast<double>(dy)).remainder(1.0).unsqueeze(1).expand({height, width});
  const auto fx = (torch::arange(width, torch::kFloat64) / static_cast<double>(dx)).remainder(1.0).unsqueeze(0).expand({height, width});
  // The gradient of a cell corner, for every pixel: corner (cy + oy, cx + ox) of the pixel's cell.
  auto corner = [&](int64_t oy, int64_t ox) {
    const auto sub = a.slice(0, oy, oy + cells_y).slice(1, ox, ox + cells_x);
    return sub.repeat_interleave(dy, 0).repeat_interleave(dx, 1);
  };
  auto dot = [&](int64_t oy, int64_t ox) {
    const auto angle = corner(oy, ox);
    return torch::cos(angle) * (fy - static_cast<double>(oy)) + torch::sin(angle) * (fx - static_cast<double>(ox));
  };
  auto fade = [](const at::Tensor& t) { return 6 * t.pow(5) - 15 * t.pow(4) + 10 * t.pow(3); };
  const auto ty = fade(fy), tx = fade(fx);
  const auto n00 = dot(0, 0), n10 = dot(1, 0), n01 = dot(0, 1), n11 = dot(1, 1);
  // As the reference: first along y (its axis 0), then along x.
  const auto along_y0 = torch::lerp(n00, n10, ty), along_y1 = torch::lerp(n01, n11, ty);
  return (std::sqrt(2.0) * torch::lerp(along_y0, along_y1, tx)).to(torch::kFloat32);
}

at::Tensor random_perlin_noise(int64_t height, int64_t width, int64_t cells_y, int64_t cells_x, at::Generator generator) {
  ADX_CHECK_AS(ValueError, cells_y >= 1 && cells_x >= 1, "Perlin noise needs at least one cell, got {} x {}", cells_y,
               cells_x);
  const auto angles = torch::empty({cells_y + 1, cells_x + 1}, torch::kFloat64).uniform_(0, 2 * std::acos(-1.0), generator);
  return perlin_noise(angles, height, width);
}

at::Tensor perlin_mask(int64_t height, int64_t width, at::Generator generator, double threshold, int64_t max_scale_log2) {
  ADX_CHECK_AS(ValueError, max_scale_log2 >= 1 && max_scale_log2 <= 12, "max_scale_log2 must be in [1, 12], got {}",
               max_scale_log2);
  const int64_t largest = int64_t{1} << (max_scale_log2 - 1);
  ADX_CHECK_AS(ShapeError, height % largest == 0 && width % largest == 0,
               "a Perlin mask of {} x {} needs sides that are multiples of {}", height, width, largest);
  auto scale = [&] {
    return int64_t{1} << static_cast<int64_t>(std::floor(uniform(generator, 0, static_cast<double>(max_scale_log2))));
  };
  const int64_t cells_y = scale(), cells_x = scale();
  return (random_perlin_noise(height, width, cells_y, cells_x, generator) > threshold).to(torch::kFloat32);
}

at::Tensor blend_anomaly(const at::Tensor& image, const at::Tensor& source, const at::Tensor& mask, double beta) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && source.sizes() == image.sizes(),
               "blend needs C x H x W image and source of one shape, got {} and {}", shape_string(image.sizes().vec()),
               shape_string(source.sizes().vec()));
  ADX_CHECK_AS(ShapeError, mask.dim() == 2 && mask.size(0) == image.size(1) && mask.size(1) == image.size(2),
               "blend mask must be H x W = {} x {}, got {}", image.size(1), image.size(2), shape_string(mask.sizes().vec()));
  ADX_CHECK_AS(ValueError, beta >= 0 && beta < 1, "blend opacity beta must be in [0, 1), got {}", beta);
  const auto m = mask.unsqueeze(0).to(image.scalar_type());
  return (1 - m) * image + (1 - beta) * m * source + beta * m * image;
}

PatchBox cutpaste_box(int64_t height, int64_t width, at::Generator generator, double area_min, double area_max,
                      double aspect_min) {
  ADX_CHECK_AS(ValueError, 0 < area_min && area_min <= area_max && area_max <= 1 && 0 < aspect_min && aspect_min <= 1,
               "cutpaste needs 0 < area_min <= area_max <= 1 and aspect_min in (0, 1], got {}, {}, {}", area_min,
               area_max, aspect_min);
  ADX_CHECK_AS(ShapeError, height >= 2 && width >= 2, "cutpaste needs an image of at least 2 x 2, got {} x {}", height,
               width);
  const double area = uniform(generator, area_min, area_max) * static_cast<double>(height * width);
  const double aspect = std::exp(uniform(generator, std::log(aspect_min), -std::log(aspect_min)));
  PatchBox box;
  box.height = std::clamp<int64_t>(std::llround(std::sqrt(area * aspect)), 1, height - 1);
  box.width = std::clamp<int64_t>(std::llround(std::sqrt(area / aspect)), 1, width - 1);
  box.top = static_cast<int64_t>(uniform(generator, 0, static_cast<double>(height - box.height)));
  box.left = static_cast<int64_t>(uniform(generator, 0, static_cast<double>(width - box.width)));
  return box;
}

at::Tensor paste_patch(const at::Tensor& image, const PatchBox& from, const PatchBox& to) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3, "paste_patch needs a C x H x W image, got {}",
               shape_string(image.sizes().vec()));
  auto inside = [&](const PatchBox& b) {
    return b.top >= 0 && b.left >= 0 && b.height >= 1 && b.width >= 1 && b.top + b.height <= image.size(1) &&
           b.left + b.width <= image.size(2);
  };
  ADX_CHECK_AS(ValueError, inside(from) && inside(to) && from.height == to.height && from.width == to.width,
               "paste_patch boxes must lie in the {} x {} image and have one size", image.size(1), image.size(2));
  auto out = image.clone();
  out.slice(1, to.top, to.top + to.height)
      .slice(2, to.left, to.left + to.width)
      .copy_(image.slice(1, from.top, from.top + from.height).slice(2, from.left, from.left + from.width));
  return out;
}

}  // namespace adx
