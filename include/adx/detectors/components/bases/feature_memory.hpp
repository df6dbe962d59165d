#pragma once
// What PatchCore, PaDiM and SPADE share: a frozen ImageNet backbone (ResNet-18,
// Wide-ResNet-50-2 or a Vision Transformer, with torchvision weights) that
// turns RGB images in [0, 1] into named feature maps, a fitted state without gradient training,
// and anomaly maps brought back to the input size and smoothed.
// The backbone's weights are part of the fitted state, so one model file holds
// everything needed to score. The state is built from every training image,
// and the threshold from each training image scored without its own share.
#include <adx/detectors/detector.hpp>
#include <adx/nn/feature_extractor.hpp>

#include <torch/torch.h>

namespace adx {

/// Number format of the backbone's convolutions.
enum class Precision { Float32, BFloat16 };
ADX_ENUM_NAMES(Precision, {Precision::Float32, "float32"}, {Precision::BFloat16, "bfloat16"});

/// The options every backbone detector has, spliced into its options struct.
#define ADX_BACKBONE_OPTIONS(default_backbone, default_layers)                                     \
  /** resnet18, wide_resnet50_2, or a Vision Transformer: vit_b_16, vit_b_32, vit_l_16, vit_l_32. */ \
  ADX_ARG_IN_SLOT(std::string, backbone, 0) = default_backbone;                                    \
  /** torchvision weights (torch.save'd state dict or TorchScript); empty = random, weak features */ \
  ADX_ARG_IN_SLOT(std::string, weights, 1) = "";                                                   \
  /** Backbone layers whose features are used, comma-separated; a ViT left at this default uses */ \
  /** its blocks 6 and 9 (of 12; 12 and 18 of 24). */                                             \
  ADX_ARG_IN_SLOT(std::string, layers, 2) = default_layers;                                        \
  /** Gaussian blur of the anomaly map at input resolution (0 = none). */                          \
  ADX_ARG_IN_SLOT(double, blur_sigma, 3) = 4.0;                                                    \
  /** Images per backbone forward pass. */                                                         \
  ADX_ARG_IN_SLOT(int64_t, feature_batch_size, 4) = 16;                                            \
  /** Convolutions in float32 or bfloat16 (a CPU with AVX-512 BF16, or CUDA); features stay float32. */ \
  ADX_ARG_IN_SLOT(::adx::Precision, precision, 5) = ::adx::Precision::Float32;                     \
  /** Convolutions in the channels-last layout (oneDNN's fast path on a CPU; last-bit differences). */ \
  ADX_ARG_IN_SLOT(bool, channels_last, 6) = false

/// Checks the ADX_BACKBONE_OPTIONS fields, for the check() of an options struct that has them.
template <class Options>
void check_backbone_options(const Options& o, const OptionChecks& c) {
  c.at_least("blur_sigma", o.blur_sigma(), 0.0).at_least("feature_batch_size", o.feature_batch_size(), 1);
}

/// A frozen backbone with ImageNet normalisation in front.
class BackboneImpl : public torch::nn::Module {
 public:
  /// `name`: one of nn::backbone_names().
  BackboneImpl(const std::string& name, std::vector<std::string> layers);
  /// Named feature maps of N x C x H x W images in [0, 1] (C = 1 is repeated to RGB).
  std::map<std::string, torch::Tensor> forward(const torch::Tensor& images);
  /// Loads torchvision weights from `path` (see nn::load_backbone).
  void load_weights(const std::string& path);
  /// Runs the convolutions on a copy of `net` in the channels-last layout and/or in bfloat16 (the copy is
  /// refreshed whenever net's weights change); both off: net itself. bfloat16 on a CPU without AVX-512 BF16
  /// is an OptionError.
  void set_inference(bool channels_last, bool bfloat16);
  const std::vector<std::string>& layers() const { return layers_; }
  std::shared_ptr<nn::FeatureExtractor> net;

 private:
  /// The inference copy of net, rebuilt when net's tensors moved or changed since it was made.
  nn::FeatureExtractor& inference_net();
  std::vector<std::string> layers_;
  torch::Tensor mean_, std_;
  bool channels_last_ = false, bfloat16_ = false;
  std::shared_ptr<nn::FeatureExtractor> inference_net_;
  std::vector<std::pair<const void*, uint32_t>> inference_source_;  ///< net's tensors when the copy was made
};

/// Whether this CPU has AVX-512 BF16 instructions (bfloat16 convolutions at full speed).
bool cpu_has_bfloat16();
TORCH_MODULE(Backbone);

/// The named layers' maps resized to the first one's size (`bilinear`, else nearest) and concatenated
/// along channels, optionally each averaged over its 3 x 3 neighbourhood first (PatchCore).
torch::Tensor concat_layers(const std::map<std::string, torch::Tensor>& features,
                            const std::vector<std::string>& layers, bool bilinear, bool neighbourhood_average);

/// Splits "layer2,layer3" into names.
inline std::vector<std::string> split_layers(const std::string& text) { return split_commas(text); }

/// Resizes per-patch maps (N x 1 x h x w) to `height` x `width` (bilinear) and blurs them with a Gaussian
/// of `sigma` pixels (kernel 2 * round(4 sigma) + 1, reflect padding), as anomalib's anomaly-map generators do.
torch::Tensor upsample_and_blur(const torch::Tensor& patch_maps, int64_t height, int64_t width, double sigma);

/// Base of the backbone detectors. `Options` carries ADX_BACKBONE_OPTIONS.
template <class Options>
class BackboneDetector : public DetectorWithOptions<Options> {
 public:
  explicit BackboneDetector(Options options) : DetectorWithOptions<Options>(std::move(options)) {
    nn::check_backbone_name(this->options_.backbone());
    if (nn::is_vision_transformer(this->options_.backbone()) && this->options_.layers() == Options().layers())
      this->options_.layers(nn::default_vit_layers(this->options_.backbone()));
    ADX_CHECK_AS(OptionError, !split_layers(this->options_.layers()).empty(), "layers must name at least one layer");
    ADX_CHECK_AS(OptionError, this->options_.blur_sigma() >= 0 && this->options_.feature_batch_size() >= 1,
                 "blur_sigma must be >= 0 and feature_batch_size >= 1, got {} and {}", this->options_.blur_sigma(),
                 this->options_.feature_batch_size());
  }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  /// The layers the backbone returns (the `layers` option unless a detector needs more).
  virtual std::vector<std::string> backbone_layers() const { return split_layers(this->options_.layers()); }
  /// Builds the detector's own state once the backbone exists.
  virtual void build_head(const std::vector<int64_t>& item_shape) = 0;
  /// The detector's buffers and modules next to the backbone (saved with it).
  torch::nn::Module& container() { return *container_; }

  void build(const std::vector<int64_t>& shape, const InputKind&) final {
    ADX_CHECK_AS(ShapeError, shape[0] == 1 || shape[0] == 3,
                 "{} takes grey or RGB images, got {} channels", this->type(), shape[0]);
    container_ = std::make_shared<torch::nn::Module>("BackboneDetector");
    backbone_ = container_->register_module("backbone", Backbone(this->options_.backbone(), backbone_layers()));
    build_head(shape);
    container_->to(this->device());
    backbone_->set_inference(this->options_.channels_last(), this->options_.precision() == Precision::BFloat16);
  }

  /// Loads the configured weights: at fit time only; a loaded model file already holds them.
  void load_backbone_weights() {
    if (!this->options_.weights().empty()) backbone_->load_weights(this->options_.weights());
    backbone_->to(this->device());
    backbone_->eval();
  }

  /// Backbone features of `images` in chunks of feature_batch_size, each passed to `consume`.
  void for_each_feature_batch(const torch::Tensor& images,
                              const std::function<void(const std::map<std::string, torch::Tensor>&, int64_t begin)>& consume) {
    torch::NoGradGuard no_grad;
    const int64_t n = images.size(0), chunk = this->options_.feature_batch_size();
    for (int64_t b = 0; b < n; b += chunk) consume(backbone_->forward(images.slice(0, b, std::min(n, b + chunk))), b);
  }

  /// The scores of `images` images computed by `score(begin, end)` feature_batch_size images at a time, in
  /// image order (an empty float tensor for none): how fit() computes the leave-one-image-out scores it hands
  /// to set_left_out_scores.
  torch::Tensor scores_by_batch(int64_t images,
                                const std::function<torch::Tensor(int64_t begin, int64_t end)>& score) const {
    std::vector<torch::Tensor> parts;
    for (int64_t b = 0; b < images; b += this->options_.feature_batch_size())
      parts.push_back(score(b, std::min(images, b + this->options_.feature_batch_size())));
    return parts.empty() ? torch::zeros({0}) : torch::cat(parts);
  }

  torch::nn::Module* model() override { return container_.get(); }
  /// The fitted state holds every training image (anomalib does the same); each detector hands
  /// fit() leave-one-image-out scores of the training images for the threshold instead.
  bool holds_out_validation() const override { return false; }
  Preprocess auto_preprocess(const InputKind&) const override { return Preprocess::None; }

  Backbone backbone_{nullptr};

 private:
  std::shared_ptr<torch::nn::Module> container_;
};

}  // namespace adx
