#include <adx/detectors/deep_svdd/deep_svdd.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

DeepSvddNetImpl::DeepSvddNetImpl(const std::vector<int64_t>& item_shape, const InputKind& kind, const DeepSvddOptions& o) {
  if (kind.traits().image_rows) {
    spec_ = nn::LeNetSpec{item_shape[0], item_shape[1], item_shape[2], o.conv_channels(), o.rep_dim(), o.bias()};
    lenet = register_module("encoder", nn::LeNetEncoder(spec_));
  } else {
    mlp = register_module("encoder", nn::make_mlp({item_shape[0], o.hidden(), o.rep_dim(), true, 0.0, o.bias(), 0.01}));
  }
  center = register_buffer("center", torch::zeros({o.rep_dim()}));
  radius = register_buffer("radius", torch::zeros({}));
}

std::shared_ptr<torch::nn::Module> DeepSvddNetImpl::make_decoder(int64_t in_features, const DeepSvddOptions& o) const {
  if (lenet) return nn::LeNetDecoder(spec_, *lenet).ptr();
  std::vector<int64_t> reversed(o.hidden().rbegin(), o.hidden().rend());
  return nn::make_mlp({o.rep_dim(), reversed, in_features, true, 0.0, o.bias(), 0.01}).ptr();
}

void DeepSvddOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.in("nu", nu(), 0.0, 1.0, "(]")
      .at_least("rep_dim", rep_dim(), 1)
      .each_at_least("hidden", hidden(), 1, 0)
      .each_at_least("conv_channels", conv_channels(), 1, 0)
      .that(!bias(), "bias",
            "must be false: deep_svdd is bias-free, since with bias terms the network can map every input to the "
            "center and the hypersphere collapses (Ruff et al. 2018, Prop. 2)")
      .at_least("center_eps", center_eps(), 0.0)
      .at_least("warm_up_epochs", warm_up_epochs(), 0);
}

DeepSvdd::DeepSvdd(Options options) : DetectorWithOptions(std::move(options)) {}

Preprocess DeepSvdd::auto_preprocess(const InputKind& kind) const {
  return kind.traits().image_rows ? Preprocess::GcnMinMax : Preprocess::Standardize;
}

void DeepSvdd::build(const std::vector<int64_t>& item_shape, const InputKind& kind) {
  net_ = DeepSvddNet(item_shape, kind, options_);
  net_->to(device());
}

void DeepSvdd::fit_model(const Data& train, const Data& validation) {
  if (options_.pretrain()) pretrain(train, validation);
  init_center(train);
  const bool soft = options_.objective() == SvddObjective::SoftBoundary;
  auto objective = [this, soft](const torch::Tensor& dist) {
    if (!soft) return dist.mean();
    const auto r2 = net_->radius.pow(2);
    return r2 + (1.0 / options_.nu()) * torch::relu(dist - r2).mean();
  };
  int64_t epoch = 0;
  torch::Tensor batch_distances;
  TrainStep step;
  step.name = "deep svdd";
  step.parameters = net_->parameters();
  step.loss = [&](const Batch& in) {
    batch_distances = net_->distance(in.x);
    return objective(batch_distances);
  };
  // As Ruff et al.'s trainer: after the optimiser step, R becomes the (1 - nu) quantile
  // of the batch's distances (get_radius), so each loss uses the R of the step before.
  step.after_step = [&](const torch::Tensor&) {
    if (!soft || epoch < options_.warm_up_epochs()) return;
    torch::NoGradGuard no_grad;
    net_->radius.copy_(torch::quantile(batch_distances.detach().sqrt(), 1.0 - options_.nu()));
  };
  // With R = 0 during the warm-up the objective is not comparable with later epochs: early stopping
  // watches only the epochs after it.
  train_steps(*net_, train, validation, options_.train(), {step},
              [&](const Batch& in, bool) { return objective(net_->distance(in.x)); }, progress(), type(),
              [&](int64_t e) { epoch = e; }, soft ? options_.warm_up_epochs() : 0);
}

Scores DeepSvdd::score_model(const Batch& batch) {
  Scores s;
  s.per_item = net_->distance(batch.x);
  if (options_.objective() == SvddObjective::SoftBoundary) s.per_item = s.per_item - net_->radius.pow(2);
  return s;
}

void DeepSvdd::pretrain(const Data& train, const Data& validation) {
  struct Pretrainer : torch::nn::Module {
    Pretrainer(DeepSvddNet net, std::shared_ptr<torch::nn::Module> decoder) : net(std::move(net)) {
      register_module("net", this->net);
      this->decoder = register_module("decoder", std::move(decoder));
    }
    DeepSvddNet net;
    std::shared_ptr<torch::nn::Module> decoder;
  };
  const int64_t in_features = nn::numel_of(train.item_shape());
  auto decoder = net_->make_decoder(in_features, options_);
  auto ae = std::make_shared<Pretrainer>(net_, decoder);
  ae->to(device());
  auto decode = [&](const torch::Tensor& code) -> torch::Tensor {
    if (auto d = std::dynamic_pointer_cast<nn::LeNetDecoderImpl>(decoder)) return d->forward(code);
    return std::dynamic_pointer_cast<torch::nn::SequentialImpl>(decoder)->forward(code);
  };
  train_module(
      *ae, train, validation, options_.pretrain_train(),
      [&](const Batch& in, bool) {
        const auto& x = in.x;
        const auto recon = decode(net_->forward(x)).reshape(x.sizes());
        return (recon - x).pow(2).mean();
      },
      progress(), "pretrain");
}

void DeepSvdd::init_center(const Data& train) {
  torch::NoGradGuard no_grad;
  net_->eval();
  const auto outputs = map_batches(train, options_.runtime().score_batch_size(),
                                   [&](const Batch& b) { return net_->forward(b.x).to(torch::kFloat64); });
  auto c = outputs.mean(0).to(torch::kFloat32);
  const double eps = options_.center_eps();
  c = torch::where((c.abs() < eps) & (c < 0), torch::full_like(c, -eps), c);
  c = torch::where((c.abs() < eps) & (c >= 0), torch::full_like(c, eps), c);
  net_->center.copy_(c);
}

ADX_BUILTIN_DETECTOR(deep_svdd, factory_for<DeepSvdd>(), "Deep SVDD, one-class or soft-boundary hypersphere")

}  // namespace adx
