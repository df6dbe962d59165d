#pragma once
// Contrastive detection with SimCLR (Chen et al. 2020): an encoder and a
// projection head learn, with the NT-Xent loss, to map two random
// augmentations of the same item close together and apart from the rest of
// the batch. Normal data's encoder features then score new items by
//   scorer knn   1 - mean cosine similarity to the k nearest training features
//   scorer svdd  squared distance of the raw encoder feature to the training mean (Deep SVDD style)
// Augmentations: images get a random resized crop, horizontal flip and
// Gaussian noise; tabular items get Gaussian noise and random feature masking.
#include <adx/detectors/detector.hpp>
#include <adx/nn/conv.hpp>
#include <adx/nn/mlp.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

enum class ContrastiveScorer { Knn, Svdd };
ADX_ENUM_NAMES(ContrastiveScorer, {ContrastiveScorer::Knn, "knn"}, {ContrastiveScorer::Svdd, "svdd"});

struct SimclrOptions {
  ADX_OPTIONS_STRUCT;
  /// How the learned features score items.
  ADX_ARG(ContrastiveScorer, scorer) = ContrastiveScorer::Knn;
  /// Neighbours averaged by the knn scorer.
  ADX_ARG(int64_t, k) = 5;
  /// Encoder feature dimension.
  ADX_ARG(int64_t, rep_dim) = 64;
  /// Projection head output dimension (the loss lives there).
  ADX_ARG(int64_t, projection_dim) = 32;
  /// NT-Xent temperature.
  ADX_ARG(double, temperature) = 0.5;
  /// Images: channels of the conv encoder stages.
  ADX_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{32, 64, 128};
  /// Tabular: hidden widths of the MLP encoder.
  ADX_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{128, 128};
  /// Augmentation: Gaussian noise standard deviation.
  ADX_ARG(double, noise) = 0.05;
  /// Tabular augmentation: probability of masking each feature.
  ADX_ARG(double, mask_probability) = 0.2;
  /// Image augmentation: smallest crop side as a fraction of the image side.
  ADX_ARG(double, min_crop) = 0.6;
  /// Training loop settings (large batches give NT-Xent more negatives).
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(20).batch_size(256).weight_decay(1e-6);
  ADX_DETECTOR_OPTIONS(Preprocess::Auto);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// NT-Xent over two views: for 2N normalised projections, cross-entropy of each
/// item's similarity row (self excluded) against its partner in the other view.
torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature);

class SimclrNetImpl : public torch::nn::Module {
 public:
  SimclrNetImpl(const std::vector<int64_t>& shape, const InputKind& kind, const SimclrOptions& o);
  /// Unit-length encoder features: what the scorers compare.
  torch::Tensor features(const torch::Tensor& x);
  torch::nn::Sequential encoder{nullptr}, head{nullptr};
  torch::Tensor center;
};
TORCH_MODULE(SimclrNet);

class Simclr : public DetectorWithOptions<SimclrOptions> {
 public:
  using Options = SimclrOptions;
  explicit Simclr(Options options = Options());
  std::string type() const override { return "simclr"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kImage}; }

 protected:
  void build(const std::vector<int64_t>& shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }
  void save_extra(TensorMap& state) const override { state["memory_bank"] = bank_; }
  void load_extra(const TensorMap& state) override;

 private:
  torch::Tensor augment(const torch::Tensor& x) const;
  SimclrNet net_{nullptr};
  torch::Tensor bank_;
};

}  // namespace adx
