#pragma once
// NSA, natural synthetic anomalies (Schlüter, Tan, Hou and Kainz, ECCV 2022):
// patches of other normal images, resized, moved and blended in by Poisson image
// editing, so that the anomalies have no seam; a segmentation network (ResNet-18
// encoder, transposed residual decoder) learns each pixel's label, a logistic
// function of how much the blend changed it (binary cross-entropy).
//   anomaly map   the network's sigmoid output per pixel
//   image score   the map's mean (`image_score=max`: its maximum after a mean filter, as DRAEM)
// adx's defaults are scaled to train on a CPU in minutes; the reference trains
// 320 epochs of batch 64 at 256 px (Adam 1e-3, cosine to 1e-6), with settings per
// MVTec category (docs/industrial.md: NSA).
#include <adx/detectors/components/bases/self_supervised.hpp>

#include <torch/torch.h>

namespace adx {

enum class NsaImageScore { Max, Mean };
ADX_ENUM_NAMES(NsaImageScore, {NsaImageScore::Max, "max"}, {NsaImageScore::Mean, "mean"});

struct NsaOptions {
  ADX_OPTIONS_STRUCT;
  /// Side the network works at, a multiple of 32: images are resized to it, and the maps back to the input's
  /// size (0 = the input's own size, whose sides must then be multiples of 32).
  ADX_ARG(int64_t, image_size) = 128;
  /// What the patches come from: the other normal images (NSA's choice) or textures (texture_dir, or
  /// procedural ones).
  ADX_ARG(AnomalySourceKind, anomaly_source) = AnomalySourceKind::NormalImages;
  /// Folder of texture images, read recursively, with anomaly_source=textures.
  ADX_ARG(std::string, texture_dir) = "";
  /// How the training anomalies are made: patches, their sizes and resize factors, the blend and the label.
  ADX_ARG(NaturalAnomalyOptions, synthesis) = NaturalAnomalyOptions();
  /// Image score from the map: mean, or max (after a mean filter, as DRAEM); measured on two synthetic
  /// categories, the mean ranked better (0.975 against 0.885, 0.968 against 0.943).
  ADX_ARG(NsaImageScore, image_score) = NsaImageScore::Mean;
  /// Side of the mean filter for image_score=max, in working pixels (0 = 21 at 256 px, scaled, odd).
  ADX_ARG(int64_t, score_window) = 0;
  /// Training loop settings; validated on synthetic anomalies drawn the same way every epoch.
  ADX_ARG(TrainOptions, train) =
      TrainOptions().epochs(40).batch_size(16).lr(1e-3).weight_decay(0).lr_schedule(LrSchedule::Cosine).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
  /// The synthesis settings' keys before they nested under `synthesis.`, so that model files and scripts
  /// written then still read.
  static const OptionRenames& renamed_options();
};

class Nsa : public SyntheticAnomalyDetector<NsaOptions> {
 public:
  using Options = NsaOptions;
  explicit Nsa(Options options = Options());
  ~Nsa() override;
  std::string type() const override { return "nsa"; }

  /// Training examples as fit() makes them, for images N x C x H x W at the working size: the images with
  /// blended patches and the N x 1 x H x W labels in [0, 1].
  struct Example {
    torch::Tensor input, label;
  };
  Example synthesize(const torch::Tensor& images, at::Generator generator) const;

 protected:
  void build_networks(int64_t channels) override;
  torch::Tensor synthetic_loss(const torch::Tensor& working_images, at::Generator generator) override;
  torch::Tensor anomaly_map(const torch::Tensor& working_images) override;
  torch::Tensor image_scores(const torch::Tensor& maps) const override;
  torch::nn::Module* model() override;

 private:
  struct Network;
  std::shared_ptr<Network> network_;
};

}  // namespace adx
