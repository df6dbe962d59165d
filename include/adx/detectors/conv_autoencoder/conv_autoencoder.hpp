#pragma once
// Convolutional autoencoder for images: strided conv encoder, a dense code,
// and a mirrored transposed-conv decoder. Score = per-image reconstruction MSE.
#include <adx/detectors/components/bases/reconstruction.hpp>
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

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class ConvAutoencoderNetImpl : public torch::nn::Module {
 public:
  ConvAutoencoderNetImpl(const std::vector<int64_t>& item_shape, const ConvAutoencoderOptions& o);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear to_code{nullptr}, from_code{nullptr};

 private:
  int64_t channels_, height_, width_, code_h_ = 1, code_w_ = 1;
};
TORCH_MODULE(ConvAutoencoderNet);

class ConvAutoencoder : public ReconstructionDetector<ConvAutoencoderOptions, ConvAutoencoderNet> {
 public:
  using Options = ConvAutoencoderOptions;
  explicit ConvAutoencoder(Options options = Options());
  std::string type() const override { return "conv_autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  ConvAutoencoderNet make_net(const std::vector<int64_t>& shape) override;
};

}  // namespace adx
