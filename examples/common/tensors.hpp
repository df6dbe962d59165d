#pragma once
// Tensors as plain vectors, for metrics and output files.
#include <torch/torch.h>

#include <vector>

namespace adx::examples {

inline std::vector<double> doubles_of(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

inline std::vector<int> ints_of(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace adx::examples
