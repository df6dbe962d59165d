#pragma once
// The U-Net generator of pix2pix as Skip-GANomaly uses it (Akcay et al. 2019):
// 4x4 stride-2 convolutions from an image_size x image_size image down to 1 x 1,
// the mirrored transposed convolutions back up, and at every level the encoder
// activation concatenated onto the decoder input (the skip connections).
#include <adx/nn/dcgan.hpp>

#include <torch/torch.h>

namespace adx::nn {

class UnetGeneratorImpl : public torch::nn::Module {
 public:
  /// Widths per level: width * min(2^level, 8); log2(image_size) levels.
  explicit UnetGeneratorImpl(const DcganSpec& s) {
    int64_t levels = 0;
    for (int64_t size = s.image_size; size > 1; size /= 2) ++levels;
    using namespace torch::nn;
    auto conv = [](int64_t in, int64_t out) { return Conv2d(Conv2dOptions(in, out, 4).stride(2).padding(1).bias(false)); };
    auto deconv = [](int64_t in, int64_t out, bool bias) {
      return ConvTranspose2d(ConvTranspose2dOptions(in, out, 4).stride(2).padding(1).bias(bias));
    };
    int64_t in = s.channels;
    for (int64_t level = 0; level < levels; ++level) {
      const int64_t out = s.width * std::min<int64_t>(int64_t{1} << level, 8);
      const bool outermost = level == 0, innermost = level == levels - 1;
      Sequential down, up;
      if (!outermost) down->push_back(LeakyReLU(LeakyReLUOptions().negative_slope(0.2)));
      down->push_back(conv(in, out));
      if (!outermost && !innermost) down->push_back(BatchNorm2d(out));
      up->push_back(ReLU());
      // Below the innermost level the decoder input is [skip, decoded]: twice the width.
      up->push_back(deconv(innermost ? out : 2 * out, outermost ? s.channels : in, outermost));
      if (outermost) up->push_back(Tanh());
      else up->push_back(BatchNorm2d(in));
      downs_.push_back(register_module("down" + std::to_string(level), down));
      ups_.push_back(register_module("up" + std::to_string(level), up));
      in = out;
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    std::vector<torch::Tensor> skips;
    auto h = x;
    for (auto& down : downs_) skips.push_back(h = down->forward(h));
    auto u = ups_.back()->forward(skips.back());
    for (int64_t level = static_cast<int64_t>(ups_.size()) - 2; level >= 0; --level)
      u = ups_[level]->forward(torch::cat({skips[level], u}, 1));
    return u;
  }

 private:
  std::vector<torch::nn::Sequential> downs_, ups_;
};
TORCH_MODULE(UnetGenerator);

}  // namespace adx::nn
