#include <adx/detectors/forecaster/forecaster.hpp>
#include "detectors/builtin_detector.hpp"


#include <limits>

namespace adx {

ForecasterNetImpl::ForecasterNetImpl(int64_t features, const ForecasterOptions& o)
    : horizon_(o.horizon()), features_(features) {
  summary = register_module("summary", nn::LstmSummary(features, o.hidden(), o.layers()));
  head = register_module("head", torch::nn::Linear(o.hidden(), o.horizon() * features));
  error_scale = register_buffer("error_scale", torch::ones({features}));
}

torch::Tensor ForecasterNetImpl::forward(const torch::Tensor& window) {
  const auto context = window.narrow(1, 0, window.size(1) - horizon_);
  return head->forward(summary->forward(context)).reshape({window.size(0), horizon_, features_});
}

torch::Tensor ForecasterNetImpl::target(const torch::Tensor& window) const {
  return window.narrow(1, window.size(1) - horizon_, horizon_);
}

void ForecasterOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).at_least("horizon", horizon(), 1).at_least("hidden", hidden(), 1).at_least("layers", layers(), 1);
}

Forecaster::Forecaster(Options options) : ReconstructionDetector(std::move(options)) {}

ForecasterNet Forecaster::make_net(const std::vector<int64_t>& item_shape) {
  ADX_CHECK_AS(OptionError, item_shape.at(0) > options_.horizon(),
               "forecaster: windows of {} steps leave no context before a horizon of {}", item_shape.at(0),
               options_.horizon());
  return ForecasterNet(item_shape.at(1), options_);
}

torch::Tensor Forecaster::loss(const torch::Tensor& x, bool) { return (net_->forward(x) - net_->target(x)).pow(2).mean(); }

void Forecaster::fit_model(const Data& train, const Data& validation) {
  ReconstructionDetector::fit_model(train, validation);
  // Error scale from held-out data when there is some, else from the training windows.
  net_->eval();
  const auto errors = map_batches(validation.size() > 0 ? validation : train, options_.runtime().score_batch_size(),
                                  [this](const Batch& b) { return (net_->forward(b.x) - net_->target(b.x)).pow(2).mean(1); });
  torch::NoGradGuard no_grad;
  net_->error_scale.copy_(errors.mean(0).clamp_min(1e-8));
}

Scores Forecaster::score_model(const Batch& batch) {
  const auto error = ((net_->forward(batch.x) - net_->target(batch.x)).pow(2) / net_->error_scale).mean(2);
  Scores s;
  s.per_item = error.mean(1);
  const int64_t context = batch.x.size(1) - options_.horizon();
  s.step_map = torch::cat(
      {torch::full({batch.x.size(0), context}, std::numeric_limits<float>::quiet_NaN(), error.options()), error}, 1);
  return s;
}

ADX_BUILTIN_DETECTOR(forecaster, factory_for<Forecaster>(),
                     "LSTM forecast of the window's last steps, normalised error")

}  // namespace adx
