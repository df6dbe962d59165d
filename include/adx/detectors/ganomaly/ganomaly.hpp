#pragma once
// GANomaly (Akcay et al., ACCV 2018): a generator encoder -> decoder ->
// encoder (G_E, G_D, E) and a DCGAN discriminator D. Trained on normal images
// with the generator loss
//   w_adv * ||f(x) - f(x_hat)||^2 + w_con * |x - x_hat|_1 + w_enc * ||z - z_hat||^2
// (f = D's feature layer) and D's binary cross-entropy; D is re-initialised
// when its loss collapses below 1e-5. Score = mean (z - z_hat)^2.
// Images are scaled to [-1, 1] and padded to a power of two (28 -> 32).
#include <adx/detectors/components/bases/image_gan.hpp>

#include <torch/torch.h>

namespace adx {

struct GanomalyOptions {
  ADX_OPTIONS_STRUCT;
  ADX_GAN_OPTIONS(100, 64);
  /// Weight of the adversarial (feature matching) loss.
  ADX_ARG(double, w_adv) = 1.0;
  /// Weight of the contextual (L1 reconstruction) loss.
  ADX_ARG(double, w_con) = 50.0;
  /// Weight of the encoder (L2 latent) loss.
  ADX_ARG(double, w_enc) = 1.0;
  /// Adam 2e-4, betas (0.5, 0.999), batch 64, as in the paper.
  ADX_ARG(TrainOptions, train) = dcgan_train_options(15);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class GanomalyNetImpl : public torch::nn::Module {
 public:
  explicit GanomalyNetImpl(const nn::DcganSpec& s);
  struct Output {
    torch::Tensor fake, z, z_hat;
  };
  Output generate(const torch::Tensor& x);
  std::vector<torch::Tensor> generator_parameters();

  nn::DcganEncoder encoder1{nullptr}, encoder2{nullptr}, discriminator{nullptr};
  torch::nn::Sequential decoder{nullptr};
};
TORCH_MODULE(GanomalyNet);

class Ganomaly : public ImageGanDetector<GanomalyOptions> {
 public:
  using Options = GanomalyOptions;
  explicit Ganomaly(Options options = Options()) : ImageGanDetector(std::move(options)) {}
  std::string type() const override { return "ganomaly"; }

 protected:
  void build_networks() override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  GanomalyNet net_{nullptr};
  GeneratedImages generated_;
};

}  // namespace adx
