#pragma once
// LeNet-style image encoder and its mirrored decoder, as in Deep SVDD
// (Ruff et al. 2018): 5x5 convolutions, BatchNorm, leaky ReLU and 2x2 max
// pooling, then a dense layer to the representation. With `bias` false every
// layer is bias-free (BatchNorm without affine parameters), which Deep SVDD
// needs to rule out the trivial constant solution.
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

struct LeNetSpec {
  int64_t channels = 1, height = 28, width = 28;  ///< input item shape
  std::vector<int64_t> conv_channels{8, 4};       ///< one conv + pool level per entry
  int64_t rep_dim = 32;
  bool bias = false;
};

class LeNetEncoderImpl : public torch::nn::Module {
 public:
  explicit LeNetEncoderImpl(const LeNetSpec& s) {
    int64_t c = s.channels, h = s.height, w = s.width;
    for (size_t i = 0; i < s.conv_channels.size(); ++i) {
      const int64_t out = s.conv_channels[i];
      convs.push_back(register_module("conv" + std::to_string(i),
                                      torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, 5).padding(2).bias(s.bias))));
      norms.push_back(register_module(
          "bn" + std::to_string(i),
          torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-4).affine(s.bias))));
      sizes.push_back({h, w});
      c = out;
      h /= 2;
      w /= 2;
    }
    code_shape = {c, h, w};
    fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(c * h * w, s.rep_dim).bias(s.bias)));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (size_t i = 0; i < convs.size(); ++i)
      x = torch::max_pool2d(torch::leaky_relu(norms[i]->forward(convs[i]->forward(x)), 0.01), 2);
    return fc->forward(x.flatten(1));
  }

  std::vector<torch::nn::Conv2d> convs;
  std::vector<torch::nn::BatchNorm2d> norms;
  torch::nn::Linear fc{nullptr};
  std::vector<std::vector<int64_t>> sizes;  ///< spatial size entering each level
  std::vector<int64_t> code_shape;          ///< C x H x W before the dense layer
};
TORCH_MODULE(LeNetEncoder);

/// Mirror of a LeNetEncoder: dense layer, then per level upsample to the
/// encoder's size, 5x5 conv, BatchNorm and leaky ReLU; a last 5x5 conv back to
/// the input channels.
class LeNetDecoderImpl : public torch::nn::Module {
 public:
  LeNetDecoderImpl(const LeNetSpec& s, const LeNetEncoderImpl& encoder)
      : code_shape_(encoder.code_shape), sizes_(encoder.sizes) {
    const int64_t flat = code_shape_[0] * code_shape_[1] * code_shape_[2];
    fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(s.rep_dim, flat).bias(s.bias)));
    for (size_t i = s.conv_channels.size(); i-- > 0;) {
      const int64_t in = s.conv_channels[i];
      const int64_t out = i == 0 ? s.conv_channels[0] : s.conv_channels[i - 1];
      const auto k = std::to_string(s.conv_channels.size() - 1 - i);
      convs.push_back(
          register_module("deconv" + k, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 5).padding(2).bias(s.bias))));
      norms.push_back(register_module(
          "bn" + k, torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-4).affine(s.bias))));
    }
    out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(s.conv_channels[0], s.channels, 5)
                                                        .padding(2)
                                                        .bias(s.bias)));
  }
  torch::Tensor forward(const torch::Tensor& code) {
    auto x = torch::leaky_relu(fc->forward(code), 0.01)
                 .reshape({code.size(0), code_shape_[0], code_shape_[1], code_shape_[2]});
    for (size_t i = 0; i < convs.size(); ++i) {
      const auto& size = sizes_[sizes_.size() - 1 - i];
      x = torch::upsample_nearest2d(x, {size[0], size[1]});
      x = torch::leaky_relu(norms[i]->forward(convs[i]->forward(x)), 0.01);
    }
    return out->forward(x);
  }

  torch::nn::Linear fc{nullptr};
  std::vector<torch::nn::Conv2d> convs;
  std::vector<torch::nn::BatchNorm2d> norms;
  torch::nn::Conv2d out{nullptr};

 private:
  std::vector<int64_t> code_shape_;
  std::vector<std::vector<int64_t>> sizes_;
};
TORCH_MODULE(LeNetDecoder);

}  // namespace adx::nn
