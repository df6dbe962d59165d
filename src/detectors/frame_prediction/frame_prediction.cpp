#include <adx/detectors/frame_prediction/frame_prediction.hpp>
#include "detectors/builtin_detector.hpp"

#include <limits>

namespace adx {

FramePredictionNetImpl::FramePredictionNetImpl(const std::vector<int64_t>& item_shape, const FramePredictionOptions& o)
    : context(o.context()) {
  const int64_t channels = item_shape.at(1);
  if (o.architecture() == PredictorArchitecture::Unet)
    unet = register_module("unet", nn::PredictionUnet(o.context(), channels, o.widths()));
  else
    convlstm = register_module("convlstm", nn::ConvLstmPredictor(channels, o.hidden()));
  if (o.adversarial_weight() > 0) discriminator = register_module("discriminator", nn::make_patch_discriminator(channels, 64));
}

torch::Tensor FramePredictionNetImpl::forward(const torch::Tensor& clips) {
  const int64_t length = clips.size(1), predicted = length - context;
  // Every frame t >= context of a clip, predicted from the `context` frames before it: one batch of
  // B * predicted context stacks, in [-1, 1] as the paper's networks expect.
  const auto scaled = clips * 2 - 1;
  std::vector<torch::Tensor> stacks;
  for (int64_t t = context; t < length; ++t) stacks.push_back(scaled.slice(1, t - context, t));
  const auto inputs = torch::stack(stacks, 1).flatten(0, 1);  // (B * predicted) x K x C x H x W
  const auto out = unet ? unet->forward(inputs) : convlstm->forward(inputs);
  return ((out + 1) / 2).view({clips.size(0), predicted, clips.size(2), clips.size(3), clips.size(4)});
}

torch::Tensor gradient_difference_loss(const torch::Tensor& prediction, const torch::Tensor& target) {
  auto dx = [](const torch::Tensor& t) { return (t.slice(-1, 1) - t.slice(-1, 0, -1)).abs(); };
  auto dy = [](const torch::Tensor& t) { return (t.slice(-2, 1) - t.slice(-2, 0, -1)).abs(); };
  return (dx(prediction) - dx(target)).abs().mean() + (dy(prediction) - dy(target)).abs().mean();
}

torch::Tensor psnr(const torch::Tensor& prediction, const torch::Tensor& target, int64_t patch) {
  return -10.0 * torch::log10(per_frame_error(prediction, target, patch).clamp_min(1e-10));
}

void FramePredictionOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.at_least("context", context(), 1)
      .each_at_least("widths", widths(), 1)
      .at_least("hidden", hidden(), 1)
      .at_least("intensity_weight", intensity_weight(), 0.0)
      .at_least("gradient_weight", gradient_weight(), 0.0)
      .at_least("adversarial_weight", adversarial_weight(), 0.0)
      .above("discriminator_lr_ratio", discriminator_lr_ratio(), 0.0)
      .at_least("patch", patch(), 0);
  c.that(intensity_weight() + gradient_weight() > 0, "gradient_weight",
         "and '{}' cannot both be 0: nothing would tie the prediction to the frame", c.key("intensity_weight"));
}

FramePrediction::FramePrediction(Options options) : DetectorWithOptions(std::move(options)) {}

void FramePrediction::build(const std::vector<int64_t>& item_shape, const InputKind&) {
  ADX_CHECK_AS(OptionError, item_shape.at(0) > options_.context(),
               "frame_prediction predicts a frame from the {} before it: clips need at least {} frames, got {}",
               options_.context(), options_.context() + 1, item_shape.at(0));
  net_ = FramePredictionNet(item_shape, options_);
  net_->to(device());
}

torch::Tensor FramePrediction::targets(const torch::Tensor& clips) const {
  return clips.slice(1, options_.context());
}

std::pair<torch::Tensor, torch::Tensor> FramePrediction::prediction_loss(const torch::Tensor& clips) {
  const auto prediction = net_->forward(clips);
  const auto target = targets(clips).flatten(0, 1);
  const auto flat = prediction.flatten(0, 1);
  auto loss = options_.intensity_weight() * (flat - target).pow(2).mean() +
              options_.gradient_weight() * gradient_difference_loss(flat, target);
  return {loss, flat};
}

void FramePrediction::fit_model(const Data& train, const Data& validation) {
  const auto validation_loss = [this](const Batch& batch, bool) { return prediction_loss(batch.x).first; };
  if (!net_->discriminator) {
    train_module(*net_, train, validation, options_.train(), validation_loss, progress(), type());
    return;
  }
  // Generator then discriminator on every batch (least squares, as the paper's code); the
  // generator's step reuses its predictions for the discriminator's.
  auto& d = net_->discriminator;
  torch::Tensor predicted, target;
  TrainStep generator;
  generator.name = "generator";
  for (auto& p : net_->named_parameters())
    if (p.key().rfind("discriminator.", 0) != 0) generator.parameters.push_back(p.value());
  generator.loss = [&](const Batch& batch) {
    auto [loss, flat] = prediction_loss(batch.x);
    predicted = flat;
    target = targets(batch.x).flatten(0, 1);
    return loss + options_.adversarial_weight() * 0.5 * (d->forward(flat * 2 - 1) - 1).pow(2).mean();
  };
  TrainStep discriminator;
  discriminator.name = "discriminator";
  discriminator.parameters = d->parameters();
  discriminator.lr_scale = options_.discriminator_lr_ratio();
  discriminator.loss = [&](const Batch&) {
    return 0.5 * ((d->forward(target * 2 - 1) - 1).pow(2).mean() + d->forward(predicted.detach() * 2 - 1).pow(2).mean());
  };
  train_steps(*net_, train, validation, options_.train(), {generator, discriminator}, validation_loss, progress(),
              type());
}

Scores FramePrediction::score_model(const Batch& batch) {
  const auto prediction = net_->forward(batch.x);
  // B x predicted: -PSNR of every predicted frame; the context frames of a clip are not scored here.
  const auto negative_psnr = -psnr(prediction, targets(batch.x), options_.patch());
  Scores s;
  s.per_item = negative_psnr.mean(1);
  s.step_map = torch::full({batch.x.size(0), batch.x.size(1)}, std::numeric_limits<float>::quiet_NaN(),
                           negative_psnr.options());
  s.step_map.slice(1, options_.context()).copy_(negative_psnr);
  return s;
}

ADX_BUILTIN_DETECTOR(frame_prediction, factory_for<FramePrediction>(),
                     "future-frame prediction (U-Net or ConvLSTM), score = -PSNR per frame")

}  // namespace adx
