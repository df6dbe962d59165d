#include <adx/core/error.hpp>
#include <adx/data/data.hpp>

#include <torch/types.h>

#include <cmath>

namespace adx {

const char* modality_name(Modality modality) {
  return modality == Modality::Image ? "image" : "tabular";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s + "]";
}

Data Data::tabular(at::Tensor x) {
  Data d;
  d.x = std::move(x);
  d.modality = Modality::Tabular;
  return d;
}

Data Data::images(at::Tensor x, at::Tensor masks) {
  Data d;
  d.x = std::move(x);
  d.masks = std::move(masks);
  d.modality = Modality::Image;
  return d;
}

std::vector<int64_t> Data::item_shape() const {
  if (!x.defined()) return {};
  auto sizes = x.sizes().vec();
  sizes.erase(sizes.begin());
  return sizes;
}

Data Data::slice(int64_t begin, int64_t end) const {
  Data d = *this;
  d.x = x.slice(0, begin, end);
  if (masks.defined()) d.masks = masks.slice(0, begin, end);
  return d;
}

Data Data::select(const at::Tensor& indices) const {
  Data d = *this;
  d.x = x.index_select(0, indices.to(x.device()));
  if (masks.defined()) d.masks = masks.index_select(0, indices.to(masks.device()));
  return d;
}

void check_finite(const at::Tensor& x, const char* what) {
  if (!x.is_floating_point() || x.numel() == 0) return;
  // Fast path: one pass, no mask. A double-precision sum of float data cannot
  // overflow, so it is finite exactly when every value is.
  if (std::isfinite(x.sum(torch::kFloat64).item<double>())) return;
  const auto bad = x.isfinite().logical_not().reshape({x.size(0), -1}).any(1);
  const int64_t count = bad.sum().item<int64_t>();
  if (count == 0) return;
  const int64_t first = bad.nonzero().index({0, 0}).item<int64_t>();
  throw ValueError(fmt::format("{} contains non-finite values (NaN or Inf) in {} item(s); first at item {}",
                               what, count, first));
}

void validate(const Data& data, const char* what) {
  ADX_CHECK_AS(ShapeError, data.x.defined(), "{}: no tensor given (x is undefined)", what);
  ADX_CHECK_AS(ShapeError, data.x.dim() >= 1 && data.x.size(0) > 0, "{} is empty (shape {})", what,
               shape_string(data.x.sizes().vec()));
  ADX_CHECK_AS(ShapeError, data.x.is_floating_point(),
               "{} must be a floating-point tensor, got dtype {}; convert with x.to(torch::kFloat32)", what,
               std::string(c10::toString(data.x.scalar_type())));
  if (data.modality == Modality::Tabular) {
    ADX_CHECK_AS(ShapeError, data.x.dim() == 2, "{}: tabular data must be N x D, got shape {}", what,
                 shape_string(data.x.sizes().vec()));
  } else {
    ADX_CHECK_AS(ShapeError, data.x.dim() == 4, "{}: images must be N x C x H x W, got shape {}", what,
                 shape_string(data.x.sizes().vec()));
    if (data.masks.defined())
      ADX_CHECK_AS(ShapeError,
                   data.masks.dim() == 4 && data.masks.size(0) == data.x.size(0) &&
                       data.masks.size(2) == data.x.size(2) && data.masks.size(3) == data.x.size(3),
                   "{}: masks of shape {} do not match images of shape {}", what,
                   shape_string(data.masks.sizes().vec()), shape_string(data.x.sizes().vec()));
  }
  check_finite(data.x, what);
}

}  // namespace adx
