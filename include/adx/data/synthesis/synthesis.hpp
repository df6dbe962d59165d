#pragma once
// Synthetic anomalies for self-supervised inspection (DRAEM, CutPaste, NSA): Perlin-noise
// masks and the blend DRAEM pastes with, and CutPaste's rectangle. Written once here so
// that the detectors built on them share one implementation.
#include <adx/core/options.hpp>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

/// A number uniform in [low, high) from `generator`.
double draw_uniform(at::Generator generator, double low, double high);

/// Rotates a C x H x W image (or an H x W map) by `degrees` about its centre (bilinear; zero outside the
/// original, as imgaug's Affine with its default constant fill).
at::Tensor rotate_image(const at::Tensor& image, double degrees);

/// 2-D Perlin gradient noise as DRAEM's reference code computes it (rand_perlin_2d): a lattice of
/// (cells_y + 1) x (cells_x + 1) unit gradients at `angles` (radians), the fade 6t^5 - 15t^4 + 10t^3,
/// scaled by sqrt(2). Exactly 0 at every lattice point. `height` and `width` must be multiples of the
/// cell counts, which `angles` fixes (its shape is (cells_y + 1) x (cells_x + 1)).
at::Tensor perlin_noise(const at::Tensor& angles, int64_t height, int64_t width);

/// Perlin noise with uniform random angles from `generator` (height, width multiples of the cells).
at::Tensor random_perlin_noise(int64_t height, int64_t width, int64_t cells_y, int64_t cells_x,
                               at::Generator generator);

/// DRAEM's anomaly mask for a height x width image: Perlin noise with 2^a x 2^b cells (a, b uniform in
/// [0, max_scale_log2)), rotated by an angle uniform in [-max_rotation_degrees, max_rotation_degrees]
/// (DRAEM's 90), thresholded at `threshold` (DRAEM's 0.5); float 0/1, height x width. Sides must be
/// multiples of 2^(max_scale_log2 - 1).
at::Tensor perlin_mask(int64_t height, int64_t width, at::Generator generator, double threshold = 0.5,
                       int64_t max_scale_log2 = 6, double max_rotation_degrees = 0.0);

/// DRAEM's blend of `source` into `image` under `mask` (C x H x W images, H x W mask in [0, 1]):
/// (1 - mask) image + (1 - beta) mask source + beta mask image, beta the opacity in [0, 1).
at::Tensor blend_anomaly(const at::Tensor& image, const at::Tensor& source, const at::Tensor& mask, double beta);

/// DRAEM's augmentation of an anomaly source image (C x H x W in [0, 1]): `count` distinct operations drawn
/// from its ten (per-channel gamma 0.5-2, brightness x0.8-1.2 and +-30/255, sharpness 0-2, hue and saturation
/// shifts of up to 50/255, solarize above 32-128/255 with probability 0.5, posterize to 1-8 bits, invert,
/// autocontrast with a 0-20% cut-off, histogram equalisation, rotation by up to 45 degrees), applied in the
/// order drawn. Returns values in [0, 1].
at::Tensor augment_anomaly_source(const at::Tensor& image, at::Generator generator, int64_t count = 3);

/// A procedural texture, channels x height x width in [0, 1], for when no texture folder is given: fractal
/// Perlin noise, stripes or a checkerboard (the latter two warped by noise), in two random colours.
at::Tensor procedural_texture(int64_t channels, int64_t height, int64_t width, at::Generator generator);

/// Where synthetic anomalies take their content from.
enum class AnomalySourceKind {
  Textures,     ///< images of a texture folder (DRAEM uses DTD), or procedural textures without one
  NormalImages  ///< the other training images (NSA, CutPaste)
};
ADX_ENUM_NAMES(AnomalySourceKind, {AnomalySourceKind::Textures, "textures"},
               {AnomalySourceKind::NormalImages, "normal_images"});

/// Draws anomaly source images of one size: a file of a texture folder (every png, jpg and bmp under it,
/// read when drawn), a procedural texture, or one of a set of normal images.
class AnomalySource {
 public:
  /// Textures from `folder`, or procedural ones when `folder` is empty. A folder that does not exist or
  /// holds no images is an IoError.
  static AnomalySource textures(const std::string& folder);
  /// The images of `images` (N x C x H x W, N >= 1).
  static AnomalySource normal_images(const at::Tensor& images);

  /// One source image, channels x height x width in [0, 1], on the CPU.
  at::Tensor draw(int64_t channels, int64_t height, int64_t width, at::Generator generator) const;
  /// "procedural", "folder <path> (<n> images)" or "<n> normal images".
  std::string describe() const;

 private:
  std::string folder_;
  std::vector<std::string> files_;
  at::Tensor images_;
};

/// DRAEM's synthetic anomaly (Zavrtanik et al. 2021, its reference data set): `source` blended into `image`
/// under a rotated Perlin mask with opacity beta uniform in [opacity_min, opacity_max). (The mask can come
/// out empty; the reference, too, then trains on an unchanged image.)
struct PerlinAnomalyOptions {
  ADX_OPTIONS_STRUCT;
  /// The normal image's opacity under the anomaly, uniform in [opacity_min, opacity_max) (the reference's
  /// 0 and 0.8).
  ADX_ARG(double, opacity_min) = 0.0;
  ADX_ARG(double, opacity_max) = 0.8;
  /// Perlin noise above this value is in the mask (the reference's 0.5).
  ADX_ARG(double, threshold) = 0.5;
  /// The noise's scales are powers of two drawn up to 2^max_scale_log2 (the reference's 6).
  ADX_ARG(int64_t, max_scale_log2) = 6;
  /// The mask is rotated by up to this many degrees either way (the reference's 90).
  ADX_ARG(double, max_rotation_degrees) = 90.0;

 public:
  /// Refuses out-of-range values (see check_options).
  void check(const std::string& prefix) const;
};
struct SyntheticAnomaly {
  at::Tensor image;  ///< C x H x W
  at::Tensor mask;   ///< H x W: 0 / 1 (DRAEM), or a continuous label in [0, 1] (NSA)
};
SyntheticAnomaly perlin_anomaly(const at::Tensor& image, const at::Tensor& source, at::Generator generator,
                                const PerlinAnomalyOptions& options = {});

/// NSA's natural synthetic anomaly (Schlüter et al., ECCV 2022, its reference patch_ex with the
/// logistic-intensity label): patches of `source`, resized, moved and Poisson-blended into `image`; the label
/// is how much each pixel changed. Per patch (the first always, each further one on a coin flip):
///   half-widths (gamma_offset + Gamma(gamma_shape, gamma_scale)) x side, clipped to [min_half_width,
///   max_half_width] x side; a random centre in the source; the patch resized by a factor N(1, 0.5) clipped to
///   [min_scale, max_scale] (its sides kept within the half-width bounds, as the reference does); a random
///   centre in the image; seamless cloning with the source's (or mixed) gradients, the patch's outer ring
///   kept as the boundary. Patches under 50 pixels are skipped.
/// Label, on the 0-255 scale: d = the mean over channels of |image - result| inside the patches; the pixels
/// with d > tolerance, 5 x 5 median-filtered, times the logistic 1 / (1 + exp(-k (m - x0))) of m, d
/// median-filtered over a disk of radius 5.
struct NaturalAnomalyOptions {
  ADX_OPTIONS_STRUCT;
  /// Patches per image at most: the first always, each further one on a coin flip (the reference's 3 for
  /// objects, 4 for textures).
  ADX_ARG(int64_t, max_patches) = 3;
  /// Bounds of a patch's half-width as a fraction of the side (the reference's 0.03 and 0.4).
  ADX_ARG(double, min_half_width) = 0.03;
  ADX_ARG(double, max_half_width) = 0.4;
  /// The half-width's distribution before clipping: gamma_offset + Gamma(gamma_shape, gamma_scale), times the side.
  ADX_ARG(double, gamma_shape) = 2.0;
  ADX_ARG(double, gamma_scale) = 0.05;
  ADX_ARG(double, gamma_offset) = 0.03;
  /// Bounds of the patch's resize factor, drawn from N(1, 0.5) (the reference's 0.7 and 1.3; 0.5 and 2
  /// for textures).
  ADX_ARG(double, min_scale) = 0.7;
  ADX_ARG(double, max_scale) = 1.3;
  /// Blend with mixed gradients (the stronger of source and image) instead of the source's.
  ADX_ARG(bool, mixed_gradients) = false;
  /// The label's logistic slope k and midpoint x0, on the 0-255 intensity scale (the reference's default
  /// 1/6 and 20; it sets them per MVTec category, from 1/12 and 24 to 1 and 3).
  ADX_ARG(double, label_k) = 1.0 / 6.0;
  ADX_ARG(double, label_x0) = 20.0;
  /// Pixels that changed by no more than this (0-255 scale) are not labelled.
  ADX_ARG(double, tolerance) = 1.0;

 public:
  /// Refuses out-of-range values (see check_options).
  void check(const std::string& prefix) const;
};
SyntheticAnomaly natural_anomaly(const at::Tensor& image, const at::Tensor& source, at::Generator generator,
                                 const NaturalAnomalyOptions& options = {});
/// natural_anomaly's label (H x W, in [0, 1]) of `blended`, the C x H x W image in [0, 1] after blending, against
/// the `original`, with `patches` (H x W, 0 / 1) the union of the pasted rectangles.
at::Tensor natural_anomaly_label(const at::Tensor& original, const at::Tensor& blended, const at::Tensor& patches,
                                 const NaturalAnomalyOptions& options = {});

/// The median of each pixel's neighbours in a `footprint` (K x K, K odd, nonzero = counted) of an H x W map,
/// edges replicated (OpenCV's medianBlur, scikit-image's median with mode 'nearest').
at::Tensor median_filter(const at::Tensor& map, const at::Tensor& footprint);
/// A (2r + 1) x (2r + 1) disk: x^2 + y^2 <= r^2 (scikit-image's disk(r)).
at::Tensor disk_footprint(int64_t radius);

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

/// torchvision's ColorJitter(strength, strength, strength, strength) on a C x H x W image in [0, 1]:
/// brightness, contrast and saturation factors uniform in [1 - strength, 1 + strength] and a hue shift of up
/// to `strength` of a turn, in a random order (grey images skip saturation and hue).
at::Tensor color_jitter(const at::Tensor& image, at::Generator generator, double strength = 0.1);

/// CutPaste (Li et al., CVPR 2021): a cutpaste_box of the image, colour-jittered (0.1), pasted at another
/// uniform place.
at::Tensor cutpaste(const at::Tensor& image, at::Generator generator);

/// CutPaste-Scar: a thin rectangle (width 2-16 px, height 10-25 px at 256 px, scaled to the image's side) of
/// the image, colour-jittered, rotated by up to 45 degrees, pasted at another uniform place.
at::Tensor cutpaste_scar(const at::Tensor& image, at::Generator generator);

}  // namespace adx
