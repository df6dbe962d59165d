#include <adx/core/error.hpp>
#include <adx/data/transforms.hpp>

#include <torch/types.h>

namespace adx {

at::Tensor global_contrast_normalize(const at::Tensor& x) {
  const auto flat = x.reshape({x.size(0), -1});
  const auto centered = flat - flat.mean(1, true);
  // Mean absolute deviation (the L1 norm divided by the number of features); a
  // constant item stays zero rather than dividing by zero.
  const auto l1 = centered.abs().mean(1, true).clamp_min(1e-12);
  return (centered / l1).reshape(x.sizes());
}

void Transform::fit(const at::Tensor& x) {
  const auto data = x.to(torch::kFloat64);
  ADX_CHECK_AS(OptionError, kind_ != Preprocess::Auto, "preprocessing 'auto' must be resolved by the detector");
  switch (kind_) {
    case Preprocess::Auto:
    case Preprocess::None: return;
    case Preprocess::Standardize: {
      shift_ = data.mean(0);
      const auto std = data.std(0, /*unbiased=*/false);
      // Constant features keep their scale instead of exploding.
      scale_ = torch::where(std > 1e-12, 1.0 / std, torch::ones_like(std));
      break;
    }
    case Preprocess::MinMax: {
      shift_ = std::get<0>(data.min(0));
      const auto range = std::get<0>(data.max(0)) - shift_;
      scale_ = torch::where(range > 1e-12, 1.0 / range, torch::ones_like(range));
      break;
    }
    case Preprocess::GlobalMinMax:
    case Preprocess::GcnMinMax: {
      const auto g = kind_ == Preprocess::GcnMinMax ? global_contrast_normalize(data) : data;
      shift_ = g.min().reshape({1});
      const auto range = g.max().reshape({1}) - shift_;
      scale_ = torch::where(range > 1e-12, 1.0 / range, torch::ones_like(range));
      break;
    }
  }
  shift_ = shift_.to(torch::kFloat32).to(torch::kCPU);
  scale_ = scale_.to(torch::kFloat32).to(torch::kCPU);
}

at::Tensor Transform::apply(const at::Tensor& x) const {
  if (kind_ == Preprocess::None) return x;
  ADX_CHECK_AS(NotFittedError, shift_.defined(), "preprocessing used before it was fitted");
  const auto input = kind_ == Preprocess::GcnMinMax ? global_contrast_normalize(x) : x;
  ADX_CHECK_AS(ShapeError, shift_.numel() == 1 || shift_.sizes() == x.sizes().slice(1),
               "preprocessing was fitted on items of {} values but got items of shape {}", shift_.numel(),
               std::string(c10::str(x.sizes().slice(1))));
  // (x - shift) * scale as one fused pass: x * scale + (-shift * scale).
  const auto scale = scale_.to(x.device(), x.scalar_type());
  const auto offset = -shift_.to(x.device(), x.scalar_type()) * scale;
  return torch::addcmul(offset, input, scale);
}

void Transform::save_state(std::map<std::string, at::Tensor>& state, const std::string& prefix) const {
  if (kind_ == Preprocess::None) return;
  state[prefix + "shift"] = shift_;
  state[prefix + "scale"] = scale_;
}

void Transform::load_state(const std::map<std::string, at::Tensor>& state, const std::string& prefix) {
  if (kind_ == Preprocess::None) return;
  auto shift = state.find(prefix + "shift");
  auto scale = state.find(prefix + "scale");
  ADX_CHECK_AS(IoError, shift != state.end() && scale != state.end(),
               "model file lacks the preprocessing state '{}shift' / '{}scale'", prefix, prefix);
  shift_ = shift->second;
  scale_ = scale->second;
}

}  // namespace adx
