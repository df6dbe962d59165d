#pragma once
// SPADE (Cohen & Hoshen 2020, "Sub-Image Anomaly Detection with Deep Pyramid
// Correspondences"): the image score is the mean distance of the image's
// globally pooled last-layer feature to its k = 50 nearest training images;
// the anomaly map compares every pixel of a feature pyramid (layers 1-3) with
// all pixels of the 5 nearest training images (nearest-feature distance per
// layer, upsampled, averaged over layers, Gaussian blur sigma 4).
// The fitted state is every training image's pooled feature and pyramid; the
// threshold is set on each training image scored against the others.
#include <adx/detectors/components/bases/feature_memory.hpp>

#include <torch/torch.h>

namespace adx {

struct SpadeOptions {
  ADX_OPTIONS_STRUCT;
  ADX_BACKBONE_OPTIONS("resnet18", "layer1,layer2,layer3");
  /// Layer whose globally pooled feature gives the image score (the paper: the last one).
  ADX_ARG(std::string, image_layer) = "layer4";
  /// Nearest training images for the image score.
  ADX_ARG(int64_t, image_neighbours) = 50;
  /// Nearest training images whose pixels form the gallery of the anomaly map.
  ADX_ARG(int64_t, pixel_neighbours) = 5;
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// SPADE's image score: the mean distance of each test image's pooled feature (n x C) to its
/// `k` nearest training images' (N x C); also returns those neighbours' indices (n x k, nearest first).
/// With `own_index` (n), test image i is training image own_index[i] and is not its own neighbour
/// (leave-one-image-out; k must then be below N).
std::pair<torch::Tensor, torch::Tensor> spade_image_scores(const torch::Tensor& pooled_test,
                                                           const torch::Tensor& pooled_train, int64_t k,
                                                           const torch::Tensor& own_index = {});
/// SPADE's pixel distances of one feature map (C x h x w): each position's distance to the
/// nearest position of any gallery map (k x C x h' x w'), as h x w.
torch::Tensor spade_pixel_distances(const torch::Tensor& test, const torch::Tensor& gallery);

class Spade : public BackboneDetector<SpadeOptions> {
 public:
  using Options = SpadeOptions;
  explicit Spade(Options options = Options());
  std::string type() const override { return "spade"; }

 protected:
  std::vector<std::string> backbone_layers() const override;
  void build_head(const std::vector<int64_t>&) override {}
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  /// Scores from backbone features: pooled image_layer features (n x C) and the pyramid layers' maps,
  /// for images of `height` x `width`; `own_index` as in spade_image_scores.
  Scores score_features(const torch::Tensor& pooled, const std::vector<torch::Tensor>& pyramid, int64_t height,
                        int64_t width, const torch::Tensor& own_index = {}) const;
  torch::Tensor pooled_;                    // N x C: globally pooled image_layer features
  std::vector<torch::Tensor> pyramid_;      // per pyramid layer: N x C x h x w
};

}  // namespace adx
