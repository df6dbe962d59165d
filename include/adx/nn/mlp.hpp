#pragma once
// Shared building blocks: fully connected stacks.
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

struct MlpSpec {
  int64_t in = 0;
  std::vector<int64_t> hidden;  ///< widths of the hidden layers
  int64_t out = 0;
  bool batch_norm = true;       ///< BatchNorm1d after each hidden linear layer
  double dropout = 0.0;         ///< dropout after each hidden activation
  bool bias = true;             ///< Deep SVDD needs bias-free layers
  double leaky_slope = 0.0;     ///< 0: ReLU, > 0: LeakyReLU with this slope
};

/// Linear -> [BatchNorm] -> ReLU -> [Dropout] for every hidden width, then a plain Linear to `out`.
inline torch::nn::Sequential make_mlp(const MlpSpec& spec) {
  torch::nn::Sequential seq;
  int64_t width = spec.in;
  for (int64_t h : spec.hidden) {
    seq->push_back(torch::nn::Linear(torch::nn::LinearOptions(width, h).bias(spec.bias)));
    if (spec.batch_norm) seq->push_back(torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(h).affine(spec.bias)));
    if (spec.leaky_slope > 0)
      seq->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(spec.leaky_slope)));
    else
      seq->push_back(torch::nn::ReLU());
    if (spec.dropout > 0) seq->push_back(torch::nn::Dropout(spec.dropout));
    width = h;
  }
  seq->push_back(torch::nn::Linear(torch::nn::LinearOptions(width, spec.out).bias(spec.bias)));
  return seq;
}

/// Product of an item shape (number of features of a flattened item).
inline int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace adx::nn
