#pragma once
// Deep SVDD (Ruff et al., ICML 2018): a bias-free network maps normal data
// into a small hypersphere around a fixed center c; the anomaly score is the
// squared distance to c.
//   objective one_class      minimise mean ||phi(x) - c||^2
//   objective soft_boundary  minimise R^2 + 1/nu * mean(max(0, ||phi(x) - c||^2 - R^2)),
//                            R set after each optimiser step to the (1 - nu) quantile of the
//                            batch's distances, from the end of warm-up on
// c is the mean of an initial forward pass, with entries near 0 pushed to
// +-center_eps. Optional autoencoder pretraining initialises the encoder.
// Tabular data use a bias-free MLP, images a bias-free LeNet; images are
// preprocessed with global contrast normalisation (L1) and min-max scaling.
#include <adx/detectors/detector.hpp>
#include <adx/nn/lenet.hpp>
#include <adx/nn/mlp.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

enum class SvddObjective { OneClass, SoftBoundary };
ADX_ENUM_NAMES(SvddObjective, {SvddObjective::OneClass, "one_class"},
               {SvddObjective::SoftBoundary, "soft_boundary"});

struct DeepSvddOptions {
  ADX_OPTIONS_STRUCT;
  /// one_class or soft_boundary.
  ADX_ARG(SvddObjective, objective) = SvddObjective::OneClass;
  /// Soft boundary: upper bound on the fraction of training items outside the sphere.
  ADX_ARG(double, nu) = 0.1;
  /// Dimension of the output representation.
  ADX_ARG(int64_t, rep_dim) = 32;
  /// Tabular data: hidden widths of the MLP.
  ADX_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{128, 64};
  /// Images: channels of the LeNet conv levels (each halves H and W).
  ADX_ARG(std::vector<int64_t>, conv_channels) = std::vector<int64_t>{8, 4};
  /// Must stay false: bias terms let the network map everything onto c.
  ADX_ARG(bool, bias) = false;
  /// Center entries closer to 0 than this are pushed to +-center_eps.
  ADX_ARG(double, center_eps) = 0.1;
  /// Soft boundary: epochs before R starts to be updated.
  ADX_ARG(int64_t, warm_up_epochs) = 10;
  /// Initialise the encoder from an autoencoder trained on the same data.
  ADX_ARG(bool, pretrain) = true;
  /// Autoencoder pretraining settings.
  ADX_ARG(TrainOptions, pretrain_train) = TrainOptions().epochs(30).lr(1e-3).weight_decay(5e-7).batch_size(128);
  /// Deep SVDD training settings (Ruff et al.: Adam 1e-4, weight decay 5e-7, batch 128, LR drop x0.1).
  ADX_ARG(TrainOptions, train) = TrainOptions()
                                     .epochs(50)
                                     .lr(1e-4)
                                     .weight_decay(5e-7)
                                     .batch_size(128)
                                     .lr_schedule(LrSchedule::Step)
                                     .lr_step(40);
  ADX_DETECTOR_OPTIONS(Preprocess::Auto);
};

/// The Deep SVDD network phi with its center c and radius R as buffers.
class DeepSvddNetImpl : public torch::nn::Module {
 public:
  DeepSvddNetImpl(const std::vector<int64_t>& item_shape, const InputKind& kind, const DeepSvddOptions& o) {
    if (kind.traits().image_rows) {
      spec_ = nn::LeNetSpec{item_shape[0], item_shape[1], item_shape[2], o.conv_channels(), o.rep_dim(), o.bias()};
      lenet = register_module("encoder", nn::LeNetEncoder(spec_));
    } else {
      mlp = register_module("encoder", nn::make_mlp({item_shape[0], o.hidden(), o.rep_dim(), true, 0.0, o.bias(), 0.01}));
    }
    center = register_buffer("center", torch::zeros({o.rep_dim()}));
    radius = register_buffer("radius", torch::zeros({}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return lenet ? lenet->forward(x) : mlp->forward(x); }
  /// Squared distance of each item's representation to the center.
  torch::Tensor distance(const torch::Tensor& x) { return (forward(x) - center).pow(2).sum(1); }
  /// A decoder mirroring the encoder, for autoencoder pretraining.
  std::shared_ptr<torch::nn::Module> make_decoder(int64_t in_features, const DeepSvddOptions& o) const {
    if (lenet) return nn::LeNetDecoder(spec_, *lenet).ptr();
    std::vector<int64_t> reversed(o.hidden().rbegin(), o.hidden().rend());
    return nn::make_mlp({o.rep_dim(), reversed, in_features, true, 0.0, o.bias(), 0.01}).ptr();
  }

  torch::nn::Sequential mlp{nullptr};
  nn::LeNetEncoder lenet{nullptr};
  torch::Tensor center, radius;

 private:
  nn::LeNetSpec spec_;
};
TORCH_MODULE(DeepSvddNet);

class DeepSvdd : public DetectorWithOptions<DeepSvddOptions> {
 public:
  using Options = DeepSvddOptions;
  explicit DeepSvdd(Options options = Options()) : DetectorWithOptions(std::move(options)) {
    ADX_CHECK_AS(OptionError, !options_.bias(),
                 "deep_svdd must be bias-free: with bias terms the network can map every input to the center "
                 "and the hypersphere collapses (Ruff et al. 2018, Prop. 2); set bias=false");
    ADX_CHECK_AS(OptionError, options_.nu() > 0 && options_.nu() <= 1, "nu must be in (0, 1], got {}",
                 options_.nu());
    ADX_CHECK_AS(OptionError, options_.rep_dim() > 0, "rep_dim must be > 0, got {}", options_.rep_dim());
    ADX_CHECK_AS(OptionError, options_.center_eps() >= 0, "center_eps must be >= 0, got {}",
                 options_.center_eps());
  }
  std::string type() const override { return "deep_svdd"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kImage}; }
  /// Radius R (soft boundary; 0 for one_class).
  double radius() const { return net_ ? net_->radius.item<double>() : 0.0; }

 protected:
  Preprocess auto_preprocess(const InputKind& kind) const override {
    return kind.traits().image_rows ? Preprocess::GcnMinMax : Preprocess::Standardize;
  }

  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override {
    net_ = DeepSvddNet(item_shape, kind, options_);
    net_->to(device());
  }

  void fit_model(const Data& train, const Data& validation) override {
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

  Scores score_model(const Batch& batch) override {
    Scores s;
    s.per_item = net_->distance(batch.x);
    if (options_.objective() == SvddObjective::SoftBoundary) s.per_item = s.per_item - net_->radius.pow(2);
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Trains encoder + mirrored decoder on reconstruction; the encoder keeps its weights.
  void pretrain(const Data& train, const Data& validation) {
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

  // c = mean representation of the training data; entries near 0 pushed to +-eps.
  void init_center(const Data& train) {
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

  DeepSvddNet net_{nullptr};
};

}  // namespace adx
