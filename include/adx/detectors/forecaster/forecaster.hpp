#pragma once
// Forecasting-error detector: an LSTM reads the first L - horizon steps of each window
// and predicts the last `horizon` steps. A step's score is its squared forecast error
// per feature, divided by that feature's mean squared error on held-out normal data
// (so every feature counts in units of its own predictability), averaged over features.
// The first L - horizon steps of a series are never forecast; their per-step score is NaN.
#include <adx/detectors/components/reconstruction.hpp>
#include <adx/nn/sequence.hpp>

#include <torch/torch.h>
#include <limits>

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
};

class ForecasterNetImpl : public torch::nn::Module {
 public:
  ForecasterNetImpl(int64_t features, const ForecasterOptions& o) : horizon_(o.horizon()), features_(features) {
    summary = register_module("summary", nn::LstmSummary(features, o.hidden(), o.layers()));
    head = register_module("head", torch::nn::Linear(o.hidden(), o.horizon() * features));
    error_scale = register_buffer("error_scale", torch::ones({features}));
  }
  /// The forecast of the last `horizon` steps of each window: B x horizon x D.
  torch::Tensor forward(const torch::Tensor& window) {
    const auto context = window.narrow(1, 0, window.size(1) - horizon_);
    return head->forward(summary->forward(context)).reshape({window.size(0), horizon_, features_});
  }
  torch::Tensor target(const torch::Tensor& window) const {
    return window.narrow(1, window.size(1) - horizon_, horizon_);
  }
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
  explicit Forecaster(Options options = Options()) : ReconstructionDetector(std::move(options)) {
    ADX_CHECK_AS(OptionError, options_.horizon() > 0 && options_.hidden() > 0 && options_.layers() > 0,
                 "horizon, hidden and layers must be > 0, got {}, {}, {}", options_.horizon(), options_.hidden(),
                 options_.layers());
  }
  std::string type() const override { return "forecaster"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }

 protected:
  ForecasterNet make_net(const std::vector<int64_t>& item_shape) override {
    ADX_CHECK_AS(OptionError, item_shape.at(0) > options_.horizon(),
                 "forecaster: windows of {} steps leave no context before a horizon of {}", item_shape.at(0),
                 options_.horizon());
    return ForecasterNet(item_shape.at(1), options_);
  }
  torch::Tensor loss(const torch::Tensor& x, bool) override {
    return (net_->forward(x) - net_->target(x)).pow(2).mean();
  }
  void fit_model(const Data& train, const Data& validation) override {
    ReconstructionDetector::fit_model(train, validation);
    // Error scale from held-out data when there is some, else from the training windows.
    net_->eval();
    const auto errors = map_batches(validation.size() > 0 ? validation : train, options_.runtime().score_batch_size(),
                                    [this](const Batch& b) {
      return (net_->forward(b.x) - net_->target(b.x)).pow(2).mean(1);
    });
    torch::NoGradGuard no_grad;
    net_->error_scale.copy_(errors.mean(0).clamp_min(1e-8));
  }
  Scores score_model(const Batch& batch) override {
    const auto error = ((net_->forward(batch.x) - net_->target(batch.x)).pow(2) / net_->error_scale).mean(2);
    Scores s;
    s.per_item = error.mean(1);
    const int64_t context = batch.x.size(1) - options_.horizon();
    s.step_map = torch::cat({torch::full({batch.x.size(0), context}, std::numeric_limits<float>::quiet_NaN(),
                                         error.options()),
                             error},
                            1);
    return s;
  }
};

}  // namespace adx
