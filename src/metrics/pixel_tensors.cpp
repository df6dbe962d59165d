#include <adx/metrics/pixel_tensors.hpp>

#include <adx/core/error.hpp>
#include <adx/core/shape.hpp>

#include <torch/types.h>

namespace adx::metrics {
namespace {

void check_stack(const at::Tensor& t, const char* what) {
  ADX_CHECK_AS(ShapeError, t.defined() && t.dim() == 4 && t.size(1) == 1, "{} must be N x 1 x H x W, got {}", what,
               t.defined() ? shape_string(t.sizes().vec()) : "an undefined tensor");
}

}  // namespace

MaskStack mask_stack(const at::Tensor& masks) {
  check_stack(masks, "masks");
  const auto m = (masks.detach().cpu() > 0.5).to(torch::kUInt8).contiguous();
  return {std::vector<uint8_t>(m.data_ptr<uint8_t>(), m.data_ptr<uint8_t>() + m.numel()), m.size(0), m.size(2),
          m.size(3)};
}

MapStack map_stack(const at::Tensor& maps) {
  check_stack(maps, "anomaly maps");
  const auto m = maps.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return {std::vector<float>(m.data_ptr<float>(), m.data_ptr<float>() + m.numel()), m.size(0), m.size(2), m.size(3)};
}

}  // namespace adx::metrics
