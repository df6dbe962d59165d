#pragma once
// Shared building blocks for sequence items (B x L x D): an LSTM that summarises a
// window, and a stack of dilated causal convolutions (a temporal convolutional network).
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

/// LSTM over B x L x D; forward returns the top layer's last hidden state (B x hidden)
/// and, through `outputs`, every step's output.
class LstmSummaryImpl : public torch::nn::Module {
 public:
  LstmSummaryImpl(int64_t in_features, int64_t hidden, int64_t layers)
      : lstm(register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(in_features, hidden)
                                                          .num_layers(layers)
                                                          .batch_first(true)))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = lstm->forward(x);
    return std::get<0>(std::get<1>(out)).select(0, -1);
  }
  torch::nn::LSTM lstm;
};
TORCH_MODULE(LstmSummary);

/// Causal convolutions with dilations 1, 2, 4, ... over B x C x L, each followed by
/// ReLU and a residual connection (a 1x1 projection where the width changes).
class TemporalConvStackImpl : public torch::nn::Module {
 public:
  TemporalConvStackImpl(int64_t in_channels, int64_t channels, int64_t kernel, const std::vector<int64_t>& dilations)
      : kernel_(kernel), dilations_(dilations) {
    int64_t width = in_channels;
    for (size_t i = 0; i < dilations.size(); ++i) {
      convs->push_back(torch::nn::Conv1d(
          torch::nn::Conv1dOptions(width, channels, kernel).dilation(dilations[i])));
      if (width != channels && !projection)
        projection = register_module("projection", torch::nn::Conv1d(torch::nn::Conv1dOptions(width, channels, 1)));
      width = channels;
    }
    register_module("convs", convs);
  }
  torch::Tensor forward(torch::Tensor x) {
    for (size_t i = 0; i < convs->size(); ++i) {
      // Left padding only: step t never sees a later step.
      const int64_t pad = (kernel_ - 1) * dilations_[i];
      auto y = torch::relu(convs[i]->as<torch::nn::Conv1d>()->forward(torch::constant_pad_nd(x, {pad, 0})));
      x = y + (i == 0 && projection ? projection->forward(x) : x);
    }
    return x;
  }
  torch::nn::ModuleList convs;
  torch::nn::Conv1d projection{nullptr};

 private:
  int64_t kernel_;
  std::vector<int64_t> dilations_;
};
TORCH_MODULE(TemporalConvStack);

}  // namespace adx::nn
