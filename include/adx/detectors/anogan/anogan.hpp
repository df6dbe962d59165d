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
#include <adx/detectors/components/bases/image_gan.hpp>

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

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class AnoganNetImpl : public torch::nn::Module {
 public:
  AnoganNetImpl(const nn::DcganSpec& s, int64_t starts);
  torch::nn::Sequential generator{nullptr};
  nn::DcganEncoder discriminator{nullptr};
  torch::Tensor start_latents;
};
TORCH_MODULE(AnoganNet);

class Anogan : public ImageGanDetector<AnoganOptions> {
 public:
  using Options = AnoganOptions;
  explicit Anogan(Options options = Options());
  std::string type() const override { return "anogan"; }

 protected:
  void build_networks() override;
  void fit_model(const Data& train, const Data&) override;

  bool score_needs_grad() const override { return true; }

  Scores score_model(const Batch& batch) override;
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

 private:
  // Per-image AnoGAN loss of generated images `fake` against images `x` with features `fx`.
  torch::Tensor search_loss(const torch::Tensor& fake, const torch::Tensor& x, const torch::Tensor& fx);
  torch::Tensor search(const torch::Tensor& images);
  AnoganNet net_{nullptr};
};

}  // namespace adx
