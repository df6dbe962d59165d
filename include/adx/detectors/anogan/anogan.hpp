#pragma once
// AnoGAN (Schlegl et al., IPMI 2017): a DCGAN trained on normal images only.
// At score time each image x is mapped back to the latent space by gradient
// descent on z for the loss
//   (1 - lambda) * sum |x - G(z)|  +  lambda * sum |f(x) - f(G(z))|
// (f = the discriminator's feature layer, lambda = 0.1); the lowest loss any
// iterate reached (the best latent seen, not Adam's last) is the anomaly score. The search is batched: one Adam over the z of a whole
// batch, which is the same as one Adam per image because the networks are in
// eval mode (no batch statistics) and Adam works element by element.
// Every image starts from the best of a fixed set of latent candidates, so a
// score depends only on the image and the model, not on the batch it came in.
#include <adx/detectors/components/image_gan.hpp>

#include <torch/torch.h>

namespace adx {

struct AnoganOptions {
  ADX_OPTIONS_STRUCT;
  ADX_GAN_OPTIONS(100, 64);
  /// Weight of the discrimination (feature) loss; 1 - lambda weights the residual loss.
  ADX_ARG(double, lambda) = 0.1;
  /// Gradient steps of the latent search per image (the paper uses 500).
  ADX_ARG(int64_t, search_steps) = 100;
  /// Adam learning rate of the latent search.
  ADX_ARG(double, search_lr) = 0.05;
  /// Fixed latent candidates; each image starts from the one whose image fits it best.
  ADX_ARG(int64_t, search_starts) = 64;
  /// Images searched together (memory grows with it: activations of G and D for each).
  ADX_ARG(int64_t, search_batch_size) = 256;
  /// DCGAN training: Adam 2e-4, betas (0.5, 0.999), batch 64.
  ADX_ARG(TrainOptions, train) = dcgan_train_options(15);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);
};

class AnoganNetImpl : public torch::nn::Module {
 public:
  AnoganNetImpl(const nn::DcganSpec& s, int64_t starts) {
    generator = register_module("generator", nn::make_dcgan_decoder(s));
    discriminator = register_module("discriminator", nn::DcganEncoder(s, 1));
    nn::dcgan_init(*this);
    start_latents = register_buffer("start_latents", torch::randn({starts, s.latent, 1, 1}));
  }
  torch::nn::Sequential generator{nullptr};
  nn::DcganEncoder discriminator{nullptr};
  torch::Tensor start_latents;
};
TORCH_MODULE(AnoganNet);

class Anogan : public ImageGanDetector<AnoganOptions> {
 public:
  using Options = AnoganOptions;
  explicit Anogan(Options options = Options()) : ImageGanDetector(std::move(options)) {
    ADX_CHECK_AS(OptionError, options_.lambda() >= 0.0 && options_.lambda() <= 1.0,
                 "lambda must lie in [0, 1], got {}", options_.lambda());
    ADX_CHECK_AS(OptionError, options_.search_steps() >= 0 && options_.search_lr() > 0.0,
                 "search_steps must be >= 0 and search_lr > 0, got {} and {}", options_.search_steps(),
                 options_.search_lr());
    ADX_CHECK_AS(OptionError, options_.search_starts() >= 1 && options_.search_batch_size() >= 1,
                 "search_starts and search_batch_size must be >= 1, got {} and {}", options_.search_starts(),
                 options_.search_batch_size());
  }
  std::string type() const override { return "anogan"; }

 protected:
  void build_networks() override {
    net_ = AnoganNet(spec_, options_.search_starts());
    net_->to(device());
  }

  void fit_model(const Data& train, const Data&) override {
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

  bool score_needs_grad() const override { return true; }

  Scores score_model(const Batch& batch) override {
    std::vector<torch::Tensor> parts;
    const int64_t n = batch.size(), chunk = options_.search_batch_size();
    for (int64_t b = 0; b < n; b += chunk) parts.push_back(search(batch.x.slice(0, b, std::min(n, b + chunk))));
    Scores s;
    s.per_item = torch::cat(parts);
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Per-image AnoGAN loss of generated images `fake` against images `x` with features `fx`.
  torch::Tensor search_loss(const torch::Tensor& fake, const torch::Tensor& x, const torch::Tensor& fx) {
    return (1.0 - options_.lambda()) * (fake - x).abs().flatten(1).sum(1) +
           options_.lambda() * (net_->discriminator->features->forward(fake) - fx).abs().flatten(1).sum(1);
  }

  torch::Tensor search(const torch::Tensor& images) {
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

  AnoganNet net_{nullptr};
};

}  // namespace adx
