#include <adx/detectors/skip_ganomaly/skip_ganomaly.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

SkipGanomalyNetImpl::SkipGanomalyNetImpl(const nn::DcganSpec& s) {
  generator = register_module("generator", nn::UnetGenerator(s));
  discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
  nn::dcgan_init(*this);
}

void SkipGanomalyOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_gan_options(*this, c);
  c.at_least("w_adv", w_adv(), 0.0)
      .at_least("w_con", w_con(), 0.0)
      .at_least("w_lat", w_lat(), 0.0)
      .in("score_lambda", score_lambda(), 0.0, 1.0);
}

SkipGanomaly::SkipGanomaly(Options options) : ImageGanDetector(std::move(options)) {}

void SkipGanomaly::build_networks() {
  net_ = SkipGanomalyNet(spec_);
  net_->to(device());
}

void SkipGanomaly::fit_model(const Data& train, const Data& validation) {
  auto& d = net_->discriminator;
  TrainStep generator;
  generator.name = "generator";
  generator.parameters = net_->generator->parameters();
  generator.only_own_gradients = true;
  generator.loss = [this, &d](const Batch& in) {
    const auto& batch = in.x;
    const auto x = to_network_input(batch);
    const auto fake = net_->generator->forward(x);
    generated_.remember(in.x, fake.detach());
    const auto fake_features = d->features->forward(fake);
    const auto adv = generator_bce(d->final->forward(fake_features).flatten());
    const auto lat = (d->features->forward(x) - fake_features).pow(2).mean();
    return options_.w_adv() * adv + options_.w_con() * (fake - x).abs().mean() + options_.w_lat() * lat;
  };
  TrainStep discriminator;
  discriminator.name = "discriminator";
  discriminator.parameters = d->parameters();
  discriminator.loss = [this, &d](const Batch& in) {
    const auto& batch = in.x;
    // As the reference code's backward_d: D learns on the images the generator step just
    // made, with the sum BCE(real) + BCE(fake) (no 1/2) plus the latent term w_lat * L2
    // between D's features of real and generated images.
    const auto x = to_network_input(batch);
    const auto real_features = d->features->forward(x), fake_features = d->features->forward(generated_.take(in.x));
    const auto real_logit = d->final->forward(real_features).flatten();
    const auto fake_logit = d->final->forward(fake_features).flatten();
    return 2.0 * discriminator_bce(real_logit, fake_logit) +
           options_.w_lat() * (real_features - fake_features).pow(2).mean();
  };
  discriminator.after_step = reinitialise_when_collapsed(*d);
  // Early stopping watches the reconstruction, which the score is mostly made of.
  auto validation_loss = [this](const Batch& in, bool) {
    const auto& batch = in.x;
    const auto x = to_network_input(batch);
    return (net_->generator->forward(x) - x).abs().mean();
  };
  train_steps(*net_, train, validation, options_.train(), {generator, discriminator}, validation_loss,
              progress(), type());
  generated_.clear();
}

Scores SkipGanomaly::score_model(const Batch& batch) {
  const auto x = to_network_input(batch.x);
  const auto fake = net_->generator->forward(x);
  auto f = net_->discriminator->features;
  const double lambda = options_.score_lambda();
  Scores s;
  s.per_item = lambda * mean_per_item((x - fake).pow(2)) +
               (1.0 - lambda) * mean_per_item((f->forward(x) - f->forward(fake)).pow(2));
  return s;
}

ADX_BUILTIN_DETECTOR(skip_ganomaly, factory_for<SkipGanomaly>(),
                     "Skip-GANomaly: U-Net generator, score = 0.9 image + 0.1 feature error")

}  // namespace adx
