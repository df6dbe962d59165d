#pragma once
// DRAEM (Zavrtanik, Kristan and Skočaj, ICCV 2021): a discriminatively trained
// reconstruction anomaly embedding. Training pastes synthetic anomalies into
// normal images (textures under rotated Perlin-noise masks, adx/data/synthesis/synthesis.hpp);
// a reconstructive network learns to give back the normal image (L2 + SSIM loss),
// and a discriminative U-Net on the image beside its reconstruction learns to
// segment the pasted region (focal loss). It learns its features from the normal
// images alone: no pretrained backbone.
//   anomaly map   the discriminative network's anomaly probability per pixel
//   image score   the map's maximum after a mean filter (21 x 21 at 256 px)
// adx's defaults are scaled to train on a CPU in minutes; the reference's are
// image_size=256 reconstruction_width=128 segmentation_width=64, 700 epochs of
// batch 8 at learning rate 1e-4 (docs/industrial.md: DRAEM).
#include <adx/detectors/components/bases/self_supervised.hpp>

#include <torch/torch.h>

namespace adx {

struct DraemOptions {
  ADX_OPTIONS_STRUCT;
  /// Side the networks work at, a multiple of 32: images are resized to it, and the maps back to the
  /// input's size (0 = the input's own size, whose sides must then be multiples of 32).
  ADX_ARG(int64_t, image_size) = 128;
  /// Width of the reconstructive network's first stage (the reference's 128).
  ADX_ARG(int64_t, reconstruction_width) = 32;
  /// Width of the discriminative network's first stage (the reference's 64).
  ADX_ARG(int64_t, segmentation_width) = 16;
  /// What the synthetic anomalies are made of: textures (a texture_dir, or procedural ones) or the
  /// other normal images.
  ADX_ARG(AnomalySourceKind, anomaly_source) = AnomalySourceKind::Textures;
  /// Folder of texture images, read recursively (DRAEM uses DTD); empty = procedural textures.
  ADX_ARG(std::string, texture_dir) = "";
  /// Share of training images given a synthetic anomaly (the reference's 0.5).
  ADX_ARG(double, anomaly_probability) = 0.5;
  /// How the anomalies are made: the blend's opacity bounds and the Perlin mask's threshold, scales and rotation.
  ADX_ARG(PerlinAnomalyOptions, synthesis) = PerlinAnomalyOptions();
  /// Share of training images rotated by up to 90 degrees before the anomaly (the reference's 0.3).
  ADX_ARG(double, rotate_probability) = 0.3;
  /// Side of the mean filter before the image score's maximum, in working pixels (0 = the reference's 21
  /// at 256 px, scaled to image_size and made odd).
  ADX_ARG(int64_t, score_window) = 0;
  /// Training loop settings; the loss is L2 + SSIM + focal, validated on synthetic anomalies drawn the same
  /// way every epoch.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(20).batch_size(8).lr(5e-4).weight_decay(0).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
  /// The opacity bounds' keys before they nested under `synthesis.`, so that model files and scripts written
  /// then still read.
  static const OptionRenames& renamed_options();
};

class Draem : public SyntheticAnomalyDetector<DraemOptions> {
 public:
  using Options = DraemOptions;
  explicit Draem(Options options = Options());
  ~Draem() override;
  std::string type() const override { return "draem"; }

  /// One training example as fit() makes it, for images N x C x H x W at the working size: the images with
  /// synthetic anomalies, the anomaly-free targets and the N x 1 x H x W masks (for inspection and tests).
  struct Example {
    torch::Tensor input, target, mask;
  };
  Example synthesize(const torch::Tensor& images, at::Generator generator) const;

 protected:
  void build_networks(int64_t channels) override;
  torch::Tensor synthetic_loss(const torch::Tensor& working_images, at::Generator generator) override;
  torch::Tensor anomaly_map(const torch::Tensor& working_images) override;
  torch::nn::Module* model() override;

 private:
  struct Networks;
  std::shared_ptr<Networks> networks_;
};

}  // namespace adx
