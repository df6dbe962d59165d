#include <adx/detectors/anogan/anogan.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

AnoganNetImpl::AnoganNetImpl(const nn::DcganSpec& s, int64_t starts) {
  generator = register_module("generator", nn::make_dcgan_decoder(s));
  discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
  nn::dcgan_init(*this);
  start_latents = register_buffer("start_latents", torch::randn({starts, s.latent, 1, 1}));
}

void AnoganOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_gan_options(*this, c);
  c.in("lambda", lambda(), 0.0, 1.0)
      .at_least("search_steps", search_steps(), 0)
      .above("search_lr", search_lr(), 0.0)
      .at_least("search_starts", search_starts(), 1)
      .at_least("search_batch_size", search_batch_size(), 1);
}

Anogan::Anogan(Options options) : ImageGanDetector(std::move(options)) {}

void Anogan::build_networks() {
  net_ = AnoganNet(spec_, options_.search_starts());
  net_->to(device());
}

void Anogan::fit_model(const Data& train, const Data&) {
  auto& d = net_->discriminator;
  auto& g = net_->generator;
  TrainStep discriminator;
  discriminator.name = "discriminator";
  discriminator.parameters = d->parameters();
  // As in DCGAN: one batch of generated images serves D's step (detached) and then G's step.
  torch::Tensor fake;
  discriminator.loss = [this, &d, &g, &fake](const Batch& in) {
    const auto& batch = in.x;
    const auto x = to_network_input(batch);
    fake = g->forward(sample_latent(x.size(0), x));
    return discriminator_bce(d->forward(x).flatten(), d->forward(fake.detach()).flatten());
  };
  TrainStep generator;
  generator.name = "generator";
  generator.parameters = g->parameters();
  generator.loss = [&d, &fake](const Batch&) { return generator_bce(d->forward(fake).flatten()); };
  // GAN losses say little about sample quality, so training runs its epochs without early stopping.
  train_steps(*net_, train, Data(), options_.train(), {discriminator, generator}, nullptr, progress(),
              type());
}

Scores Anogan::score_model(const Batch& batch) {
  std::vector<torch::Tensor> parts;
  const int64_t n = batch.size(), chunk = options_.search_batch_size();
  for (int64_t b = 0; b < n; b += chunk) parts.push_back(search(batch.x.slice(0, b, std::min(n, b + chunk))));
  Scores s;
  s.per_item = torch::cat(parts);
  return s;
}

torch::Tensor Anogan::search_loss(const torch::Tensor& fake, const torch::Tensor& x, const torch::Tensor& fx) {
  return (1.0 - options_.lambda()) * (fake - x).abs().flatten(1).sum(1) +
         options_.lambda() * (net_->discriminator->features->forward(fake) - fx).abs().flatten(1).sum(1);
}

torch::Tensor Anogan::search(const torch::Tensor& images) {
  auto& g = net_->generator;
  const auto x = to_network_input(images);
  torch::Tensor fx, z;
  {
    torch::NoGradGuard no_grad;
    fx = net_->discriminator->features->forward(x);
    // Start from the candidate with the lowest loss for each image.
    const auto& starts = net_->start_latents;
    const auto fake = g->forward(starts);
    const auto cost = (1.0 - options_.lambda()) * torch::cdist(x.flatten(1), fake.flatten(1), 1.0) +
                      options_.lambda() * torch::cdist(fx.flatten(1),
                                                       net_->discriminator->features->forward(fake).flatten(1), 1.0);
    z = starts.index_select(0, cost.argmin(1)).clone();
  }
  z.set_requires_grad(true);
  torch::optim::Adam optimizer({z}, torch::optim::AdamOptions(options_.search_lr()));
  // Adam's last iterate is not its best: each image keeps the lowest loss any of its
  // iterates reached (the loss of the best latent seen), which is its score.
  torch::Tensor best;
  for (int64_t step = 0; step < options_.search_steps(); ++step) {
    const auto per_image = search_loss(g->forward(z), x, fx);
    best = best.defined() ? torch::minimum(best, per_image.detach()) : per_image.detach();
    // Gradients go to z only; the networks' parameters stay untouched.
    z.mutable_grad() = torch::autograd::grad({per_image.sum()}, {z})[0];
    optimizer.step();
  }
  torch::NoGradGuard no_grad;
  const auto last = search_loss(g->forward(z), x, fx);
  return best.defined() ? torch::minimum(best, last) : last;
}

ADX_BUILTIN_DETECTOR(anogan, factory_for<Anogan>(),
                     "AnoGAN: DCGAN with a batched per-image latent search at score time")

}  // namespace adx
