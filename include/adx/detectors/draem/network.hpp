#pragma once
// DRAEM's two networks (Zavrtanik et al., ICCV 2021, and its reference code):
//   ReconstructiveNetwork   an encoder-decoder without skips that learns to give back the normal image
//                           under a synthetic anomaly: 5 stages of two 3x3 conv-BN-ReLU (widths w, 2w,
//                           4w, 8w, 8w, 2x2 max-pooling between), 4 bilinear upsamplings each followed by
//                           conv-BN-ReLU and two more, a final 3x3 conv
//   DiscriminativeNetwork   a U-Net on the image and its reconstruction (2C channels) that segments the
//                           anomaly: 6 stages (w, 2w, 4w, 8w, 8w, 8w), skips concatenated on the way up,
//                           the way up 8w, 4w, 2w, w, w; 2 output channels (normal, anomalous)
// The reference widths are 128 and 64; adx's defaults are narrower to train on a CPU.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace adx::nn {

/// conv3x3-BN-ReLU, `convs` times.
inline torch::nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t convs) {
  using namespace torch::nn;
  Sequential block;
  for (int64_t k = 0; k < convs; ++k) {
    block->push_back(Conv2d(Conv2dOptions(k == 0 ? in : out, out, 3).padding(1)));
    block->push_back(BatchNorm2d(out));
    block->push_back(ReLU(ReLUOptions(true)));
  }
  return block;
}

/// Bilinear 2x upsampling, then conv3x3-BN-ReLU (the reference's `up` blocks).
inline torch::nn::Sequential upsample_conv(int64_t in, int64_t out) {
  using namespace torch::nn;
  Sequential block(Upsample(UpsampleOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kBilinear).align_corners(true)));
  const auto conv = conv_bn_relu(in, out, 1);  // held here: the loop below must not outlive it
  for (const auto& module : *conv) block->push_back(module);
  return block;
}

class ReconstructiveNetworkImpl : public torch::nn::Module {
 public:
  ReconstructiveNetworkImpl(int64_t channels, int64_t width) {
    const std::vector<int64_t> widths{width, 2 * width, 4 * width, 8 * width, 8 * width};
    int64_t in = channels;
    for (size_t s = 0; s < widths.size(); ++s) {
      encoder_.push_back(register_module("encoder" + std::to_string(s), conv_bn_relu(in, widths[s], 2)));
      in = widths[s];
    }
    // Decoder stage s: up from in to in, then two convs to the width below (the last keeps w).
    const std::vector<int64_t> outs{4 * width, 2 * width, width, width};
    for (size_t s = 0; s < outs.size(); ++s) {
      ups_.push_back(register_module("up" + std::to_string(s), upsample_conv(in, in)));
      auto block = conv_bn_relu(in, in, 1);
      const auto narrowing = conv_bn_relu(in, outs[s], 1);
      for (const auto& module : *narrowing) block->push_back(module);
      decoder_.push_back(register_module("decoder" + std::to_string(s), block));
      in = outs[s];
    }
    output_ = register_module("output", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, channels, 3).padding(1)));
  }

  torch::Tensor forward(torch::Tensor x) {
    for (size_t s = 0; s < encoder_.size(); ++s) {
      if (s > 0) x = torch::max_pool2d(x, 2);
      x = encoder_[s]->forward(x);
    }
    for (size_t s = 0; s < ups_.size(); ++s) x = decoder_[s]->forward(ups_[s]->forward(x));
    return output_->forward(x);
  }

 private:
  std::vector<torch::nn::Sequential> encoder_, ups_, decoder_;
  torch::nn::Conv2d output_{nullptr};
};
TORCH_MODULE(ReconstructiveNetwork);

class DiscriminativeNetworkImpl : public torch::nn::Module {
 public:
  DiscriminativeNetworkImpl(int64_t channels, int64_t width) {
    const std::vector<int64_t> widths{width, 2 * width, 4 * width, 8 * width, 8 * width, 8 * width};
    int64_t in = channels;
    for (size_t s = 0; s < widths.size(); ++s) {
      encoder_.push_back(register_module("encoder" + std::to_string(s), conv_bn_relu(in, widths[s], 2)));
      in = widths[s];
    }
    // Up from stage s + 1, concatenated with stage s's output, two convs. As the reference, the way up
    // narrows one stage early: to the width of stage s - 1 (8w, 4w, 2w, w, w).
    for (int64_t s = static_cast<int64_t>(widths.size()) - 2; s >= 0; --s) {
      const int64_t out = widths[static_cast<size_t>(std::max<int64_t>(s - 1, 0))];
      ups_.push_back(register_module("up" + std::to_string(s), upsample_conv(in, out)));
      decoder_.push_back(register_module("decoder" + std::to_string(s),
                                         conv_bn_relu(out + widths[static_cast<size_t>(s)], out, 2)));
      in = out;
    }
    output_ = register_module("output", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 2, 3).padding(1)));
  }

  /// Logits of (normal, anomalous) per pixel: N x 2 x H x W.
  torch::Tensor forward(torch::Tensor x) {
    std::vector<torch::Tensor> skips;
    for (size_t s = 0; s < encoder_.size(); ++s) {
      if (s > 0) x = torch::max_pool2d(x, 2);
      skips.push_back(x = encoder_[s]->forward(x));
    }
    for (size_t k = 0; k < ups_.size(); ++k) {
      const auto& skip = skips[skips.size() - 2 - k];
      x = decoder_[k]->forward(torch::cat({ups_[k]->forward(x), skip}, 1));
    }
    return output_->forward(x);
  }

 private:
  std::vector<torch::nn::Sequential> encoder_, ups_, decoder_;
  torch::nn::Conv2d output_{nullptr};
};
TORCH_MODULE(DiscriminativeNetwork);

}  // namespace adx::nn
