#pragma once
// CutPaste (Li, Sohn, Yoon and Pfister, CVPR 2021): a ResNet-18 with a projection
// head learns to tell normal images from the same images with a patch cut and
// pasted elsewhere (`patch`), a thin rotated scar pasted (`scar`), or both as
// three classes (`three_way`). At test time a Gaussian density (Ledoit-Wolf
// covariance) of the normal images' L2-normalised ResNet features scores an image
// by its Mahalanobis distance. Localisation follows the paper: a second model
// trained the same way on patches of a quarter of the side, scored on every
// patch at a stride, each patch's distance spread over its receptive field by a
// Gaussian.
//   image score   Mahalanobis distance of the image-level features
//   anomaly map   the patch-level distances, Gaussian upsampled to the image
#include <adx/detectors/components/algorithms/gaussian_density.hpp>
#include <adx/detectors/detector.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

enum class CutpasteVariant { Patch, Scar, ThreeWay };
ADX_ENUM_NAMES(CutpasteVariant, {CutpasteVariant::Patch, "patch"}, {CutpasteVariant::Scar, "scar"},
               {CutpasteVariant::ThreeWay, "three_way"});

struct CutpasteOptions {
  ADX_OPTIONS_STRUCT;
  /// Side the networks work at: images are resized to it, and the maps back to the input's size
  /// (0 = the input's own size); at least 64.
  ADX_ARG(int64_t, image_size) = 128;
  /// patch (normal against cut-paste), scar (against scars) or three_way (all three classes).
  ADX_ARG(CutpasteVariant, variant) = CutpasteVariant::ThreeWay;
  /// A torchvision resnet18 state dict to start both encoders from (empty = from scratch).
  ADX_ARG(std::string, weights) = "";
  /// Widths of the projection head (Linear-BN-ReLU each) before the classifier (the reference's 8 x 512, 128).
  ADX_ARG(std::vector<int64_t>, head) = std::vector<int64_t>{512, 512, 512, 512, 512, 512, 512, 512, 128};
  /// Train and use the patch-level model for the anomaly map.
  ADX_ARG(bool, localization) = true;
  /// Side of the patch-level model's patches in working pixels (0 = a quarter of the side, the paper's 64 of 256).
  ADX_ARG(int64_t, patch_size) = 0;
  /// Stride between scored patches (0 = a quarter of the patch side).
  ADX_ARG(int64_t, patch_stride) = 0;
  /// Training loop settings (both models train in one loop, their losses summed).
  ADX_ARG(TrainOptions, train) =
      TrainOptions().epochs(30).batch_size(32).lr(1e-3).weight_decay(3e-5).lr_schedule(LrSchedule::Cosine).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class Cutpaste : public DetectorWithOptions<CutpasteOptions> {
 public:
  using Options = CutpasteOptions;
  explicit Cutpaste(Options options = Options());
  ~Cutpaste() override;
  std::string type() const override { return "cutpaste"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }
  /// Number of classes the classifiers tell apart (2, or 3 for three_way).
  int64_t classes() const { return options_.variant() == CutpasteVariant::ThreeWay ? 3 : 2; }

  /// The augmented copies of images (N x C x H x W at the working size) and their class labels, as fit()
  /// trains on them: class 0 the images, 1 cut-paste (or scar), 2 scar (three_way).
  std::pair<torch::Tensor, torch::Tensor> augmented_batch(const torch::Tensor& images, at::Generator generator) const;

 protected:
  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  struct Networks;
  int64_t patch_size() const;
  int64_t patch_stride() const;
  /// Every patch of working-size images at the stride: (N * G) x C x p x p, G per image.
  torch::Tensor patches(const torch::Tensor& working_images) const;
  torch::Tensor to_working_size(const torch::Tensor& images) const;

  std::shared_ptr<Networks> networks_;
  GaussianDensity image_density_, patch_density_;
  int64_t working_height_ = 0, working_width_ = 0;
  at::Generator validation_generator_;
};

}  // namespace adx
