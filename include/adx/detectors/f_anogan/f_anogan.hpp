#pragma once
// f-AnoGAN (Schlegl et al., Medical Image Analysis 2019), the izi_f variant.
// Stage 1 trains a Wasserstein GAN with gradient penalty on normal images
// (critic without BatchNorm, 5 critic steps per generator step, penalty 10,
// Adam 1e-4 with betas (0, 0.9)). Stage 2 freezes G and the critic and trains
// an encoder E with the izi_f loss
//   mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2
// (f = the critic's feature layer). The anomaly score is the same quantity,
// image residual + kappa * feature residual, with one forward pass and no search.
#include <adx/detectors/components/bases/image_gan.hpp>

#include <torch/torch.h>

namespace adx {

struct FAnoganOptions {
  ADX_OPTIONS_STRUCT;
  ADX_GAN_OPTIONS(100, 64);
  /// Critic steps per generator step.
  ADX_ARG(int64_t, critic_steps) = 5;
  /// Weight of the gradient penalty (WGAN-GP's lambda).
  ADX_ARG(double, gradient_penalty) = 10.0;
  /// Weight of the feature residual in the encoder loss and in the score.
  ADX_ARG(double, kappa) = 1.0;
  /// WGAN-GP training: Adam 1e-4, betas (0, 0.9), batch 64; the epochs count critic batches.
  ADX_ARG(TrainOptions, train) =
      TrainOptions().epochs(20).lr(1e-4).beta1(0.0).beta2(0.9).weight_decay(0.0).batch_size(64);
  /// Encoder training (izi_f), with early stopping on the held-out images.
  ADX_ARG(TrainOptions, encoder_train) =
      TrainOptions().epochs(20).lr(2e-4).beta1(0.5).beta2(0.999).weight_decay(0.0).batch_size(64).patience(5);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class FAnoganNetImpl : public torch::nn::Module {
 public:
  explicit FAnoganNetImpl(const nn::DcganSpec& s);
  /// G(E(x)).
  torch::Tensor reconstruct(const torch::Tensor& x) { return generator->forward(encoder->forward(x)); }

  torch::nn::Sequential generator{nullptr};
  nn::DcganEncoder critic{nullptr}, encoder{nullptr};
};
TORCH_MODULE(FAnoganNet);

class FAnogan : public ImageGanDetector<FAnoganOptions> {
 public:
  using Options = FAnoganOptions;
  explicit FAnogan(Options options = Options());
  std::string type() const override { return "f_anogan"; }

 protected:
  void build_networks() override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Per-image izi_f residual: image MSE + kappa * critic-feature MSE.
  torch::Tensor residual(const torch::Tensor& images);
  void train_wgan(const Data& train);
  FAnoganNet net_{nullptr};
};

}  // namespace adx
