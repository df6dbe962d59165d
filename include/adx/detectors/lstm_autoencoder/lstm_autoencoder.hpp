#pragma once
// Repeat-vector LSTM autoencoder over a window: the encoder's last hidden state
// summarises the window, the decoder reads it at every step and unrolls it back into
// the window, and each step's squared reconstruction error is its score. Not
// Malhotra et al.'s EncDec-AD (reverse-order decoding from the encoder state, a
// Mahalanobis score of the error vectors); docs/series.md lists the differences.
//
//   adx::LstmAutoencoder lstm(adx::LstmAutoencoderOptions().hidden(64));
//   lstm.fit(adx::Data::series(train, {50, 1}));
//   auto per_step = lstm.score(adx::Data::series(test, {50, 1})).per_step;
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/nn/sequence.hpp>

#include <torch/torch.h>

namespace adx {

struct LstmAutoencoderOptions {
  ADX_OPTIONS_STRUCT;
  /// Width of the LSTM state (the code).
  ADX_ARG(int64_t, hidden) = 64;
  /// Stacked LSTM layers in the encoder and in the decoder.
  ADX_ARG(int64_t, layers) = 1;
  /// Training loop settings.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(30).batch_size(128).weight_decay(0.0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class LstmAutoencoderNetImpl : public torch::nn::Module {
 public:
  LstmAutoencoderNetImpl(int64_t features, const LstmAutoencoderOptions& o);
  /// B x L x D -> B x L x D: the code is fed to the decoder at every step.
  torch::Tensor forward(const torch::Tensor& x);
  nn::LstmSummary encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear output{nullptr};
};
TORCH_MODULE(LstmAutoencoderNet);

class LstmAutoencoder : public ReconstructionDetector<LstmAutoencoderOptions, LstmAutoencoderNet> {
 public:
  using Options = LstmAutoencoderOptions;
  explicit LstmAutoencoder(Options options = Options());
  std::string type() const override { return "lstm_autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }

 protected:
  LstmAutoencoderNet make_net(const std::vector<int64_t>& item_shape) override;
};

}  // namespace adx
