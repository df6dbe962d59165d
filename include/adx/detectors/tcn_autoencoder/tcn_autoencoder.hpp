#pragma once
// Causal temporal-convolution autoencoder: dilated causal convolutions encode the
// window, a 1x1 convolution narrows the channels and average pooling shortens time, so
// the code cannot copy its input; the decoder upsamples, runs its own dilated stack and
// maps back to the features. Score = each step's squared reconstruction error. Not
// Thill et al.'s TCN-AE (non-causal kernel-20 convolutions, skip connections,
// log-cosh loss, a Mahalanobis score of error windows); docs/series.md lists the differences.
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/nn/sequence.hpp>

#include <torch/torch.h>

namespace adx {

struct TcnAutoencoderOptions {
  ADX_OPTIONS_STRUCT;
  /// Channels of the dilated convolutions.
  ADX_ARG(int64_t, channels) = 32;
  /// Kernel width of each convolution.
  ADX_ARG(int64_t, kernel) = 5;
  /// Dilations of the stack; the receptive field is 1 + (kernel - 1) * sum(dilations).
  ADX_ARG(std::vector<int64_t>, dilations) = std::vector<int64_t>{1, 2, 4, 8, 16};
  /// Channels of the code.
  ADX_ARG(int64_t, code_channels) = 8;
  /// Time steps averaged into one code step.
  ADX_ARG(int64_t, pooling) = 4;
  /// Training loop settings.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(30).batch_size(128).weight_decay(0.0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class TcnAutoencoderNetImpl : public torch::nn::Module {
 public:
  TcnAutoencoderNetImpl(int64_t features, const TcnAutoencoderOptions& o);
  /// B x L x D -> B x L x D.
  torch::Tensor forward(const torch::Tensor& x);
  nn::TemporalConvStack encoder{nullptr}, decoder{nullptr};
  torch::nn::Conv1d to_code{nullptr}, output{nullptr};

 private:
  int64_t pooling_;
};
TORCH_MODULE(TcnAutoencoderNet);

class TcnAutoencoder : public ReconstructionDetector<TcnAutoencoderOptions, TcnAutoencoderNet> {
 public:
  using Options = TcnAutoencoderOptions;
  explicit TcnAutoencoder(Options options = Options());
  std::string type() const override { return "tcn_autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }

 protected:
  TcnAutoencoderNet make_net(const std::vector<int64_t>& item_shape) override;
};

}  // namespace adx
