#pragma once
// Variational autoencoder (Kingma & Welling 2014) trained on the beta-ELBO,
// with a Gaussian decoder whose per-feature variance is calibrated: during
// training each batch plugs in the variance that maximises its likelihood
// (the sigma-VAE of Rybkin et al. 2021), and a running average of it is kept
// for scoring. A learned variance moves too slowly and lets the KL term
// collapse the posterior on small data sets. Four scores:
//   reconstruction_probability  -mean_l log p(x | z_l), z_l ~ q(z|x) (An & Cho 2015)
//   elbo                        -ELBO (Monte Carlo reconstruction term + KL)
//   kl                          KL(q(z|x) || N(0, I))
//   latent_mahalanobis          Mahalanobis distance of mu(x) to the training codes
#include <adx/core/hash.hpp>
#include <adx/detectors/components/bases/reconstruction.hpp>
#include <adx/nn/mlp.hpp>

#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace adx {

enum class VaeScore { ReconstructionProbability, Elbo, Kl, LatentMahalanobis };
ADX_ENUM_NAMES(VaeScore, {VaeScore::ReconstructionProbability, "reconstruction_probability"},
               {VaeScore::Elbo, "elbo"}, {VaeScore::Kl, "kl"},
               {VaeScore::LatentMahalanobis, "latent_mahalanobis"});

struct VaeOptions {
  ADX_OPTIONS_STRUCT;
  /// Hidden widths of the encoder; the decoder mirrors them.
  ADX_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{256, 128};
  /// Latent dimension.
  ADX_ARG(int64_t, latent) = 16;
  /// Weight of the KL term in the ELBO.
  ADX_ARG(double, beta) = 1.0;
  /// BatchNorm after each hidden layer.
  ADX_ARG(bool, batch_norm) = true;
  /// Dropout after each hidden layer.
  ADX_ARG(double, dropout) = 0.0;
  /// Which score score() returns.
  ADX_ARG(VaeScore, score) = VaeScore::ReconstructionProbability;
  /// Monte Carlo samples for the reconstruction-probability and ELBO scores.
  ADX_ARG(int64_t, mc_samples) = 10;
  /// Lower bound of the decoder's log standard deviation (keeps the likelihood finite).
  ADX_ARG(double, min_log_sigma) = -3.0;
  /// Training loop settings (no weight decay: the KL term already regularises).
  ADX_ARG(TrainOptions, train) = TrainOptions().weight_decay(0.0);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class VaeNetImpl : public torch::nn::Module {
 public:
  VaeNetImpl(int64_t in_features, const VaeOptions& o);

  /// mu and log-variance of q(z | x) for flattened items.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);
  torch::Tensor decode(const torch::Tensor& z) { return decoder->forward(z); }
  /// Deterministic reconstruction: the decoder mean at z = mu(x).
  torch::Tensor forward(const torch::Tensor& x) { return decode(encode(x).first).reshape(x.sizes()); }
  /// -log N(x; mean, sigma^2) summed over features, per item. In training the
  /// per-feature sigma is the batch's maximum-likelihood value, which also
  /// updates the running sigma used in evaluation.
  torch::Tensor nll(const torch::Tensor& x_flat, const torch::Tensor& mean);
  static torch::Tensor kl(const torch::Tensor& mu, const torch::Tensor& logvar);
  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear mu_head{nullptr}, logvar_head{nullptr};
  torch::Tensor log_sigma, latent_mean, latent_precision;

 private:
  static constexpr double kSigmaMomentum = 0.1;
  double min_log_sigma_;
};
TORCH_MODULE(VaeNet);

class Vae : public ReconstructionDetector<VaeOptions, VaeNet> {
 public:
  using Options = VaeOptions;
  explicit Vae(Options options = Options());
  std::string type() const override { return "vae"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kImage, kinds::kSeries, kinds::kVideo}; }

  /// Scores with a chosen criterion, whatever options().score() says.
  Scores score_with(const Data& data, VaeScore criterion);

 protected:
  VaeNet make_net(const std::vector<int64_t>& item_shape) override;

  /// Negative beta-ELBO per item averaged over the batch, with one reparameterised sample.
  torch::Tensor loss(const torch::Tensor& x, bool) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;

 private:
  /// Standard normal noise of `shape` for every item (B x shape), from a generator seeded
  /// with the options' seed and a hash (FNV-1a) of the item's values.
  torch::Tensor item_noise(const torch::Tensor& flat, std::vector<int64_t> shape) const;

  // Gaussian of the training codes mu(x), kept in module buffers so the model file carries it.
  void fit_latent_gaussian(const Data& train);
};

}  // namespace adx
