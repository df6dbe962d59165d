#pragma once
// NSA's segmentation network (Schlüter et al., ECCV 2022; its reference resnet18_enc_dec): a ResNet-18
// encoder to layer 4 (stride 32), 1 x 1 convolutions 512 -> 256 -> 128, three transposed residual blocks
// that double the size (128 -> 64 -> 32 -> 16 channels), a bilinear doubling and a 7 x 7 stride-2
// transposed convolution to one logit per input pixel.
#include <adx/nn/resnet.hpp>

#include <torch/torch.h>

namespace adx::nn {

/// A basic residual block run backwards: a 3 x 3 transposed convolution with `stride` (doubling the size at
/// stride 2), BN, ReLU, a 3 x 3 convolution, BN, plus the input brought to the new size and width by a
/// 1 x 1 transposed convolution and BN; then ReLU.
class TransposeBasicBlockImpl : public torch::nn::Module {
 public:
  TransposeBasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
    using namespace torch::nn;
    conv1_ = register_module("conv1", ConvTranspose2d(ConvTranspose2dOptions(in, out, 3).stride(stride).padding(1)
                                                          .output_padding(stride - 1).bias(false)));
    bn1_ = register_module("bn1", BatchNorm2d(out));
    conv2_ = register_module("conv2", Conv2d(Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2_ = register_module("bn2", BatchNorm2d(out));
    if (stride != 1 || in != out)
      upsample_ = register_module(
          "upsample", Sequential(ConvTranspose2d(ConvTranspose2dOptions(in, out, 1).stride(stride)
                                                     .output_padding(stride - 1).bias(false)),
                                 BatchNorm2d(out)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn2_->forward(conv2_->forward(torch::relu(bn1_->forward(conv1_->forward(x)))));
    return torch::relu(out + (upsample_.is_empty() ? x : upsample_->forward(x)));
  }

 private:
  torch::nn::ConvTranspose2d conv1_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential upsample_{nullptr};
};
TORCH_MODULE(TransposeBasicBlock);

class ResNetSegmenterImpl : public torch::nn::Module {
 public:
  ResNetSegmenterImpl() {
    using namespace torch::nn;
    encoder_ = register_module("encoder", ResNet(ResNetArch::ResNet18, 1));
    bottleneck_ = register_module("nin", Sequential(Conv2d(Conv2dOptions(512, 256, 1).bias(false)), ReLU(),
                                                    Conv2d(Conv2dOptions(256, 128, 1).bias(false)), ReLU()));
    up1_ = register_module("uplayer1", TransposeBasicBlock(128, 64, 2));
    up2_ = register_module("uplayer2", TransposeBasicBlock(64, 32, 2));
    up3_ = register_module("uplayer3", TransposeBasicBlock(32, 16, 2));
    output_ = register_module("convtranspose1", ConvTranspose2d(ConvTranspose2dOptions(16, 1, 7).stride(2).padding(3)
                                                                    .output_padding(1).bias(false)));
  }
  /// Logits N x 1 x H x W of RGB images N x 3 x H x W (H, W multiples of 32).
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = bottleneck_->forward(encoder_->features(x, {"layer4"}).at("layer4"));
    h = up3_->forward(up2_->forward(up1_->forward(h)));
    namespace F = torch::nn::functional;
    h = F::interpolate(h, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kBilinear)
                              .align_corners(true));
    return output_->forward(h);
  }

 private:
  ResNet encoder_{nullptr};
  torch::nn::Sequential bottleneck_{nullptr};
  TransposeBasicBlock up1_{nullptr}, up2_{nullptr}, up3_{nullptr};
  torch::nn::ConvTranspose2d output_{nullptr};
};
TORCH_MODULE(ResNetSegmenter);

}  // namespace adx::nn
