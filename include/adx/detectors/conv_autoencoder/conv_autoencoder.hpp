#pragma once
// Convolutional autoencoder for images: strided conv encoder, a dense code,
// and a mirrored transposed-conv decoder. Score = per-image reconstruction MSE.
#include <adx/detectors/components/reconstruction.hpp>
#include <adx/nn/conv.hpp>
#include <adx/nn/mlp.hpp>

#include <torch/torch.h>

namespace adx {

struct ConvAutoencoderOptions {
  ADX_OPTIONS_STRUCT;
  /// Channels of the stride-2 conv layers (each halves H and W).
  ADX_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{32, 64};
  /// Width of the dense code.
  ADX_ARG(int64_t, latent) = 32;
  /// BatchNorm in encoder and decoder.
  ADX_ARG(bool, batch_norm) = true;
  /// Training loop settings (30 epochs: each costs more than a dense epoch).
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(30);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);
};

class ConvAutoencoderNetImpl : public torch::nn::Module {
 public:
  ConvAutoencoderNetImpl(const std::vector<int64_t>& item_shape, const ConvAutoencoderOptions& o)
      : channels_(item_shape[0]), height_(item_shape[1]), width_(item_shape[2]) {
    const auto& ch = o.channels();
    code_h_ = nn::downsampled(height_, ch.size());
    code_w_ = nn::downsampled(width_, ch.size());
    const int64_t flat = ch.back() * code_h_ * code_w_;
    encoder = register_module("encoder", nn::make_conv_encoder(channels_, ch, o.batch_norm()));
    to_code = register_module("to_code", torch::nn::Linear(flat, o.latent()));
    from_code = register_module("from_code", torch::nn::Linear(o.latent(), flat));
    decoder = register_module("decoder", nn::make_conv_decoder(ch, channels_, o.batch_norm()));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto code = to_code->forward(encoder->forward(x).flatten(1));
    auto h = torch::leaky_relu(from_code->forward(code), 0.2).reshape({x.size(0), -1, code_h_, code_w_});
    auto out = decoder->forward(h);
    // Sizes that are not multiples of 2^levels come back slightly larger; crop to the input.
    return out.slice(2, 0, height_).slice(3, 0, width_);
  }

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear to_code{nullptr}, from_code{nullptr};

 private:
  int64_t channels_, height_, width_, code_h_ = 1, code_w_ = 1;
};
TORCH_MODULE(ConvAutoencoderNet);

class ConvAutoencoder : public ReconstructionDetector<ConvAutoencoderOptions, ConvAutoencoderNet> {
 public:
  using Options = ConvAutoencoderOptions;
  explicit ConvAutoencoder(Options options = Options()) : ReconstructionDetector(std::move(options)) {
    ADX_CHECK_AS(OptionError, !options_.channels().empty(), "conv_autoencoder needs at least one conv layer");
    ADX_CHECK_AS(OptionError, options_.latent() > 0, "latent must be > 0, got {}", options_.latent());
  }
  std::string type() const override { return "conv_autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  ConvAutoencoderNet make_net(const std::vector<int64_t>& shape) override {
    const int64_t min_side = int64_t{1} << options_.channels().size();
    ADX_CHECK_AS(ShapeError, shape[1] >= min_side && shape[2] >= min_side,
                 "conv_autoencoder with {} conv layers needs images of at least {}x{}, got {}x{}",
                 options_.channels().size(), min_side, min_side, shape[1], shape[2]);
    return ConvAutoencoderNet(shape, options_);
  }
};

}  // namespace adx
