#pragma once
// MIL ranking (Sultani et al., CVPR 2018), adx's weakly supervised detector: it learns
// from whole videos labelled only "holds an anomaly somewhere" (1) or "normal" (0), given
// as Data::sequence_labels. Each training video is cut into 32 segments, each described
// by the mean of its frames' features; an MLP (512-32-1, dropout 0.6, sigmoid) scores
// the segments, and a hinge loss ranks the highest-scoring segment of an anomalous video
// above the highest of a normal one, with temporal smoothness and sparsity terms (8e-5
// each) on the anomalous video's scores.
//
// Frame features come from a frozen adx backbone (global average of one layer) applied to
// the frame and to its difference from the previous frame (motion; the paper's C3D sees
// motion through its 3-D convolutions), or, with backbone "none", the frames already are
// features (T x D x 1 x 1, e.g. read from NPY). A scored clip is described like a training
// segment, so clips of about a segment's length (frames / 32) fit best.
//
//   adx::Mil mil;
//   mil.fit(adx::Data::videos(videos, {8, 4}, torch::tensor({0, 0, 1, 1})));
//   auto per_frame = mil.score(adx::Data::video(test, {8, 1})).per_step;
#include <adx/detectors/components/bases/feature_memory.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

/// How a backbone map becomes a frame's features.
enum class FramePooling { Mean, Max };
ADX_ENUM_NAMES(FramePooling, {FramePooling::Mean, "mean"}, {FramePooling::Max, "max"});

struct MilOptions {
  ADX_OPTIONS_STRUCT;
  /// resnet18 or wide_resnet50_2 (frozen; give weights), pixels (each frame averaged over a grid x grid
  /// grid: no weights needed), or none (the frames already are features, e.g. T x D x 1 x 1 from NPY).
  ADX_ARG(std::string, backbone) = "resnet18";
  /// Cells per side of the pixels backbone's grid.
  ADX_ARG(int64_t, grid) = 16;
  /// torchvision weights for the backbone (empty = random, weaker features).
  ADX_ARG(std::string, weights) = "";
  /// Backbone layer whose globally averaged map describes a frame.
  ADX_ARG(std::string, layer) = "layer3";
  /// Also describe the difference of each frame from the one before it (motion).
  ADX_ARG(bool, motion) = true;
  /// How a backbone map becomes a frame's features: mean or max over positions.
  ADX_ARG(FramePooling, pooling) = FramePooling::Max;
  /// Segments per training video (the paper's 32).
  ADX_ARG(int64_t, segments) = 32;
  /// Hidden widths of the scoring MLP (the paper's 512, 32).
  ADX_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{512, 32};
  /// Dropout after every hidden layer (the paper's 0.6).
  ADX_ARG(double, dropout) = 0.6;
  /// Weight of the temporal smoothness term sum (s_i - s_i+1)^2 (the paper's 8e-5).
  ADX_ARG(double, smoothness) = 8e-5;
  /// Weight of the sparsity term sum s_i (the paper's 8e-5).
  ADX_ARG(double, sparsity) = 8e-5;
  /// Frames per backbone forward pass.
  ADX_ARG(int64_t, feature_batch_size) = 64;
  /// epochs = training iterations; batch_size = bags per iteration, half anomalous and half normal
  /// (the paper's 30 + 30); weight decay stands for the paper's L2 regulariser.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(1000).batch_size(60).lr(1e-3).weight_decay(1e-3);
  /// auto: frames scaled as a whole (global_minmax) for a CNN backbone, which was trained on natural
  /// images; each pixel over its own training range (minmax) for pixels and none, where it takes the
  /// static scene out of the descriptions (docs/video.md).
  ADX_DETECTOR_OPTIONS(Preprocess::Auto);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class MilNetImpl : public torch::nn::Module {
 public:
  MilNetImpl(const std::vector<int64_t>& item_shape, const MilOptions& o);
  /// Per-frame features of N x C x H x W frames (N x D), without gradient.
  torch::Tensor frame_features(const torch::Tensor& frames, int64_t batch_size);
  /// Description of a span of frames from its frames' features `appearance` (n x D) and the features
  /// of its n - 1 consecutive differences `motion` ((n - 1) x D, or undefined without motion): the
  /// means, concatenated and L2-normalised.
  torch::Tensor describe(const torch::Tensor& appearance, const torch::Tensor& motion) const;
  /// Segment scores in (0, 1): descriptions ... x F -> ... (standardised first).
  torch::Tensor forward(const torch::Tensor& descriptions);

  Backbone backbone{nullptr};
  /// Mean and standard deviation of the training segments' descriptions (buffers, saved with the model).
  torch::Tensor description_mean, description_std;
  bool max_pooling = true;
  int64_t grid = 0;  ///< pixels backbone: cells per side (0 = another backbone)
  torch::nn::Sequential mlp{nullptr};
  bool motion = true;
  int64_t description_width = 0;
};
TORCH_MODULE(MilNet);

/// Sultani et al.'s loss for paired bags of segment scores, anomalous (B x S) against normal (B x S):
/// mean over pairs of max(0, 1 - max s_a + max s_n) + smoothness sum (s_a,i - s_a,i+1)^2 + sparsity sum s_a,i.
torch::Tensor mil_ranking_loss(const torch::Tensor& anomalous, const torch::Tensor& normal, double smoothness,
                               double sparsity);

/// Segment boundaries of a video of `frames` frames cut into `segments` near-equal parts
/// (segments + 1 values, the first 0 and the last `frames`); parts are never empty.
std::vector<int64_t> segment_bounds(int64_t frames, int64_t segments);

class Mil : public DetectorWithOptions<MilOptions> {
 public:
  using Options = MilOptions;
  explicit Mil(Options options = Options());
  std::string type() const override { return "mil"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kVideo}; }
  const MilNet& net() const { return net_; }

 protected:
  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }
  bool learns_from_sequence_labels() const override { return true; }
  /// Held-out tails of anomalous videos would be mislabelled normal: fit keeps every video and sets
  /// the threshold on the normal training videos' scores (or on validation videos given to fit).
  bool holds_out_validation() const override { return false; }
  Preprocess auto_preprocess(const InputKind& kind) const override;

 private:
  /// Descriptions of clips B x L x C x H x W: B x F.
  torch::Tensor describe_clips(const torch::Tensor& clips);

  MilNet net_{nullptr};
};

}  // namespace adx
