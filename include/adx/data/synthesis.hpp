#pragma once
// Synthetic anomalies for self-supervised inspection (DRAEM, CutPaste, NSA): Perlin-noise
// masks and the blend DRAEM pastes with, and CutPaste's rectangle. Written once here so
// that the detectors built on them share one implementation.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace adx {

/// 2-D Perlin gradient noise as DRAEM's reference code computes it (rand_perlin_2d): a lattice of
/// (cells_y + 1) x (cells_x + 1) unit gradients at `angles` (radians), the fade 6t^5 - 15t^4 + 10t^3,
/// scaled by sqrt(2). Exactly 0 at every lattice point. `height` and `width` must be multiples of the
/// cell counts, which `angles` fixes (its shape is (cells_y + 1) x (cells_x + 1)).
at::Tensor perlin_noise(const at::Tensor& angles, int64_t height, int64_t width);

/// Perlin noise with uniform random angles from `generator` (height, width multiples of the cells).
at::Tensor random_perlin_noise(int64_t height, int64_t width, int64_t cells_y, int64_t cells_x,
                               at::Generator generator);

/// DRAEM's anomaly mask for a height x width image: Perlin noise with 2^a x 2^b cells (a, b uniform in
/// [0, max_scale_log2)), thresholded at `threshold` (DRAEM's 0.5); float 0/1, height x width. Sides must
/// be multiples of 2^(max_scale_log2 - 1).
at::Tensor perlin_mask(int64_t height, int64_t width, at::Generator generator, double threshold = 0.5,
                       int64_t max_scale_log2 = 6);

/// DRAEM's blend of `source` into `image` under `mask` (C x H x W images, H x W mask in [0, 1]):
/// (1 - mask) image + (1 - beta) mask source + beta mask image, beta the opacity in [0, 1).
at::Tensor blend_anomaly(const at::Tensor& image, const at::Tensor& source, const at::Tensor& mask, double beta);

/// A rectangle inside an image.
struct PatchBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

/// CutPaste's patch for a height x width image: area a fraction in [area_min, area_max] of the image,
/// aspect ratio log-uniform in [aspect_min, 1 / aspect_min] (the paper's 0.02-0.15 and 0.3), at a
/// uniform position; clipped to the image.
PatchBox cutpaste_box(int64_t height, int64_t width, at::Generator generator, double area_min = 0.02,
                      double area_max = 0.15, double aspect_min = 0.3);

/// Copies `from` of `image` (C x H x W) onto `to` (same size) and returns the new image.
at::Tensor paste_patch(const at::Tensor& image, const PatchBox& from, const PatchBox& to);

}  // namespace adx
