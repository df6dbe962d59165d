#pragma once
// What the detectors that learn from synthetic anomalies share (DRAEM, NSA): the
// working size their networks run at, images resized to it and maps back, the
// [0, 1] input check, the anomaly source their options name, and the image score
// taken from an anomaly map.
#include <adx/data/synthesis.hpp>

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace adx {

/// Checks the options of an anomaly source: texture_dir only goes with textures (OptionError).
void check_anomaly_source_options(AnomalySourceKind kind, const std::string& texture_dir);

/// Checks an image_size option: 0 or a positive multiple of `multiple` (OptionError).
void check_image_size_option(int64_t image_size, int64_t multiple);

/// The networks' height and width for items of `item_shape` (C x H x W): image_size x image_size, or the
/// item's own sides when image_size is 0. Sides that are not multiples of `multiple` are a ShapeError.
std::pair<int64_t, int64_t> working_size(int64_t image_size, const std::vector<int64_t>& item_shape, int64_t multiple,
                                         const std::string& detector);

/// Bilinear resize of N x C x H x W images (returned as they are when already that size).
torch::Tensor resize_bilinear(const torch::Tensor& images, int64_t height, int64_t width);

/// A ValueError unless every value of `images` lies in [0, 1], naming the detector and the range found.
void check_unit_range(const torch::Tensor& images, const std::string& detector);

/// The source the options name: `training_images` (N x C x H x W, at the working size) or the textures of
/// `texture_dir` (procedural ones when it is empty).
AnomalySource make_anomaly_source(AnomalySourceKind kind, const std::string& texture_dir,
                                  const torch::Tensor& training_images);

/// DRAEM's mean-filter side at `side` px: 21 at 256 px, scaled and made odd.
int64_t default_score_window(int64_t side);

/// Per image, the maximum of an N x 1 x H x W map after a window x window mean filter (zero padding counted,
/// as DRAEM's avg_pool2d): N scores.
torch::Tensor max_of_mean_filtered(const torch::Tensor& map, int64_t window);

}  // namespace adx
