#pragma once
// What the adversarial image detectors share: the network-size options, the
// check that a power-of-two network holds the images, [0, 1] images scaled to
// [-1, 1] (the generators end in tanh) and padded, and the standard GAN losses.
#include <adx/detectors/detector.hpp>
#include <adx/nn/conv.hpp>
#include <adx/nn/dcgan.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

/// The options every GAN detector has, spliced into its options struct.
#define ADX_GAN_OPTIONS(default_latent, default_width)                                                    \
  /** Side of the square network input (a power of two >= 16); 0 = the smallest that holds the images. */ \
  ADX_ARG_IN_SLOT(int64_t, image_size, 0) = 0;                                                            \
  /** Latent dimension nz. */                                                                             \
  ADX_ARG_IN_SLOT(int64_t, latent, 1) = default_latent;                                                   \
  /** Base width of generator and discriminator (ngf = ndf). */                                           \
  ADX_ARG_IN_SLOT(int64_t, width, 2) = default_width

/// Checks the ADX_GAN_OPTIONS fields, for the check() of an options struct that has them.
template <class Options>
void check_gan_options(const Options& o, const OptionChecks& c) {
  const auto side = o.image_size();
  c.that(side == 0 || (side >= 16 && (side & (side - 1)) == 0), "image_size",
         "must be 0 (automatic) or a power of two >= 16, got {}", side);
  c.at_least("latent", o.latent(), 1).at_least("width", o.width(), 1);
}

/// DCGAN training as the GAN papers use it: Adam 2e-4, betas (0.5, 0.999), batch 64, no weight decay.
inline TrainOptions dcgan_train_options(int64_t epochs) {
  return TrainOptions().epochs(epochs).lr(2e-4).beta1(0.5).beta2(0.999).weight_decay(0.0).batch_size(64);
}

/// Discriminator loss on logits: real items -> 1, generated -> 0 (binary cross-entropy, mean of both).
inline torch::Tensor discriminator_bce(const torch::Tensor& real_logit, const torch::Tensor& fake_logit) {
  return 0.5 * (torch::binary_cross_entropy_with_logits(real_logit, torch::ones_like(real_logit)) +
                torch::binary_cross_entropy_with_logits(fake_logit, torch::zeros_like(fake_logit)));
}

/// Generator loss on logits: generated -> 1 (the non-saturating form).
inline torch::Tensor generator_bce(const torch::Tensor& fake_logit) {
  return torch::binary_cross_entropy_with_logits(fake_logit, torch::ones_like(fake_logit));
}

/// The generator step's images, kept for the discriminator step that follows on the same batch (as the
/// reference implementations do). A batch split into parts (train.micro_batches, or ranks) runs the
/// generator on every part before the discriminator's first, so each part's images are kept under its
/// input tensor (the trainer hands every step the same part tensors).
class GeneratedImages {
 public:
  void remember(const torch::Tensor& input, torch::Tensor generated) {
    for (auto& entry : entries_)
      if (entry.first == input.unsafeGetTensorImpl()) {
        entry.second = std::move(generated);
        return;
      }
    // Bounded: entries the discriminator never took (a step that skips batches) make room.
    if (entries_.size() >= kMostEntries) entries_.erase(entries_.begin());
    entries_.emplace_back(input.unsafeGetTensorImpl(), std::move(generated));
  }
  /// The images made from `input`, handed over once.
  torch::Tensor take(const torch::Tensor& input) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->first == input.unsafeGetTensorImpl()) {
        auto generated = std::move(it->second);
        entries_.erase(it);
        return generated;
      }
    throw Error("the discriminator step found no images of the generator step for its batch");
  }
  void clear() { entries_.clear(); }

 private:
  static constexpr size_t kMostEntries = 1024;
  std::vector<std::pair<const void*, torch::Tensor>> entries_;
};

/// Re-initialises a discriminator whose loss collapsed below 1e-5: a perfect
/// discriminator gives the generator no gradient (GANomaly's and Skip-GANomaly's rule).
inline std::function<void(const torch::Tensor&)> reinitialise_when_collapsed(torch::nn::Module& discriminator) {
  return [&discriminator](const torch::Tensor& loss) {
    if (loss.item<double>() < 1e-5) nn::dcgan_init(discriminator);
  };
}

/// Mean over all but the first dimension: one value per item.
inline torch::Tensor mean_per_item(const torch::Tensor& x) { return x.flatten(1).mean(1); }

/// Base of the image GAN detectors; `Options` carries ADX_GAN_OPTIONS.
template <class Options>
class ImageGanDetector : public DetectorWithOptions<Options> {
 public:
  explicit ImageGanDetector(Options options) : DetectorWithOptions<Options>(std::move(options)) {}
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }

 protected:
  /// Builds the networks for `spec_` on the detector's device.
  virtual void build_networks() = 0;

  void build(const std::vector<int64_t>& shape, const InputKind&) final {
    const int64_t size =
        this->options_.image_size() > 0 ? this->options_.image_size() : nn::dcgan_size_for(shape[1], shape[2]);
    ADX_CHECK_AS(ShapeError, shape[1] <= size && shape[2] <= size,
                 "{} with image_size {} cannot hold {}x{} images; raise image_size", this->type(), size, shape[1],
                 shape[2]);
    spec_ = {size, shape[0], this->options_.latent(), this->options_.width()};
    build_networks();
    nn::use_channels_last(*this->model());
  }

  /// [0, 1] images -> [-1, 1], padded with -1 (black) to image_size.
  torch::Tensor to_network_input(const torch::Tensor& x) const {
    const int64_t pad_h = spec_.image_size - x.size(2), pad_w = spec_.image_size - x.size(3);
    auto y = x * 2.0 - 1.0;
    if (pad_h > 0 || pad_w > 0)
      y = torch::constant_pad_nd(y, {pad_w / 2, pad_w - pad_w / 2, pad_h / 2, pad_h - pad_h / 2}, -1.0);
    return nn::channels_last(y);
  }

  /// Latent noise z ~ N(0, I) for `n` items, shaped for the DCGAN decoder, on `like`'s device.
  torch::Tensor sample_latent(int64_t n, const torch::Tensor& like) const {
    return torch::randn({n, spec_.latent, 1, 1}, like.options());
  }

  nn::DcganSpec spec_;
};

}  // namespace adx
