#pragma once
// Skip-GANomaly (Akcay et al., IJCNN 2019): a U-Net generator with skip
// connections reconstructs normal images; a DCGAN discriminator judges them.
// Generator loss w_adv * BCE(D(x_hat), real) + w_con * |x - x_hat|_1 +
// w_lat * ||f(x) - f(x_hat)||^2 (f = D's feature layer), weights 1 / 50 / 1.
// Discriminator loss BCE(D(x), real) + BCE(D(x_hat), fake) + w_lat * ||f(x) - f(x_hat)||^2,
// as the reference code's backward_d.
// Score = lambda * mean (x - x_hat)^2 + (1 - lambda) * mean (f(x) - f(x_hat))^2,
// lambda = 0.9, as the paper's test step computes it.
#include <adx/detectors/components/bases/image_gan.hpp>
#include <adx/detectors/skip_ganomaly/unet_generator.hpp>

#include <torch/torch.h>

namespace adx {

struct SkipGanomalyOptions {
  ADX_OPTIONS_STRUCT;
  ADX_GAN_OPTIONS(100, 64);
  /// Weight of the adversarial (BCE) loss.
  ADX_ARG(double, w_adv) = 1.0;
  /// Weight of the contextual (L1 reconstruction) loss.
  ADX_ARG(double, w_con) = 50.0;
  /// Weight of the latent (discriminator feature L2) loss.
  ADX_ARG(double, w_lat) = 1.0;
  /// Score weight lambda of the reconstruction term; 1 - lambda goes to the feature term.
  ADX_ARG(double, score_lambda) = 0.9;
  /// Adam 2e-4, betas (0.5, 0.999), batch 64, as in the paper.
  ADX_ARG(TrainOptions, train) = dcgan_train_options(15);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class SkipGanomalyNetImpl : public torch::nn::Module {
 public:
  explicit SkipGanomalyNetImpl(const nn::DcganSpec& s);
  nn::UnetGenerator generator{nullptr};
  nn::DcganEncoder discriminator{nullptr};
};
TORCH_MODULE(SkipGanomalyNet);

class SkipGanomaly : public ImageGanDetector<SkipGanomalyOptions> {
 public:
  using Options = SkipGanomalyOptions;
  explicit SkipGanomaly(Options options = Options());
  std::string type() const override { return "skip_ganomaly"; }

 protected:
  void build_networks() override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  SkipGanomalyNet net_{nullptr};
  GeneratedImages generated_;
};

}  // namespace adx
