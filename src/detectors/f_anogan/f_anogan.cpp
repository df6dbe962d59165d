#include <adx/detectors/f_anogan/f_anogan.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

FAnoganNetImpl::FAnoganNetImpl(const nn::DcganSpec& s) {
  generator = register_module("generator", nn::make_dcgan_decoder(s));
  critic = register_module("critic", nn::DcganEncoder(s, 1, /*batch_norm=*/false));
  encoder = register_module("encoder", nn::DcganEncoder(s, s.latent));
  nn::dcgan_init(*this);
}

void FAnoganOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_gan_options(*this, c);
  c.at_least("critic_steps", critic_steps(), 1)
      .at_least("gradient_penalty", gradient_penalty(), 0.0)
      .at_least("kappa", kappa(), 0.0);
}

FAnogan::FAnogan(Options options) : ImageGanDetector(std::move(options)) {}

void FAnogan::build_networks() {
  net_ = FAnoganNet(spec_);
  net_->to(device());
}

void FAnogan::fit_model(const Data& train, const Data& validation) {
  train_wgan(train);
  // Stage 2: G and the critic are fixed; only the encoder learns.
  for (auto& p : net_->generator->parameters()) p.set_requires_grad(false);
  for (auto& p : net_->critic->parameters()) p.set_requires_grad(false);
  net_->eval();
  auto izi_f = [this](const Batch& batch, bool) { return residual(batch.x).mean(); };
  train_module(*net_->encoder, train, validation, options_.encoder_train(), izi_f, progress(),
               type() + " encoder");
}

Scores FAnogan::score_model(const Batch& batch) {
  Scores s;
  s.per_item = residual(batch.x);
  return s;
}

torch::Tensor FAnogan::residual(const torch::Tensor& images) {
  const auto x = to_network_input(images);
  const auto fake = net_->reconstruct(x);
  auto f = net_->critic->features;
  return mean_per_item((x - fake).pow(2)) + options_.kappa() * mean_per_item((f->forward(x) - f->forward(fake)).pow(2));
}

void FAnogan::train_wgan(const Data& train) {
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

ADX_BUILTIN_DETECTOR(f_anogan, factory_for<FAnogan>(),
                     "f-AnoGAN: WGAN-GP and an izi_f encoder, score = image + kappa * feature residual")

}  // namespace adx
