#include <adx/detectors/simclr/simclr.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature) {
  const int64_t n = z1.size(0);
  const auto z = torch::nn::functional::normalize(torch::cat({z1, z2}),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto logits = z.matmul(z.t()) / temperature;
  const auto self = torch::eye(2 * n, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
  logits = logits.masked_fill(self, -1e9);
  const auto idx = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
  const auto targets = torch::cat({idx + n, idx});
  return torch::cross_entropy_loss(logits, targets);
}

SimclrNetImpl::SimclrNetImpl(const std::vector<int64_t>& shape, const InputKind& kind, const SimclrOptions& o) {
  if (kind.traits().image_rows)
    encoder = register_module("encoder", nn::make_conv_classifier(shape[0], o.channels(), o.rep_dim()));
  else
    encoder = register_module("encoder", nn::make_mlp({shape[0], o.hidden(), o.rep_dim(), true, 0.0}));
  head = register_module("head", nn::make_mlp({o.rep_dim(), {o.rep_dim()}, o.projection_dim(), false, 0.0}));
  center = register_buffer("center", torch::zeros({o.rep_dim()}));
}

torch::Tensor SimclrNetImpl::features(const torch::Tensor& x) {
  return torch::nn::functional::normalize(encoder->forward(x), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

void SimclrOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .at_least("k", k(), 1)
      .at_least("rep_dim", rep_dim(), 1)
      .at_least("projection_dim", projection_dim(), 1)
      .above("temperature", temperature(), 0.0)
      .each_at_least("channels", channels(), 1)
      .each_at_least("hidden", hidden(), 1, 0)
      .at_least("noise", noise(), 0.0)
      .in("mask_probability", mask_probability(), 0.0, 1.0, "[)")
      .in("min_crop", min_crop(), 0.0, 1.0, "(]");
}

Simclr::Simclr(Options options) : DetectorWithOptions(std::move(options)) {}

void Simclr::build(const std::vector<int64_t>& shape, const InputKind& kind) {
  net_ = SimclrNet(shape, kind, options_);
  net_->to(device());
}

void Simclr::fit_model(const Data& train, const Data& validation) {
  train_module(*net_, train, validation, options_.train(),
               [this](const Batch& in, bool) {
                 const auto& x = in.x;
                 const auto z1 = net_->head->forward(net_->encoder->forward(augment(x)));
                 const auto z2 = net_->head->forward(net_->encoder->forward(augment(x)));
                 return nt_xent(z1, z2, options_.temperature());
               },
               progress(), type());
  // The memory bank of normal features, and the mean raw feature for the svdd scorer.
  net_->eval();
  const int64_t chunk = options_.runtime().score_batch_size();
  const auto raw = map_batches(train, chunk, [&](const Batch& b) { return net_->encoder->forward(b.x); });
  torch::NoGradGuard no_grad;
  net_->center.copy_(raw.mean(0));
  bank_ = torch::nn::functional::normalize(raw, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

Scores Simclr::score_model(const Batch& batch) {
  Scores s;
  if (options_.scorer() == ContrastiveScorer::Svdd) {
    s.per_item = (net_->encoder->forward(batch.x) - net_->center).pow(2).sum(1);
  } else {
    const auto h = net_->features(batch.x);
    const int64_t k = std::min<int64_t>(options_.k(), bank_.size(0));
    s.per_item = 1.0 - std::get<0>(h.matmul(bank_.t()).topk(k, 1)).mean(1);
  }
  return s;
}

void Simclr::load_extra(const TensorMap& state) {
  auto it = state.find("memory_bank");
  ADX_CHECK_AS(IoError, it != state.end(), "model file lacks the simclr memory bank");
  ADX_CHECK_AS(IoError, it->second.dim() == 2 && it->second.size(1) == options_.rep_dim(),
               "simclr memory bank has shape {}, expected N x {}", shape_string(it->second.sizes().vec()),
               options_.rep_dim());
  bank_ = it->second.to(device());
}

torch::Tensor Simclr::augment(const torch::Tensor& x) const {
  const auto noisy = [&](const torch::Tensor& t) { return t + options_.noise() * torch::randn_like(t); };
  if (x.dim() == 2) {
    const auto keep = (torch::rand_like(x) >= options_.mask_probability()).to(x.scalar_type());
    return noisy(x * keep);
  }
  // Random resized crop and horizontal flip as one affine resampling per image.
  const int64_t n = x.size(0);
  const auto opts = x.options();
  const auto scale = options_.min_crop() + (1.0 - options_.min_crop()) * torch::rand({n}, opts);
  const auto flip = torch::where(torch::rand({n}, opts) < 0.5, -torch::ones({n}, opts), torch::ones({n}, opts));
  const auto tx = (1.0 - scale) * (2.0 * torch::rand({n}, opts) - 1.0);
  const auto ty = (1.0 - scale) * (2.0 * torch::rand({n}, opts) - 1.0);
  const auto zero = torch::zeros({n}, opts);
  const auto theta = torch::stack({torch::stack({scale * flip, zero, tx}, 1), torch::stack({zero, scale, ty}, 1)}, 1);
  const auto grid = torch::nn::functional::affine_grid(theta, x.sizes().vec(), /*align_corners=*/false);
  return noisy(torch::nn::functional::grid_sample(
      x, grid, torch::nn::functional::GridSampleFuncOptions().padding_mode(torch::kBorder).align_corners(false)));
}

ADX_BUILTIN_DETECTOR(simclr, factory_for<Simclr>(), "SimCLR (NT-Xent) features scored by kNN cosine or SVDD distance")

}  // namespace adx
