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
#include <adx/detectors/deep_svdd/lenet.hpp>
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

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// The Deep SVDD network phi with its center c and radius R as buffers.
class DeepSvddNetImpl : public torch::nn::Module {
 public:
  DeepSvddNetImpl(const std::vector<int64_t>& item_shape, const InputKind& kind, const DeepSvddOptions& o);
  torch::Tensor forward(const torch::Tensor& x) { return lenet ? lenet->forward(x) : mlp->forward(x); }
  /// Squared distance of each item's representation to the center.
  torch::Tensor distance(const torch::Tensor& x) { return (forward(x) - center).pow(2).sum(1); }
  /// A decoder mirroring the encoder, for autoencoder pretraining.
  std::shared_ptr<torch::nn::Module> make_decoder(int64_t in_features, const DeepSvddOptions& o) const;
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
  explicit DeepSvdd(Options options = Options());
  std::string type() const override { return "deep_svdd"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kImage}; }
  /// Radius R (soft boundary; 0 for one_class).
  double radius() const { return net_ ? net_->radius.item<double>() : 0.0; }

 protected:
  Preprocess auto_preprocess(const InputKind& kind) const override;
  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Trains encoder + mirrored decoder on reconstruction; the encoder keeps its weights.
  void pretrain(const Data& train, const Data& validation);

  // c = mean representation of the training data; entries near 0 pushed to +-eps.
  void init_center(const Data& train);
  DeepSvddNet net_{nullptr};
};

}  // namespace adx
