#include <adx/detectors/anomaly_transformer/anomaly_transformer.hpp>
#include "detectors/builtin_detector.hpp"

#include <cmath>
#include <utility>

namespace adx {
namespace {

// Sinusoidal position code, L x d_model.
torch::Tensor positional_code(int64_t length, int64_t d_model, const torch::TensorOptions& options) {
  auto position = torch::arange(length, options).unsqueeze(1);
  auto div = torch::exp(torch::arange(0, d_model, 2, options) * (-std::log(10000.0) / static_cast<double>(d_model)));
  auto code = torch::zeros({length, d_model}, options);
  code.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 2)},
                  torch::sin(position * div));
  code.index_put_({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None, 2)},
                  torch::cos(position * div).narrow(1, 0, d_model / 2));
  return code;
}

// KL(p || q) + KL(q || p) as the reference computes them (each with 1e-4 inside the logs,
// summed over keys, averaged over heads), in one pass: sum of (p - q)(log(p + e) - log(q + e)).
// B x H x L x L -> B x L.
torch::Tensor symmetric_kl(const torch::Tensor& p, const torch::Tensor& log_p, const torch::Tensor& q,
                           const torch::Tensor& log_q) {
  return ((p - q) * (log_p - log_q)).sum(-1).mean(1);
}

}  // namespace

torch::Tensor association_kl(const torch::Tensor& p, const torch::Tensor& q) {
  return (p * (torch::log(p + 1e-4) - torch::log(q + 1e-4))).sum(-1).mean(1);
}

// One encoder layer: anomaly attention, then the position-wise feed-forward block.
struct AnomalyTransformerNetImpl::Layer : torch::nn::Module {
  Layer(int64_t d_model, int64_t heads, int64_t d_ff, double dropout_p) : heads(heads), dropout_p(dropout_p) {
    query = register_module("query", torch::nn::Linear(d_model, d_model));
    key = register_module("key", torch::nn::Linear(d_model, d_model));
    value = register_module("value", torch::nn::Linear(d_model, d_model));
    sigma = register_module("sigma", torch::nn::Linear(d_model, heads));
    out = register_module("out", torch::nn::Linear(d_model, d_model));
    ff1 = register_module("ff1", torch::nn::Linear(d_model, d_ff));
    ff2 = register_module("ff2", torch::nn::Linear(d_ff, d_model));
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  }

  // x: B x L x d_model; appends this layer's series and prior association.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& squared_distances, AnomalyTransformerOutput& assoc) {
    const int64_t B = x.size(0), L = x.size(1), E = x.size(2) / heads;
    auto q = query->forward(x).view({B, L, heads, E}).permute({0, 2, 1, 3});
    auto k = key->forward(x).view({B, L, heads, E}).permute({0, 2, 3, 1});
    auto v = value->forward(x).view({B, L, heads, E}).permute({0, 2, 1, 3});
    auto scores = torch::matmul(q, k) * (1.0 / std::sqrt(static_cast<double>(E)));  // B x H x L x L
    // Learned width of the prior, per step and head: 3^(sigmoid(5 s) + 1e-5) - 1.
    auto s = sigma->forward(x).transpose(1, 2);                                   // B x H x L
    s = torch::pow(3.0, torch::sigmoid(s * 5.0) + 1e-5) - 1.0;
    // The Gaussian's 1 / (sqrt(2 pi) sigma) cancels when each row is normalised, so the
    // row-normalised prior is a softmax of -|i - j|^2 / (2 sigma^2).
    auto prior = torch::softmax(squared_distances * (-0.5 / s.pow(2)).unsqueeze(-1), -1);
    auto series = torch::dropout(torch::softmax(scores, -1), dropout_p, is_training());
    auto attended = torch::matmul(series, v).permute({0, 2, 1, 3}).reshape({B, L, heads * E});
    assoc.series.push_back(series);
    assoc.prior.push_back(prior);

    auto h = norm1->forward(x + torch::dropout(out->forward(attended), dropout_p, is_training()));
    auto y = torch::dropout(torch::gelu(ff1->forward(h)), dropout_p, is_training());
    y = torch::dropout(ff2->forward(y), dropout_p, is_training());
    return norm2->forward(h + y);
  }

  int64_t heads;
  double dropout_p;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, sigma{nullptr}, out{nullptr}, ff1{nullptr},
      ff2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
};

AnomalyTransformerNetImpl::AnomalyTransformerNetImpl(int64_t features, const AnomalyTransformerOptions& o)
    : d_model_(o.d_model()), heads_(o.heads()), dropout_(o.dropout()) {
  // Token embedding: a circular 3-tap convolution without bias, Kaiming-initialised.
  token_embedding = register_module(
      "token_embedding",
      torch::nn::Conv1d(torch::nn::Conv1dOptions(features, o.d_model(), 3).padding(1).padding_mode(torch::kCircular).bias(false)));
  torch::nn::init::kaiming_normal_(token_embedding->weight, 0.0, torch::kFanIn, torch::kLeakyReLU);
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < o.layers(); ++l)
    layers_->push_back(std::make_shared<Layer>(o.d_model(), o.heads(), o.d_ff(), o.dropout()));
  final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model()})));
  projection = register_module("projection", torch::nn::Linear(o.d_model(), features));
}

AnomalyTransformerOutput AnomalyTransformerNetImpl::run(const torch::Tensor& x) {
  const int64_t L = x.size(1);
  const auto float_options = x.options();
  auto h = token_embedding->forward(x.transpose(1, 2)).transpose(1, 2) + positional_code(L, d_model_, float_options);
  h = torch::dropout(h, dropout_, is_training());
  const auto index = torch::arange(L, float_options);
  const auto squared_distances = (index.unsqueeze(1) - index.unsqueeze(0)).pow(2);
  AnomalyTransformerOutput out;
  for (const auto& layer : *layers_) h = layer->as<Layer>()->forward(h, squared_distances, out);
  out.reconstruction = projection->forward(final_norm->forward(h));
  return out;
}

std::pair<torch::Tensor, torch::Tensor> AnomalyTransformerNetImpl::phase_losses(const torch::Tensor& x, double k) {
  const auto out = run(x);
  const auto reconstruction = torch::mse_loss(out.reconstruction, x);
  // Phase 1 maximises the discrepancy with the prior detached, phase 2 minimises it with the
  // series association detached; each averages the layers' symmetric KL.
  torch::Tensor phase1, phase2;
  for (size_t u = 0; u < out.series.size(); ++u) {
    const auto& series = out.series[u];
    const auto& prior = out.prior[u];
    const auto log_series = torch::log(series + 1e-4), log_prior = torch::log(prior + 1e-4);
    const auto d1 = symmetric_kl(series, log_series, prior.detach(), log_prior.detach()).mean();
    const auto d2 = symmetric_kl(series.detach(), log_series.detach(), prior, log_prior).mean();
    phase1 = phase1.defined() ? phase1 + d1 : d1;
    phase2 = phase2.defined() ? phase2 + d2 : d2;
  }
  const double layers = static_cast<double>(out.series.size());
  return {reconstruction - k * phase1 / layers, reconstruction + k * phase2 / layers};
}

torch::Tensor AnomalyTransformerNetImpl::minimax_loss(const torch::Tensor& x, double k) {
  // The reference backpropagates the two phases separately into one optimiser step; their gradients add
  // up, so one backward pass of the sum gives the same update.
  const auto [phase1, phase2] = phase_losses(x, k);
  return phase1 + phase2;
}

torch::Tensor AnomalyTransformerNetImpl::criterion(const torch::Tensor& x, double temperature) {
  const auto out = run(x);
  const auto error = (x - out.reconstruction).pow(2).mean(-1);  // B x L
  // The reference sums the symmetric KL over layers, each scaled by the temperature.
  torch::Tensor dis = torch::zeros_like(error);
  for (size_t u = 0; u < out.series.size(); ++u)
    dis = dis + temperature * symmetric_kl(out.series[u], torch::log(out.series[u] + 1e-4), out.prior[u],
                                           torch::log(out.prior[u] + 1e-4));
  return torch::softmax(-dis, -1) * error;
}

void AnomalyTransformerOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.at_least("d_model", d_model(), 1).at_least("heads", heads(), 1);
  c.that(d_model() % heads() == 0, "d_model", "must be a multiple of '{}' = {}, got {}", c.key("heads"), heads(),
         d_model());
  c.that(d_model() % 2 == 0, "d_model", "must be even (sine/cosine position code), got {}", d_model());
  c.at_least("layers", layers(), 1)
      .at_least("d_ff", d_ff(), 1)
      .in("dropout", dropout(), 0.0, 1.0, "[)")
      .at_least("k", k(), 0.0)
      .above("temperature", temperature(), 0.0)
      .at_least("score_chunk", score_chunk(), 1);
}

AnomalyTransformer::AnomalyTransformer(Options options) : ReconstructionDetector(std::move(options)) {}

AnomalyTransformerNet AnomalyTransformer::make_net(const std::vector<int64_t>& item_shape) {
  return AnomalyTransformerNet(item_shape.at(1), options_);
}

torch::Tensor AnomalyTransformer::loss(const torch::Tensor& x, bool training) {
  // Validation returns both phases' losses, as the reference's early stopping watches both: an epoch
  // improves only when each falls.
  if (!training) {
    if (options_.stop_on() == AnomalyTransformerStopping::Reconstruction)
      return torch::mse_loss(net_->forward(x), x);
    const auto [phase1, phase2] = net_->phase_losses(x, options_.k());
    return torch::stack({phase1, phase2});
  }
  return net_->minimax_loss(x, options_.k());
}

Scores AnomalyTransformer::score_model(const Batch& batch) {
  // At most score_chunk windows arrive per call (items_per_scoring_pass).
  Scores s;
  s.step_map = net_->criterion(batch.x, options_.temperature());
  s.per_item = s.step_map.mean(1);
  return s;
}

ADX_BUILTIN_DETECTOR(anomaly_transformer, factory_for<AnomalyTransformer>(),
                     "Anomaly Transformer: association discrepancy x reconstruction, per step")

}  // namespace adx
