#pragma once
// Shared building blocks: strided convolutional encoders and mirrored decoders for images.
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

/// Stores a network's 4-D weights channels-last (N x H x W x C in memory). With inputs in the same
/// layout (`channels_last`), oneDNN's CPU convolutions skip their reorders: in a Python A/B of
/// GANomaly's DCGAN networks, a training step ran about a fifth faster and scoring about a quarter. Values do not change, only their
/// order in memory; model files hold them in the standard layout, and loading copies into this one.
inline void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

/// `x` (N x C x H x W) in the channels-last layout, for a network after use_channels_last.
inline torch::Tensor channels_last(const torch::Tensor& x) { return x.contiguous(at::MemoryFormat::ChannelsLast); }

/// Conv(3x3, stride 2) -> [BatchNorm] -> LeakyReLU(0.2) per entry of `channels`; halves H and W each time.
inline torch::nn::Sequential make_conv_encoder(int64_t in_channels, const std::vector<int64_t>& channels,
                                               bool batch_norm = true, bool bias = true) {
  torch::nn::Sequential seq;
  int64_t c = in_channels;
  for (int64_t out : channels) {
    seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, 3).stride(2).padding(1).bias(bias)));
    if (batch_norm) seq->push_back(torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).affine(bias)));
    seq->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    c = out;
  }
  return seq;
}

/// Mirror of make_conv_encoder: ConvTranspose(3x3, stride 2) doubling H and W, ending in `out_channels`
/// with no activation on the output.
inline torch::nn::Sequential make_conv_decoder(const std::vector<int64_t>& channels, int64_t out_channels,
                                               bool batch_norm = true) {
  torch::nn::Sequential seq;
  for (size_t i = channels.size(); i-- > 0;) {
    const int64_t in = channels[i];
    const bool last = i == 0;
    const int64_t out = last ? out_channels : channels[i - 1];
    seq->push_back(torch::nn::ConvTranspose2d(
        torch::nn::ConvTranspose2dOptions(in, out, 3).stride(2).padding(1).output_padding(1)));
    if (!last) {
      if (batch_norm) seq->push_back(torch::nn::BatchNorm2d(out));
      seq->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    }
  }
  return seq;
}

/// Spatial size after `levels` stride-2 convolutions with padding 1.
inline int64_t downsampled(int64_t size, size_t levels) {
  for (size_t i = 0; i < levels; ++i) size = (size - 1) / 2 + 1;
  return size;
}

}  // namespace adx::nn

namespace adx::nn {

/// Image classifier: per entry of `channels`, `convs_per_stage` 3x3 Conv -> BatchNorm -> ReLU and a
/// 2x2 max pool, then global average pooling and a linear layer to `classes` logits.
inline torch::nn::Sequential make_conv_classifier(int64_t in_channels, const std::vector<int64_t>& channels,
                                                  int64_t classes, int64_t convs_per_stage = 1) {
  torch::nn::Sequential seq;
  int64_t c = in_channels;
  for (int64_t out : channels) {
    for (int64_t rep = 0; rep < convs_per_stage; ++rep) {
      seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(rep == 0 ? c : out, out, 3).padding(1).bias(false)));
      seq->push_back(torch::nn::BatchNorm2d(out));
      seq->push_back(torch::nn::ReLU());
    }
    seq->push_back(torch::nn::MaxPool2d(2));
    c = out;
  }
  seq->push_back(torch::nn::AdaptiveAvgPool2d(1));
  seq->push_back(torch::nn::Flatten());
  seq->push_back(torch::nn::Linear(c, classes));
  return seq;
}

}  // namespace adx::nn
