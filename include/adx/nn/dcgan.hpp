#pragma once
// DCGAN building blocks as GANomaly uses them (Akcay et al. 2018): a strided
// 4x4 conv encoder from an isize x isize image down to a 1 x 1 code, the
// mirrored transposed-conv decoder ending in tanh, and DCGAN initialisation.
#include <torch/torch.h>

namespace adx::nn {

struct DcganSpec {
  int64_t image_size = 32;  ///< power of two >= 16
  int64_t channels = 1;
  int64_t latent = 100;     ///< nz
  int64_t width = 64;       ///< ngf / ndf
};

/// Conv(4, s2) + LeakyReLU(0.2), then Conv(4, s2) + BN + LeakyReLU(0.2) until 4 x 4, then Conv(4) to `out`.
/// `features()` is everything before the last conv (the discriminator's feature layer).
/// A WGAN-GP critic leaves out BatchNorm (`batch_norm` false): the gradient penalty is per item.
class DcganEncoderImpl : public torch::nn::Module {
 public:
  DcganEncoderImpl(const DcganSpec& s, int64_t out, bool batch_norm = true) {
    features = register_module("features", torch::nn::Sequential());
    features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(s.channels, s.width, 4).stride(2).padding(1).bias(false)));
    features->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    int64_t size = s.image_size / 2, width = s.width;
    while (size > 4) {
      features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(width, width * 2, 4).stride(2).padding(1).bias(false)));
      if (batch_norm) features->push_back(torch::nn::BatchNorm2d(width * 2));
      features->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
      width *= 2;
      size /= 2;
    }
    final = register_module("final", torch::nn::Conv2d(torch::nn::Conv2dOptions(width, out, 4).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return final->forward(features->forward(x)); }

  torch::nn::Sequential features{nullptr};
  torch::nn::Conv2d final{nullptr};
};
TORCH_MODULE(DcganEncoder);

/// ConvTranspose(4) from the 1 x 1 code to 4 x 4, doubling with BN + ReLU, a last ConvTranspose to the
/// image and tanh.
inline torch::nn::Sequential make_dcgan_decoder(const DcganSpec& s) {
  int64_t width = s.width / 2, size = 4;
  while (size != s.image_size) width *= 2, size *= 2;
  torch::nn::Sequential seq;
  seq->push_back(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(s.latent, width, 4).bias(false)));
  seq->push_back(torch::nn::BatchNorm2d(width));
  seq->push_back(torch::nn::ReLU());
  for (size = 4; size < s.image_size / 2; size *= 2, width /= 2) {
    seq->push_back(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(width, width / 2, 4).stride(2).padding(1).bias(false)));
    seq->push_back(torch::nn::BatchNorm2d(width / 2));
    seq->push_back(torch::nn::ReLU());
  }
  seq->push_back(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(width, s.channels, 4).stride(2).padding(1).bias(false)));
  seq->push_back(torch::nn::Tanh());
  return seq;
}

/// DCGAN initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0.
inline void dcgan_init(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) conv->weight.normal_(0.0, 0.02);
    if (auto* deconv = m->as<torch::nn::ConvTranspose2d>()) deconv->weight.normal_(0.0, 0.02);
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->weight.normal_(1.0, 0.02);
      bn->bias.zero_();
    }
  }
}

/// Smallest power of two >= max(height, width) and >= 16.
inline int64_t dcgan_size_for(int64_t height, int64_t width) {
  int64_t size = 16;
  while (size < std::max(height, width)) size *= 2;
  return size;
}

}  // namespace adx::nn
