#pragma once
// Skip-GANomaly (Akcay et al., IJCNN 2019): a U-Net generator with skip
// connections reconstructs normal images; a DCGAN discriminator judges them.
// Generator loss w_adv * BCE(D(x_hat), real) + w_con * |x - x_hat|_1 +
// w_lat * ||f(x) - f(x_hat)||^2 (f = D's feature layer), weights 1 / 50 / 1.
// Discriminator loss BCE(D(x), real) + BCE(D(x_hat), fake) + w_lat * ||f(x) - f(x_hat)||^2,
// as the reference code's backward_d.
// Score = lambda * mean (x - x_hat)^2 + (1 - lambda) * mean (f(x) - f(x_hat))^2,
// lambda = 0.9, as the paper's test step computes it.
#include <adx/detectors/components/image_gan.hpp>
#include <adx/nn/unet.hpp>

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
};

class SkipGanomalyNetImpl : public torch::nn::Module {
 public:
  explicit SkipGanomalyNetImpl(const nn::DcganSpec& s) {
    generator = register_module("generator", nn::UnetGenerator(s));
    discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
    nn::dcgan_init(*this);
  }
  nn::UnetGenerator generator{nullptr};
  nn::DcganEncoder discriminator{nullptr};
};
TORCH_MODULE(SkipGanomalyNet);

class SkipGanomaly : public ImageGanDetector<SkipGanomalyOptions> {
 public:
  using Options = SkipGanomalyOptions;
  explicit SkipGanomaly(Options options = Options()) : ImageGanDetector(std::move(options)) {
    ADX_CHECK_AS(OptionError, options_.score_lambda() >= 0.0 && options_.score_lambda() <= 1.0,
                 "score_lambda must lie in [0, 1], got {}", options_.score_lambda());
  }
  std::string type() const override { return "skip_ganomaly"; }

 protected:
  void build_networks() override {
    net_ = SkipGanomalyNet(spec_);
    net_->to(device());
  }

  void fit_model(const Data& train, const Data& validation) override {
    auto& d = net_->discriminator;
    TrainStep generator;
    generator.name = "generator";
    generator.parameters = net_->generator->parameters();
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

  Scores score_model(const Batch& batch) override {
    const auto x = to_network_input(batch.x);
    const auto fake = net_->generator->forward(x);
    auto f = net_->discriminator->features;
    const double lambda = options_.score_lambda();
    Scores s;
    s.per_item = lambda * mean_per_item((x - fake).pow(2)) +
                 (1.0 - lambda) * mean_per_item((f->forward(x) - f->forward(fake)).pow(2));
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  SkipGanomalyNet net_{nullptr};
  GeneratedImages generated_;
};

}  // namespace adx
