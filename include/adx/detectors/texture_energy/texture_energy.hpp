#pragma once
// Texture energy, in the manner of Laws' texture energy measures (Laws, 1980) with a Gaussian-derivative
// filter bank (Leung and Malik, 2001), scored as PaDiM scores a position, with one Gaussian for the whole
// image because a texture looks alike everywhere. No network and no pretrained weights: it is the
// method to try first on textured surfaces (fabric, wood, stone, grass) when no ImageNet backbone
// may be used.
//
// The images (grey: the channels' mean) are filtered by a bank of 10 filters per scale sigma: first and
// second Gaussian derivatives at 4 orientations and the Laplacian of Gaussian (zero mean, absolute
// responses), and the Gaussian itself (signed: it carries the local brightness). For each window size
// the responses are averaged over windows placed every window / 4 pixels; one Gaussian (mean and
// covariance + regularization I) is fitted over every training window. A window's score is its squared
// Mahalanobis distance divided by the window size's scale: the median, over the training images, of an
// image's largest window score with that image left out of the Gaussian. The pixel map sums the window
// sizes' maps (bilinear); the image score sums their maxima.
//
//   adx::TextureEnergy detector;
//   detector.fit(adx::Data::images(normal_tiles));           // N x C x H x W, H and W > 3 x the largest sigma
//   auto scores = detector.score(adx::Data::images(tiles));  // per_item and pixel_map
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace adx {

struct TextureEnergyOptions {
  ADX_OPTIONS_STRUCT;
  /// The filters' scales in pixels, 10 filters each; a filter spans 3 * the largest scale either side.
  ADX_ARG(std::vector<int64_t>, sigmas) = std::vector<int64_t>{1, 2, 4};
  /// Sides in pixels of the square windows the responses are averaged over, one Gaussian each; a window
  /// larger than the images is cut to their smaller side.
  ADX_ARG(std::vector<int64_t>, windows) = std::vector<int64_t>{16, 32};
  /// Added to the covariance's diagonal (responses of images in [0, 1] have variances near 1e-4 to 1e-2).
  ADX_ARG(double, regularization) = 1e-4;
  // Images as they are, in [0, 1]: the Gaussian is fitted on the filters' responses.
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  void check(const std::string& prefix) const;
};

/// The filter bank: 10 filters per scale in `sigmas` (per scale: first and second derivative at 0, 45,
/// 90 and 135 degrees, interleaved, then the Laplacian of Gaussian, then the Gaussian), each
/// (6 * max sigma + 1) square; filters x 1 x side x side, float32.
torch::Tensor texture_filter_bank(const std::vector<int64_t>& sigmas);

class TextureEnergy : public DetectorWithOptions<TextureEnergyOptions> {
 public:
  using Options = TextureEnergyOptions;
  explicit TextureEnergy(Options options = Options());
  std::string type() const override { return "texture_energy"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  void build(const std::vector<int64_t>& item_shape, const InputKind& kind) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return state_.get(); }
  bool holds_out_validation() const override { return false; }

 private:
  /// For each window size, the window energies of `images`: N x windows x filters, float64.
  std::vector<torch::Tensor> window_energies(const torch::Tensor& images) const;
  /// A window's side: the option's, cut to the image's smaller side.
  int64_t window_side(size_t window_size) const;
  /// Per window size, the window grid of an image: rows, columns.
  std::pair<int64_t, int64_t> grid(size_t window_size) const;

  std::shared_ptr<torch::nn::Module> state_;  // holds the buffers below (saved as the model)
  // The bank; per window size a Gaussian over the filters' energies and the scale of its scores.
  torch::Tensor bank_, mean_, inverse_covariance_, scale_;  // [f, 1, k, k], [s, f], [s, f, f], [s]
  int64_t height_ = 0, width_ = 0;
};

}  // namespace adx
