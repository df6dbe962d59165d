#pragma once
// GANomaly (Akcay et al., ACCV 2018): a generator encoder -> decoder ->
// encoder (G_E, G_D, E) and a DCGAN discriminator D. Trained on normal images
// with the generator loss
//   w_adv * ||f(x) - f(x_hat)||^2 + w_con * |x - x_hat|_1 + w_enc * ||z - z_hat||^2
// (f = D's feature layer) and D's binary cross-entropy; D is re-initialised
// when its loss collapses below 1e-5. Score = mean (z - z_hat)^2.
// Images are scaled to [-1, 1] and padded to a power of two (28 -> 32).
#include <adx/detectors/components/image_gan.hpp>

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
};

class GanomalyNetImpl : public torch::nn::Module {
 public:
  explicit GanomalyNetImpl(const nn::DcganSpec& s) {
    encoder1 = register_module("encoder1", nn::DcganEncoder(s, s.latent));
    decoder = register_module("decoder", nn::make_dcgan_decoder(s));
    encoder2 = register_module("encoder2", nn::DcganEncoder(s, s.latent));
    discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
    nn::dcgan_init(*this);
  }
  struct Output {
    torch::Tensor fake, z, z_hat;
  };
  Output generate(const torch::Tensor& x) {
    Output o;
    o.z = encoder1->forward(x).flatten(1);
    o.fake = decoder->forward(o.z.unsqueeze(2).unsqueeze(3));
    o.z_hat = encoder2->forward(o.fake).flatten(1);
    return o;
  }
  std::vector<torch::Tensor> generator_parameters() {
    auto p = encoder1->parameters();
    for (auto& t : decoder->parameters()) p.push_back(t);
    for (auto& t : encoder2->parameters()) p.push_back(t);
    return p;
  }

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
  void build_networks() override {
    net_ = GanomalyNet(spec_);
    net_->to(device());
  }

  void fit_model(const Data& train, const Data& validation) override {
    TrainStep generator;
    generator.name = "generator";
    generator.parameters = net_->generator_parameters();
    generator.loss = [this](const Batch& in) {
      const auto& batch = in.x;
      const auto x = to_network_input(batch);
      const auto g = net_->generate(x);
      generated_.remember(in.x, g.fake.detach());
      const auto adv = (net_->discriminator->features->forward(x) -
                        net_->discriminator->features->forward(g.fake)).pow(2).mean();
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
    train_steps(*net_, train, validation, options_.train(), {generator, discriminator}, validation_loss,
                progress(), type());
    generated_.clear();
  }

  Scores score_model(const Batch& batch) override {
    const auto g = net_->generate(to_network_input(batch.x));
    Scores s;
    s.per_item = (g.z - g.z_hat).pow(2).mean(1);
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  GanomalyNet net_{nullptr};
  GeneratedImages generated_;
};

}  // namespace adx
