#pragma once
// Texture energy, in the manner of Laws' texture energy measures (Laws, 1980) with isotropic
// Gaussian-derivative filters in place of Laws' masks, scored as PaDiM scores a position, with one
// Gaussian for the whole image because a texture looks alike everywhere. No network and no pretrained
// weights: it is the method to try first on textured surfaces (fabric, wood, stone, grass) when no
// ImageNet backbone may be used.
//
// The images (grey: the channels' mean) are filtered by a bank of 10 filters per scale sigma: first and
// second Gaussian derivatives at 4 orientations and the Laplacian of Gaussian (zero mean, absolute
// responses), and the Gaussian itself (signed: it carries the local brightness). For each window size
// the responses are averaged over windows placed every window / 4 pixels; one Gaussian (mean and
// covariance + regularization I) is fitted over every training window. A window is scored (`scoring`) by
// its squared Mahalanobis distance to that Gaussian, by its squared distance to the nearest training
// window (of every other window in each direction) after whitening by the Gaussian's covariance (a
// texture with two looks, such as brick and mortar, is two clusters that one Gaussian blurs together),
// or by both. Each score is divided by its scale: the median, over the training images, of an image's
// largest score with that image left out (of the Gaussian; of the nearest windows). The pixel map sums
// the scores' maps over window sizes (bilinear); the image score sums their maxima.
//
//   adx::TextureEnergy detector;
//   detector.fit(adx::Data::images(normal_tiles));           // N x C x H x W, H and W > 3 x the largest sigma
//   auto scores = detector.score(adx::Data::images(tiles));  // per_item and pixel_map
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace adx {

/// How texture_energy scores a window's energies.
enum class TextureScoring {
  Gaussian,  ///< Mahalanobis distance to one Gaussian of the training windows
  Nearest,   ///< whitened distance to the nearest training window
  Both,      ///< the two, each over its scale, summed
};
ADX_ENUM_NAMES(TextureScoring, {TextureScoring::Gaussian, "gaussian"}, {TextureScoring::Nearest, "nearest"},
               {TextureScoring::Both, "both"});

struct TextureEnergyOptions {
  ADX_OPTIONS_STRUCT;
  /// The filters' scales in pixels, 10 filters each; a filter spans 3 * the largest scale either side.
  ADX_ARG(std::vector<int64_t>, sigmas) = std::vector<int64_t>{1, 2, 4};
  /// Sides in pixels of the square windows the responses are averaged over, one Gaussian each; a window
  /// larger than the images is cut to their smaller side.
  ADX_ARG(std::vector<int64_t>, windows) = std::vector<int64_t>{16, 32};
  /// How a window is scored. `nearest` and `both` keep a quarter of the training windows in the model
  /// (every other one in each direction: windows / 4 x filters floats per window size).
  ADX_ARG(TextureScoring, scoring) = TextureScoring::Both;
  /// The most training windows kept per window size for `nearest` and `both`: beyond it a random subset
  /// (seeded by runtime.seed). It bounds the search: 100 tiles of 128 px keep 22,500 at 16 px, 4,900 at 32.
  ADX_ARG(int64_t, nearest_windows) = 16384;
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
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  /// For each window size, the window energies of `images`: N x windows x filters, float64.
  std::vector<torch::Tensor> window_energies(const torch::Tensor& images) const;
  /// A window's side: the option's, cut to the image's smaller side.
  int64_t window_side(size_t window_size) const;
  /// Per window size, the window grid of an image: rows, columns.
  std::pair<int64_t, int64_t> grid(size_t window_size) const;
  /// Window energies (... x filters) of window size `index` whitened by its Gaussian, float32: the rows the
  /// nearest-window search compares, in fit and in scoring alike.
  torch::Tensor whitened(const torch::Tensor& energies, int64_t index) const;

  std::shared_ptr<torch::nn::Module> state_;  // holds the buffers below (saved as the model)
  bool scores_gaussian() const { return options_.scoring() != TextureScoring::Nearest; }
  bool scores_nearest() const { return options_.scoring() != TextureScoring::Gaussian; }

  // The bank; per window size a Gaussian over the filters' energies, the whitening that turns Mahalanobis
  // distance into Euclidean distance (the Cholesky factor of the inverse covariance), and the scales of
  // the Gaussian's and the nearest window's scores.
  torch::Tensor bank_, mean_, inverse_covariance_, whitening_, scale_, nearest_scale_;  // [f,1,k,k] [s,f] [s,f,f] [s,f,f] [s] [s]
  std::vector<torch::Tensor> training_windows_;  // per window size, whitened training windows (rows x f, float32)
  int64_t height_ = 0, width_ = 0;
};

}  // namespace adx
