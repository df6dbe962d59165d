#pragma once
// Forecasting-error detector: an LSTM reads the first L - horizon steps of each window
// and predicts the last `horizon` steps. A step's score is its squared forecast error
// per feature, divided by that feature's mean squared error on held-out normal data
// (so every feature counts in units of its own predictability), averaged over features.
// The first L - horizon steps of a series are never forecast; their per-step score is NaN.
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/nn/sequence.hpp>

#include <torch/torch.h>

namespace adx {

struct ForecasterOptions {
  ADX_OPTIONS_STRUCT;
  /// Steps predicted at the end of each window.
  ADX_ARG(int64_t, horizon) = 1;
  /// Width of the LSTM state.
  ADX_ARG(int64_t, hidden) = 64;
  /// Stacked LSTM layers.
  ADX_ARG(int64_t, layers) = 1;
  /// Training loop settings.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(30).batch_size(128).weight_decay(0.0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class ForecasterNetImpl : public torch::nn::Module {
 public:
  ForecasterNetImpl(int64_t features, const ForecasterOptions& o);
  /// The forecast of the last `horizon` steps of each window: B x horizon x D.
  torch::Tensor forward(const torch::Tensor& window);
  /// The last `horizon` steps of each window, which forward() predicts.
  torch::Tensor target(const torch::Tensor& window) const;
  nn::LstmSummary summary{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor error_scale;  ///< per-feature mean squared forecast error on held-out normal data

 private:
  int64_t horizon_, features_;
};
TORCH_MODULE(ForecasterNet);

class Forecaster : public ReconstructionDetector<ForecasterOptions, ForecasterNet> {
 public:
  using Options = ForecasterOptions;
  explicit Forecaster(Options options = Options());
  std::string type() const override { return "forecaster"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }

 protected:
  ForecasterNet make_net(const std::vector<int64_t>& item_shape) override;
  torch::Tensor loss(const torch::Tensor& x, bool) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
};

}  // namespace adx
