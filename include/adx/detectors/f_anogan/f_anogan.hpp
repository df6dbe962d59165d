#pragma once
// f-AnoGAN (Schlegl et al., Medical Image Analysis 2019), the izi_f variant.
// Stage 1 trains a Wasserstein GAN with gradient penalty on normal images
// (critic without BatchNorm, 5 critic steps per generator step, penalty 10,
// Adam 1e-4 with betas (0, 0.9)). Stage 2 freezes G and the critic and trains
// an encoder E with the izi_f loss
//   mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2
// (f = the critic's feature layer). The anomaly score is the same quantity,
// image residual + kappa * feature residual, with one forward pass and no search.
#include <adx/detectors/components/image_gan.hpp>

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
};

class FAnoganNetImpl : public torch::nn::Module {
 public:
  explicit FAnoganNetImpl(const nn::DcganSpec& s) {
    generator = register_module("generator", nn::make_dcgan_decoder(s));
    critic = register_module("critic", nn::DcganEncoder(s, 1, /*batch_norm=*/false));
    encoder = register_module("encoder", nn::DcganEncoder(s, s.latent));
    nn::dcgan_init(*this);
  }
  /// G(E(x)).
  torch::Tensor reconstruct(const torch::Tensor& x) { return generator->forward(encoder->forward(x)); }

  torch::nn::Sequential generator{nullptr};
  nn::DcganEncoder critic{nullptr}, encoder{nullptr};
};
TORCH_MODULE(FAnoganNet);

class FAnogan : public ImageGanDetector<FAnoganOptions> {
 public:
  using Options = FAnoganOptions;
  explicit FAnogan(Options options = Options()) : ImageGanDetector(std::move(options)) {
    ADX_CHECK_AS(OptionError, options_.critic_steps() >= 1, "critic_steps must be >= 1, got {}",
                 options_.critic_steps());
    ADX_CHECK_AS(OptionError, options_.gradient_penalty() >= 0.0 && options_.kappa() >= 0.0,
                 "gradient_penalty and kappa must be >= 0, got {} and {}", options_.gradient_penalty(),
                 options_.kappa());
  }
  std::string type() const override { return "f_anogan"; }

 protected:
  void build_networks() override {
    net_ = FAnoganNet(spec_);
    net_->to(device());
  }

  void fit_model(const Data& train, const Data& validation) override {
    train_wgan(train);
    // Stage 2: G and the critic are fixed; only the encoder learns.
    for (auto& p : net_->generator->parameters()) p.set_requires_grad(false);
    for (auto& p : net_->critic->parameters()) p.set_requires_grad(false);
    net_->eval();
    auto izi_f = [this](const Batch& batch, bool) { return residual(batch.x).mean(); };
    train_module(*net_->encoder, train, validation, options_.encoder_train(), izi_f, progress(),
                 type() + " encoder");
  }

  Scores score_model(const Batch& batch) override {
    Scores s;
    s.per_item = residual(batch.x);
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Per-image izi_f residual: image MSE + kappa * critic-feature MSE.
  torch::Tensor residual(const torch::Tensor& images) {
    const auto x = to_network_input(images);
    const auto fake = net_->reconstruct(x);
    auto f = net_->critic->features;
    return mean_per_item((x - fake).pow(2)) + options_.kappa() * mean_per_item((f->forward(x) - f->forward(fake)).pow(2));
  }

  void train_wgan(const Data& train) {
    auto& critic = net_->critic;
    auto& g = net_->generator;
    TrainStep critic_step;
    critic_step.name = "critic";
    critic_step.parameters = critic->parameters();
    critic_step.loss = [this, &critic, &g](const Batch& in) {
      const auto& batch = in.x;
      const auto x = to_network_input(batch);
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        fake = g->forward(sample_latent(x.size(0), x));
      }
      // Gradient penalty on random points between real and generated images.
      const auto mix = torch::rand({x.size(0), 1, 1, 1}, x.options());
      const auto between = (mix * x + (1.0 - mix) * fake).requires_grad_(true);
      const auto gradient =
          torch::autograd::grad({critic->forward(between).sum()}, {between}, {}, /*retain_graph=*/true,
                                /*create_graph=*/true)[0];
      const auto penalty = (gradient.flatten(1).norm(2, 1) - 1.0).pow(2).mean();
      return critic->forward(fake).mean() - critic->forward(x).mean() + options_.gradient_penalty() * penalty;
    };
    TrainStep generator_step;
    generator_step.name = "generator";
    generator_step.parameters = g->parameters();
    generator_step.every = options_.critic_steps();
    generator_step.loss = [this, &critic, &g](const Batch& in) {
      const auto& batch = in.x;
      return -critic->forward(g->forward(sample_latent(batch.size(0), batch))).mean();
    };
    // Wasserstein estimates say little about sample quality: no early stopping in this stage.
    // The encoder is not trained here; its parameters are not in either step.
    train_steps(*net_, train, Data(), options_.train(), {critic_step, generator_step}, nullptr,
                progress(), type() + " wgan-gp");
  }

  FAnoganNet net_{nullptr};
};

}  // namespace adx
