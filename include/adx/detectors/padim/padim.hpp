#pragma once
// PaDiM (Defard et al., ICPR 2021): per feature-map position, a Gaussian of
// the normal patch embeddings (mean and covariance + 0.01 I over a random
// subset of the backbone's channels); the anomaly map is the Mahalanobis
// distance of each test patch, upsampled and blurred; the image score is the
// map's maximum. The threshold is calibrated on leave-one-image-out distances. ResNet-18 layers 1-3 with 100 channels by default (550 for
// Wide-ResNet-50-2).
#include <adx/detectors/components/bases/feature_memory.hpp>
#include <adx/detectors/components/algorithms/gaussian_density.hpp>

#include <torch/torch.h>

namespace adx {

struct PadimOptions {
  ADX_OPTIONS_STRUCT;
  ADX_BACKBONE_OPTIONS("resnet18", "layer1,layer2,layer3");
  /// Channels kept from the concatenated layers, a random subset; 0 = the paper's choice for the
  /// backbone (100 of ResNet-18's 448, 550 of Wide-ResNet-50-2's 1792).
  ADX_ARG(int64_t, channels) = 0;
  /// Added to every covariance diagonal.
  ADX_ARG(double, regularization) = 0.01;
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class Padim : public BackboneDetector<PadimOptions> {
 public:
  using Options = PadimOptions;
  explicit Padim(Options options = Options());
  std::string type() const override { return "padim"; }

 protected:
  void build_head(const std::vector<int64_t>& item_shape) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;

 private:
  torch::Tensor embed(const std::map<std::string, torch::Tensor>& features) const;
  /// Anomaly maps and image scores of P x n distances, for images of `height` x `width`.
  Scores scores_from_distances(const torch::Tensor& distances, int64_t height, int64_t width) const;
  torch::Tensor channel_index_, mean_, inverse_covariance_;  // [d], [P, d], [P, d, d]
  int64_t map_height_ = 0, map_width_ = 0, total_channels_ = 0;  // of the concatenated layers
};

}  // namespace adx
