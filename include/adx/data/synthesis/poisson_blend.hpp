#pragma once
// Poisson image editing (Pérez, Gangnet and Blake 2003), the seamless cloning NSA
// blends patches between normal images with (as OpenCV's seamlessClone does):
// inside the mask the result takes the source's gradients, on and outside the
// mask's boundary it stays the target, so the pasted patch carries the source's
// texture at the target's brightness, without a seam.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace adx {

struct PoissonBlendOptions {
  /// Mixed gradients (Pérez et al. section 3, OpenCV's MIXED_CLONE): between each pair of neighbours, the
  /// stronger of the source's and the target's differences; false imports the source's (NORMAL_CLONE).
  bool mixed = false;
  /// Conjugate-gradient iterations at most (0 = 4 x the larger side of the mask's bounding box).
  int64_t max_iterations = 0;
  /// Stop once the residual is this small relative to the right-hand side.
  double tolerance = 1e-8;
};

/// Blends `source` into `target` (both C x H x W) inside `mask` (H x W, nonzero = inside). Pixels on the image
/// border never count as inside. The result is `target` at every pixel outside the mask; inside, its discrete
/// Laplacian (4-neighbour) equals the guidance field's divergence, with the target's values on the boundary.
at::Tensor poisson_blend(const at::Tensor& target, const at::Tensor& source, const at::Tensor& mask,
                         const PoissonBlendOptions& options = {});

}  // namespace adx
