#include <adx/data/drift_features.hpp>
#include <adx/data/input_kind.hpp>

#include <torch/torch.h>

namespace adx {

DriftFeatures drift_features(const Data& data) {
  DriftFeatures out;
  const auto x = data.x.detach().to(torch::kCPU, torch::kFloat32);
  if (data.input_kind().traits().image_rows) {
    // N x C x H x W (images) or T x C x H x W (frames): per-channel statistics of each image or frame.
    const auto flat = x.flatten(2);
    const auto mean = flat.mean(2), std = flat.std(2, /*unbiased=*/false);
    out.values = torch::stack({mean, std}, 2).reshape({x.size(0), -1}).contiguous();
    for (int64_t c = 0; c < x.size(1); ++c) {
      out.names.push_back(fmt::format("channel{}_mean", c));
      out.names.push_back(fmt::format("channel{}_std", c));
    }
  } else {
    out.values = x.reshape({x.size(0), -1}).contiguous();
    for (int64_t j = 0; j < out.values.size(1); ++j) out.names.push_back(fmt::format("x{}", j));
  }
  return out;
}

at::Tensor evenly_spaced_rows(const at::Tensor& values, int64_t max_rows) {
  const int64_t n = values.size(0);
  if (n <= max_rows) return values;
  const auto index = torch::linspace(0, static_cast<double>(n - 1), max_rows, torch::kFloat64).round().to(torch::kLong);
  return values.index_select(0, index.to(values.device()));
}

}  // namespace adx
