#include <adx/detectors/ganomaly/ganomaly.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

void GanomalyOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_gan_options(*this, c);
  c.at_least("w_adv", w_adv(), 0.0).at_least("w_con", w_con(), 0.0).at_least("w_enc", w_enc(), 0.0);
}

GanomalyNetImpl::GanomalyNetImpl(const nn::DcganSpec& s) {
  encoder1 = register_module("encoder1", nn::DcganEncoder(s, s.latent));
  decoder = register_module("decoder", nn::make_dcgan_decoder(s));
  encoder2 = register_module("encoder2", nn::DcganEncoder(s, s.latent));
  discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
  nn::dcgan_init(*this);
}

GanomalyNetImpl::Output GanomalyNetImpl::generate(const torch::Tensor& x) {
  Output o;
  o.z = encoder1->forward(x).flatten(1);
  o.fake = decoder->forward(o.z.unsqueeze(2).unsqueeze(3));
  o.z_hat = encoder2->forward(o.fake).flatten(1);
  return o;
}

std::vector<torch::Tensor> GanomalyNetImpl::generator_parameters() {
  auto p = encoder1->parameters();
  for (auto& t : decoder->parameters()) p.push_back(t);
  for (auto& t : encoder2->parameters()) p.push_back(t);
  return p;
}

void Ganomaly::build_networks() {
  net_ = GanomalyNet(spec_);
  net_->to(device());
}

void Ganomaly::fit_model(const Data& train, const Data& validation) {
  TrainStep generator;
  generator.name = "generator";
  generator.parameters = net_->generator_parameters();
  generator.only_own_gradients = true;
  generator.loss = [this](const Batch& in) {
    const auto& batch = in.x;
    const auto x = to_network_input(batch);
    const auto g = net_->generate(x);
    generated_.remember(in.x, g.fake.detach());
    const auto adv =
        (net_->discriminator->features->forward(x) - net_->discriminator->features->forward(g.fake)).pow(2).mean();
    return options_.w_adv() * adv + options_.w_con() * (g.fake - x).abs().mean() +
           options_.w_enc() * (g.z - g.z_hat).pow(2).mean();
  };
  TrainStep discriminator;
  discriminator.name = "discriminator";
  discriminator.parameters = net_->discriminator->parameters();
  discriminator.loss = [this](const Batch& in) {
    const auto& batch = in.x;
    // D learns on the images the generator step just made, as in the reference implementation.
    const auto x = to_network_input(batch);
    const auto real_logit = net_->discriminator->forward(x).flatten();
    const auto fake_logit = net_->discriminator->forward(generated_.take(in.x)).flatten();
    return discriminator_bce(real_logit, fake_logit);
  };
  discriminator.after_step = reinitialise_when_collapsed(*net_->discriminator);
  // Early stopping watches what the score depends on: reconstruction and latent consistency.
  auto validation_loss = [this](const Batch& in, bool) {
    const auto& batch = in.x;
    const auto x = to_network_input(batch);
    const auto g = net_->generate(x);
    return options_.w_con() * (g.fake - x).abs().mean() + options_.w_enc() * (g.z - g.z_hat).pow(2).mean();
  };
  train_steps(*net_, train, validation, options_.train(), {generator, discriminator}, validation_loss, progress(),
              type());
  generated_.clear();
}

Scores Ganomaly::score_model(const Batch& batch) {
  const auto g = net_->generate(to_network_input(batch.x));
  Scores s;
  s.per_item = (g.z - g.z_hat).pow(2).mean(1);
  return s;
}

ADX_BUILTIN_DETECTOR(ganomaly, factory_for<Ganomaly>(),
                     "GANomaly: encoder-decoder-encoder GAN, score = ||z - z_hat||^2")

}  // namespace adx
