#pragma once
// MemAE (Gong et al., ICCV 2019) for video: a 3-D convolutional autoencoder whose code, at
// every spatio-temporal position, is replaced by a sparse combination of learned memory
// items (nn::Memory: 2000 slots, hard shrinkage 0.0025). Trained on normal clips with the
// reconstruction error plus 0.0002 x the entropy of the memory addressing, so anomalies,
// which no combination of normal prototypes fits, are reconstructed badly. Frames are
// scaled as a whole to [0, 1] (global_minmax) and the network sees them in [-1, 1], as the
// reference's Normalize(0.5, 0.5) gives. Each frame's
// score is its reconstruction error; the paper normalises it per video (min-max), which
// metrics::min_max_per_sequence does on the per-frame scores.
//
//   adx::Memae memae(adx::MemaeOptions().channels({16, 32, 64}));
//   memae.fit(adx::Data::video(frames, {8, 4}));            // clips of 8 frames, stride 4
//   auto per_frame = memae.score(adx::Data::video(test_frames, {8, 1})).per_step;
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/detectors/memae/memory.hpp>

#include <torch/torch.h>

namespace adx {

struct MemaeOptions {
  ADX_OPTIONS_STRUCT;
  /// Channels of the 3-D conv encoder, as the paper's (96, 128, 256, 256); every layer halves H and
  /// W, every layer after the first also halves the clip length. The decoder mirrors it.
  ADX_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{96, 128, 256, 256};
  /// Memory items (N in the paper).
  ADX_ARG(int64_t, slots) = 2000;
  /// Hard-shrinkage threshold lambda of the addressing weights (the paper's 1/N ... 3/N: 0.0025).
  ADX_ARG(double, shrink) = 0.0025;
  /// Weight alpha of the addressing entropy in the loss.
  ADX_ARG(double, entropy_weight) = 0.0002;
  /// Frame score: 0 = mean squared error over the frame (the paper's), N = over its worst N x N patch.
  ADX_ARG(int64_t, patch) = 0;
  /// Training loop: Adam as the paper's video model; the rate is raised from its 1e-4 so that a CPU
  /// budget of epochs converges (see docs/video.md).
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(30).batch_size(16).lr(1e-3);
  ADX_DETECTOR_OPTIONS(Preprocess::GlobalMinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class MemaeNetImpl : public torch::nn::Module {
 public:
  /// `item_shape`: a clip, L x C x H x W.
  MemaeNetImpl(const std::vector<int64_t>& item_shape, const MemaeOptions& o);
  /// B x L x C x H x W -> the reconstruction, same shape.
  torch::Tensor forward(const torch::Tensor& clips) { return forward_with_weights(clips).first; }
  /// The reconstruction and the memory addressing weights (positions x slots).
  std::pair<torch::Tensor, torch::Tensor> forward_with_weights(const torch::Tensor& clips);

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  nn::Memory memory{nullptr};
};
TORCH_MODULE(MemaeNet);

class Memae : public ReconstructionDetector<MemaeOptions, MemaeNet> {
 public:
  using Options = MemaeOptions;
  explicit Memae(Options options = Options());
  std::string type() const override { return "memae"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kVideo}; }

 protected:
  MemaeNet make_net(const std::vector<int64_t>& item_shape) override { return MemaeNet(item_shape, options_); }
  torch::Tensor loss(const torch::Tensor& x, bool) override;
  Scores score_model(const Batch& batch) override;
};

}  // namespace adx
