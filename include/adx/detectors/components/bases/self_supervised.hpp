#pragma once
// What the detectors that learn from synthetic anomalies share (DRAEM, NSA): the
// working size their networks run at, images resized to it and maps back, the
// [0, 1] input check, the anomaly source their options name, and the image score
// taken from an anomaly map.
#include <adx/data/synthesis/synthesis.hpp>
#include <adx/detectors/detector.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

#include <memory>
#include <tuple>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace adx {

/// Checks the options every synthetic-anomaly detector has (image_size, anomaly_source, texture_dir,
/// score_window), for its options' check(); its networks halve the image until it is `size_multiple`
/// times smaller.
template <class Options>
void check_synthetic_options(const Options& o, const OptionChecks& c, int64_t size_multiple) {
  c.that(o.image_size() >= 0 && o.image_size() % size_multiple == 0, "image_size",
         "must be 0 or a multiple of {} (the network halves the image {} times), got {}", size_multiple,
         static_cast<int>(std::log2(static_cast<double>(size_multiple))), o.image_size());
  c.that(o.anomaly_source() == AnomalySourceKind::Textures || o.texture_dir().empty(), "texture_dir",
         "is set to {} but '{}' is normal_images; choose one", o.texture_dir(), c.key("anomaly_source"));
  c.that(o.score_window() >= 0 && (o.score_window() == 0 || o.score_window() % 2 == 1), "score_window",
         "must be 0 or odd, got {}", o.score_window());
}

/// The networks' height and width for items of `item_shape` (C x H x W): image_size x image_size, or the
/// item's own sides when image_size is 0. Sides that are not multiples of `multiple` are a ShapeError.
std::pair<int64_t, int64_t> working_size(int64_t image_size, const std::vector<int64_t>& item_shape, int64_t multiple,
                                         const std::string& detector);

/// Bilinear resize of N x C x H x W images (returned as they are when already that size).
torch::Tensor resize_bilinear(const torch::Tensor& images, int64_t height, int64_t width);

/// A ValueError unless every value of `images` lies in [0, 1], naming the detector and the range found.
void check_unit_range(const torch::Tensor& images, const std::string& detector);

/// The source the options name: `training_images` (N x C x H x W, at the working size) or the textures of
/// `texture_dir` (procedural ones when it is empty).
AnomalySource make_anomaly_source(AnomalySourceKind kind, const std::string& texture_dir,
                                  const torch::Tensor& training_images);

/// DRAEM's mean-filter side at `side` px: 21 at 256 px, scaled and made odd.
int64_t default_score_window(int64_t side);

/// Per image, the maximum of an N x 1 x H x W map after a window x window mean filter (zero padding counted,
/// as DRAEM's avg_pool2d): N scores.
torch::Tensor max_of_mean_filtered(const torch::Tensor& map, int64_t window);

/// Base of the detectors that learn from synthetic anomalies. It runs the networks at a working size
/// (images resized to it, maps back to the input's size), checks that training images lie in [0, 1], makes
/// the anomaly source the options name, and trains through adx's loop, validating on anomalies drawn from a
/// generator reset every epoch so that the validation losses compare. `Options` has image_size,
/// anomaly_source, texture_dir, score_window and train. A detector supplies its networks, its loss on a
/// batch and its anomaly map; the image score is DRAEM's maximum of the mean-filtered map unless it says
/// otherwise.
template <class Options>
class SyntheticAnomalyDetector : public DetectorWithOptions<Options> {
 public:
  explicit SyntheticAnomalyDetector(Options options, int64_t size_multiple)
      : DetectorWithOptions<Options>(std::move(options)), size_multiple_(size_multiple) {}
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  /// Creates the networks for images of `channels` (1 or 3) on device().
  virtual void build_networks(int64_t channels) = 0;
  /// The training loss of images at the working size, with anomalies drawn from `generator`.
  virtual torch::Tensor synthetic_loss(const torch::Tensor& working_images, at::Generator generator) = 0;
  /// The anomaly map of images at the working size: N x 1 x H x W, values in [0, 1].
  virtual torch::Tensor anomaly_map(const torch::Tensor& working_images) = 0;
  /// Image scores of anomaly maps at the working size.
  virtual torch::Tensor image_scores(const torch::Tensor& maps) const {
    const int64_t window = this->options_.score_window();
    return max_of_mean_filtered(maps, window > 0 ? window : default_score_window(working_height_));
  }

  void build(const std::vector<int64_t>& item_shape, const InputKind&) override {
    ADX_CHECK_AS(ShapeError, item_shape[0] == 1 || item_shape[0] == 3, "{} takes grey or RGB images, got {} channels",
                 this->type(), item_shape[0]);
    std::tie(working_height_, working_width_) =
        working_size(this->options_.image_size(), item_shape, size_multiple_, this->type());
    build_networks(item_shape[0]);
  }

  void fit_model(const Data& train, const Data& validation) override {
    check_unit_range(train.x, this->type());
    source_ = std::make_unique<AnomalySource>(
        make_anomaly_source(this->options_.anomaly_source(), this->options_.texture_dir(), to_working_size(train.x)));
    const auto validation_seed = static_cast<uint64_t>(this->runtime().seed()) + 1;
    train_module(*this->model(), train, validation, this->options_.train(),
                 [&](const Batch& batch, bool training) {
                   return synthetic_loss(to_working_size(batch.x),
                                         training ? at::detail::getDefaultCPUGenerator() : validation_generator_);
                 },
                 this->progress(), this->type(),
                 [&](int64_t) { validation_generator_ = at::detail::createCPUGenerator(validation_seed); });
  }

  // A few images per pass: at the working size each image's activations take tens of MiB, and a
  // pass over a whole score batch (2,048 by default) has them faulted in anew instead of reused.
  // DRAEM at 128 px, 300 images, equal scores: 9.1-11.9 s in one pass, 8.0-8.4 s in passes of 64,
  // 6.7-7.6 s of 32, 6.3-7.1 s of 16 and 6.4-6.5 s of 8.
  int64_t items_per_scoring_pass() const override { return 16; }

  Scores score_model(const Batch& batch) override {
    this->model()->eval();
    const auto map = anomaly_map(to_working_size(batch.x));
    Scores s;
    s.per_item = image_scores(map);
    s.pixel_map = resize_bilinear(map, batch.x.size(2), batch.x.size(3));
    return s;
  }

  torch::Tensor to_working_size(const torch::Tensor& images) const {
    return resize_bilinear(images, working_height_, working_width_);
  }
  /// The source fit() made (a ValueError before fit).
  const AnomalySource& anomaly_source() const {
    ADX_CHECK_AS(ValueError, source_ != nullptr, "{} has no anomaly source before fit", this->type());
    return *source_;
  }

  int64_t working_height_ = 0, working_width_ = 0;

 private:
  int64_t size_multiple_;
  std::unique_ptr<AnomalySource> source_;
  at::Generator validation_generator_;
};

/// Stacks per-image CPU tensors and moves them to the device and type of `like`.
inline torch::Tensor stack_like(const std::vector<torch::Tensor>& items, const torch::Tensor& like) {
  return torch::stack(items).to(like.device(), like.scalar_type());
}

}  // namespace adx
