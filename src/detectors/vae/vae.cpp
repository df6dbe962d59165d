#include <adx/detectors/vae/vae.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

VaeNetImpl::VaeNetImpl(int64_t in_features, const VaeOptions& o) : min_log_sigma_(o.min_log_sigma()) {
  const int64_t enc_out = o.hidden().empty() ? in_features : o.hidden().back();
  std::vector<int64_t> enc_hidden(o.hidden().begin(), o.hidden().end());
  if (!enc_hidden.empty()) enc_hidden.pop_back();
  // The encoder's last hidden layer feeds both heads.
  encoder = register_module(
      "encoder", nn::make_mlp({in_features, enc_hidden, enc_out, o.batch_norm(), o.dropout()}));
  mu_head = register_module("mu_head", torch::nn::Linear(enc_out, o.latent()));
  logvar_head = register_module("logvar_head", torch::nn::Linear(enc_out, o.latent()));
  std::vector<int64_t> reversed(o.hidden().rbegin(), o.hidden().rend());
  decoder = register_module("decoder",
                            nn::make_mlp({o.latent(), reversed, in_features, o.batch_norm(), o.dropout()}));
  log_sigma = register_buffer("log_sigma", torch::zeros({in_features}));
  latent_mean = register_buffer("latent_mean", torch::zeros({o.latent()}));
  latent_precision = register_buffer("latent_precision", torch::eye(o.latent()));
}

std::pair<torch::Tensor, torch::Tensor> VaeNetImpl::encode(const torch::Tensor& x) {
  auto h = torch::relu(encoder->forward(x.reshape({x.size(0), -1})));
  return {mu_head->forward(h), logvar_head->forward(h).clamp(-10.0, 10.0)};
}

torch::Tensor VaeNetImpl::nll(const torch::Tensor& x_flat, const torch::Tensor& mean) {
  torch::Tensor ls;
  if (is_training()) {
    ls = (0.5 * (x_flat - mean).detach().pow(2).mean(0).clamp_min(1e-12).log()).clamp_min(min_log_sigma_);
    torch::NoGradGuard no_grad;
    log_sigma.mul_(1.0 - kSigmaMomentum).add_(kSigmaMomentum * ls);
  } else {
    ls = log_sigma.clamp_min(min_log_sigma_);
  }
  return (0.5 * ((x_flat - mean) * torch::exp(-ls)).pow(2) + ls + 0.5 * std::log(2 * M_PI)).sum(-1);
}

torch::Tensor VaeNetImpl::kl(const torch::Tensor& mu, const torch::Tensor& logvar) {
  return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1);
}

void VaeOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .each_at_least("hidden", hidden(), 1, 0)
      .at_least("latent", latent(), 1)
      .at_least("beta", beta(), 0.0)
      .in("dropout", dropout(), 0.0, 1.0, "[)")
      .at_least("mc_samples", mc_samples(), 1);
}

Vae::Vae(Options options) : ReconstructionDetector(std::move(options)) {}

Scores Vae::score_with(const Data& data, VaeScore criterion) {
  const auto saved = options_.score();
  options_.score(criterion);
  try {
    auto s = score(data);
    options_.score(saved);
    return s;
  } catch (...) {
    options_.score(saved);
    throw;
  }
}

VaeNet Vae::make_net(const std::vector<int64_t>& item_shape) {
  return VaeNet(nn::numel_of(item_shape), options_);
}

torch::Tensor Vae::loss(const torch::Tensor& x, bool) {
  const auto flat = x.reshape({x.size(0), -1});
  auto [mu, logvar] = net_->encode(flat);
  const auto z = mu + torch::exp(0.5 * logvar) * torch::randn_like(mu);
  return (net_->nll(flat, net_->decode(z)) + options_.beta() * VaeNetImpl::kl(mu, logvar)).mean();
}

void Vae::fit_model(const Data& train, const Data& validation) {
  ReconstructionDetector::fit_model(train, validation);
  fit_latent_gaussian(train);
}

Scores Vae::score_model(const Batch& batch) {
  const auto flat = batch.x.reshape({batch.x.size(0), -1});
  auto [mu, logvar] = net_->encode(flat);
  Scores s;
  switch (options_.score()) {
    case VaeScore::Kl: s.per_item = VaeNetImpl::kl(mu, logvar); break;
    case VaeScore::LatentMahalanobis: {
      const auto d = mu - net_->latent_mean;
      s.per_item = (d.matmul(net_->latent_precision) * d).sum(1);
      break;
    }
    case VaeScore::ReconstructionProbability:
    case VaeScore::Elbo: {
      // Noise drawn on the CPU from the seed and the item's own values: repeatable on any
      // device, and an item's score does not depend on the batch it is scored in.
      const auto noise = item_noise(flat, {options_.mc_samples(), mu.size(1)}).to(mu.device(), mu.scalar_type());
      torch::Tensor total = torch::zeros({flat.size(0)}, flat.options());
      for (int64_t l = 0; l < options_.mc_samples(); ++l) {
        const auto eps = noise.select(1, l);
        const auto z = mu + torch::exp(0.5 * logvar) * eps;
        total += net_->nll(flat, net_->decode(z));
      }
      s.per_item = total / static_cast<double>(options_.mc_samples());
      if (options_.score() == VaeScore::Elbo) s.per_item = s.per_item + options_.beta() * VaeNetImpl::kl(mu, logvar);
      break;
    }
  }
  return s;
}

torch::Tensor Vae::item_noise(const torch::Tensor& flat, std::vector<int64_t> shape) const {
  const auto values = flat.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t items = values.size(0), width = values.size(1);
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data_ptr<float>());
  std::vector<torch::Tensor> noise;
  for (int64_t i = 0; i < items; ++i) {
    Fnv1a hash(Fnv1a::kOffsetBasis ^ static_cast<uint64_t>(options_.runtime().seed()));
    hash.update(bytes + i * width * 4, static_cast<size_t>(width * 4));
    auto gen = at::detail::createCPUGenerator(hash.value());
    noise.push_back(at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32)));
  }
  return torch::stack(noise);
}

void Vae::fit_latent_gaussian(const Data& train) {
  torch::NoGradGuard no_grad;
  net_->eval();
  const auto m = map_batches(train, options_.runtime().score_batch_size(),
                             [&](const Batch& b) { return net_->encode(b.x).first.to(torch::kFloat64); });
  const auto mean = m.mean(0);
  const auto centered = m - mean;
  auto cov = centered.t().matmul(centered) / std::max<int64_t>(1, m.size(0) - 1);
  // Ridge relative to the average variance keeps the inverse well conditioned.
  const double ridge = 1e-6 + 1e-3 * cov.diagonal().mean().item<double>();
  cov = cov + ridge * torch::eye(cov.size(0), cov.options());
  net_->latent_mean.copy_(mean.to(torch::kFloat32));
  net_->latent_precision.copy_(torch::linalg_inv(cov).to(torch::kFloat32));
}

ADX_BUILTIN_DETECTOR(vae, factory_for<Vae>(), "variational autoencoder (beta-ELBO), four scores")

}  // namespace adx
