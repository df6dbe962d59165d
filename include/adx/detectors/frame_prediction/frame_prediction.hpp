#pragma once
// Future-frame prediction (Liu et al., CVPR 2018): a network trained on normal video
// predicts each frame from the `context` frames before it; a frame the normal dynamics
// do not explain is predicted badly. Training loss: intensity (L2) + gradient (L1 of the
// difference of absolute image gradients) + an optional least-squares adversarial term
// from a patch discriminator. The paper's optical-flow loss needs a pretrained FlowNet
// and is left out (docs/video.md). Frames are scaled as a whole to [0, 1] (global_minmax) and
// fed to the network in [-1, 1], as the paper's. Score of frame t = -PSNR(prediction,
// frame) with peak 1 on the [0, 1] frames (the reference's PSNR on [-1, 1] frames is this
// minus 10 log10 4, a constant); the paper's per-video min-max normalisation is
// metrics::min_max_per_sequence.
//
//   adx::FramePrediction fp(adx::FramePredictionOptions().architecture(adx::PredictorArchitecture::ConvLstm));
//   fp.fit(adx::Data::video(frames, {5, 1}));   // clips of context + 1 frames
//   auto per_frame = fp.score(adx::Data::video(test_frames, {5, 1})).per_step;
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/detectors/frame_prediction/predictors.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

/// The frame predictor: Liu et al.'s U-Net generator, or a ConvLSTM between a conv encoder and decoder.
enum class PredictorArchitecture { Unet, ConvLstm };
ADX_ENUM_NAMES(PredictorArchitecture, {PredictorArchitecture::Unet, "unet"},
               {PredictorArchitecture::ConvLstm, "convlstm"});

struct FramePredictionOptions {
  ADX_OPTIONS_STRUCT;
  /// unet (Liu et al.'s generator) or convlstm (a ConvLSTM between a conv encoder and decoder).
  ADX_ARG(PredictorArchitecture, architecture) = PredictorArchitecture::Unet;
  /// Frames before the predicted one (the paper's 4); clips need at least context + 1 frames.
  ADX_ARG(int64_t, context) = 4;
  /// U-Net widths per level (the paper's 64, 128, 256, 512).
  ADX_ARG(std::vector<int64_t>, widths) = std::vector<int64_t>{64, 128, 256, 512};
  /// ConvLSTM hidden channels.
  ADX_ARG(int64_t, hidden) = 64;
  /// Weight of the intensity (L2) loss.
  ADX_ARG(double, intensity_weight) = 1.0;
  /// Weight of the gradient loss.
  ADX_ARG(double, gradient_weight) = 1.0;
  /// Weight of the adversarial loss (the paper's 0.05; 0 = no discriminator).
  ADX_ARG(double, adversarial_weight) = 0.0;
  /// Discriminator learning rate relative to the generator's (the paper's 2e-5 / 2e-4).
  ADX_ARG(double, discriminator_lr_ratio) = 0.1;
  /// Frame score: 0 = PSNR over the whole frame (the paper's), N = over its worst N x N patch.
  ADX_ARG(int64_t, patch) = 0;
  /// Training loop; Adam at the paper's 2e-4.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(20).batch_size(8).lr(2e-4).weight_decay(0);
  ADX_DETECTOR_OPTIONS(Preprocess::GlobalMinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// The predictor (U-Net or ConvLSTM) and, with an adversarial loss, its discriminator.
class FramePredictionNetImpl : public torch::nn::Module {
 public:
  /// `item_shape`: a clip, L x C x H x W.
  FramePredictionNetImpl(const std::vector<int64_t>& item_shape, const FramePredictionOptions& o);
  /// Clips B x L x C x H x W in [0, 1] -> predictions of frames context..L-1, B x (L - context) x C x H x W.
  torch::Tensor forward(const torch::Tensor& clips);

  nn::PredictionUnet unet{nullptr};
  nn::ConvLstmPredictor convlstm{nullptr};
  torch::nn::Sequential discriminator{nullptr};
  int64_t context = 4;
};
TORCH_MODULE(FramePredictionNet);

/// Liu et al.'s gradient loss: mean |(|dx P| - |dx T|)| + mean |(|dy P| - |dy T|)| over B x C x H x W frames.
torch::Tensor gradient_difference_loss(const torch::Tensor& prediction, const torch::Tensor& target);

/// PSNR in dB of every frame of B x L x C x H x W frames in [0, 1]: 10 log10(1 / error), the error
/// being per_frame_error's (whole frame for `patch` 0, else the worst patch); capped at 100 dB.
torch::Tensor psnr(const torch::Tensor& prediction, const torch::Tensor& target, int64_t patch = 0);

class FramePrediction : public DetectorWithOptions<FramePredictionOptions> {
 public:
  using Options = FramePredictionOptions;
  explicit FramePrediction(Options options = Options());
  std::string type() const override { return "frame_prediction"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kVideo}; }
  const FramePredictionNet& net() const { return net_; }

 protected:
  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  /// Intensity + gradient loss of the predictions of `clips`, and the predictions.
  std::pair<torch::Tensor, torch::Tensor> prediction_loss(const torch::Tensor& clips);
  torch::Tensor targets(const torch::Tensor& clips) const;

  FramePredictionNet net_{nullptr};
};

}  // namespace adx
