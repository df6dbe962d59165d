#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/detectors/components/bases/self_supervised.hpp>

#include <cmath>

namespace adx {

std::pair<int64_t, int64_t> working_size(int64_t image_size, const std::vector<int64_t>& item_shape, int64_t multiple,
                                         const std::string& detector) {
  const int64_t height = image_size > 0 ? image_size : item_shape.at(1);
  const int64_t width = image_size > 0 ? image_size : item_shape.at(2);
  ADX_CHECK_AS(ShapeError, height % multiple == 0 && width % multiple == 0 && height > 0 && width > 0,
               "{} with image_size=0 needs image sides that are multiples of {}, got {} x {}; set image_size", detector,
               multiple, height, width);
  return {height, width};
}

torch::Tensor resize_bilinear(const torch::Tensor& images, int64_t height, int64_t width) {
  if (images.size(2) == height && images.size(3) == width) return images;
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{height, width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

void check_unit_range(const torch::Tensor& images, const std::string& detector) {
  const auto range = torch::stack({images.min(), images.max()}).to(torch::kCPU, torch::kDouble);
  const double low = range[0].item<double>(), high = range[1].item<double>();
  ADX_CHECK_AS(ValueError, low >= -1e-6 && high <= 1 + 1e-6,
               "{} needs images with values in [0, 1] (as adx's image loaders give them), got [{}, {}]", detector, low,
               high);
}

AnomalySource make_anomaly_source(AnomalySourceKind kind, const std::string& texture_dir,
                                  const torch::Tensor& training_images) {
  return kind == AnomalySourceKind::NormalImages ? AnomalySource::normal_images(training_images)
                                                 : AnomalySource::textures(texture_dir);
}

int64_t default_score_window(int64_t side) {
  return 2 * std::max<int64_t>(0, std::lround((21.0 * static_cast<double>(side) / 256.0 - 1) / 2)) + 1;
}

torch::Tensor max_of_mean_filtered(const torch::Tensor& map, int64_t window) {
  namespace F = torch::nn::functional;
  return F::avg_pool2d(map, F::AvgPool2dFuncOptions(window).stride(1).padding(window / 2)).flatten(1).amax(1);
}

}  // namespace adx
