#include <adx/detectors/dominant/dominant.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {
namespace {

std::vector<int64_t> widths(int64_t first, int64_t hidden, int64_t layers, int64_t last) {
  std::vector<int64_t> w{first};
  for (int64_t i = 0; i + 1 < layers; ++i) w.push_back(hidden);
  w.push_back(last);
  return w;
}

// Distances per chunk of an exact sigmoid structure error: chunk x N values at a time.
constexpr int64_t kChunkValues = int64_t{1} << 22;

// The score's definition, stored in model files: 2 since DOMINANT follows PyGOD (alpha on the attributes),
// 3 since files hold the error moments of combine = max_z (a file of definition 2 scores as weighted).
constexpr int64_t kScoreDefinition = 3;
constexpr int64_t kWeightedOnlyDefinition = 2;
const char* const kDefinitionKey = "dominant.score_definition";
const char* const kMomentsKey = "dominant.error_moments";
// A standard deviation below this counts as this (errors that barely vary say little, never divide by 0).
constexpr double kSmallestStd = 1e-12;

}  // namespace

torch::Tensor dominant_structure_error(const torch::Tensor& z, const GraphStructure& graph, const torch::Tensor& targets,
                                       bool sigmoid, int64_t negative_samples, c10::optional<at::Generator> generator,
                                       int64_t chunk_rows) {
  const int64_t nodes = z.size(0), n = targets.size(0);
  const auto s = [sigmoid](const torch::Tensor& dot) { return sigmoid ? torch::sigmoid(dot) : dot; };
  // Edges: 1 - 2 S_ij for every neighbour j of a target i (A_ij = 1), summed per target.
  const auto [rows, owner] = graph.edges_from(targets);
  const auto src = graph.symmetric[0].index_select(0, rows), dst = graph.symmetric[1].index_select(0, rows);
  const auto s_edge = s(nn::row_pair_dots(z, src, dst));
  const auto edges = torch::zeros({n}, z.options()).index_add(0, owner, 1 - 2 * s_edge);
  const auto z_targets = z.index_select(0, targets);
  torch::Tensor every;  // sum over every node j (i included) of S_ij^2
  if (!sigmoid) {
    // sum_j (z_i . z_j)^2 = z_i^T (Z^T Z) z_i: exact without any N x N product.
    every = (z_targets.mm(z.t().mm(z)) * z_targets).sum(1);
  } else if (negative_samples > 0) {
    // N / k times the sum over k uniform draws of j (i may be drawn, as it counts in the sum).
    const auto long_options = torch::TensorOptions().dtype(torch::kLong);
    auto drawn = generator ? torch::randint(nodes, {n, negative_samples}, *generator, long_options)
                           : torch::randint(nodes, {n, negative_samples}, long_options);
    const auto z_drawn = z.index_select(0, drawn.to(z.device()).reshape({-1})).reshape({n, negative_samples, -1});
    const auto a = torch::sigmoid(torch::bmm(z_drawn, z_targets.unsqueeze(2)).squeeze(2));
    every = static_cast<double>(nodes) / static_cast<double>(negative_samples) * a.pow(2).sum(1);
  } else {
    const int64_t chunk = chunk_rows > 0 ? chunk_rows : std::max<int64_t>(1, kChunkValues / std::max<int64_t>(1, nodes));
    std::vector<torch::Tensor> parts;
    for (int64_t begin = 0; begin < n; begin += chunk)
      parts.push_back(torch::sigmoid(z_targets.narrow(0, begin, std::min(chunk, n - begin)).mm(z.t())).pow(2).sum(1));
    every = parts.empty() ? torch::zeros({0}, z.options()) : torch::cat(parts);
  }
  // The two sums cancel where S fits A well; rounding may leave a tiny negative.
  return (every + edges).clamp_min(0).add(1e-12).sqrt();
}

DominantNetImpl::DominantNetImpl(int64_t features, const DominantOptions& o) {
  // PyGOD's split: floor(layers / 2) encode, ceil(layers / 2) decode the attributes, one fewer the structure.
  const int64_t encoder_layers = std::max<int64_t>(1, o.layers() / 2);
  const int64_t decoder_layers = std::max<int64_t>(1, o.layers() - encoder_layers);
  encoder = register_module("encoder", nn::GcnStack(widths(features, o.hidden(), encoder_layers, o.hidden()), o.dropout()));
  attribute_decoder = register_module(
      "attribute_decoder", nn::GcnStack(widths(o.hidden(), o.hidden(), decoder_layers, features), o.dropout()));
  structure_decoder = register_module(
      "structure_decoder",
      nn::GcnStack(widths(o.hidden(), o.hidden(), std::max<int64_t>(1, decoder_layers - 1), o.hidden()), o.dropout()));
}

std::pair<torch::Tensor, torch::Tensor> DominantNetImpl::forward(const torch::Tensor& x, const torch::Tensor& adjacency,
                                                                 const torch::Tensor& propagated_x) {
  // PyGOD's GCN (torch_geometric's) applies the activation between layers only: the embedding is the last
  // layer's output as it is.
  const auto h = encoder->forward(x, adjacency, propagated_x);
  return {structure_decoder->forward(h, adjacency), attribute_decoder->forward(h, adjacency)};
}

void DominantOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .at_least("hidden", hidden(), 1)
      .at_least("layers", layers(), 2)
      .in("dropout", dropout(), 0.0, 1.0, "[)")
      .in("alpha", alpha(), 0.0, 1.0)
      .at_least("negative_samples", negative_samples(), 0);
}

Dominant::Dominant(Options options) : GraphDetector(std::move(options)) {}

std::pair<torch::Tensor, torch::Tensor> dominant_errors(DominantNetImpl& net, const torch::Tensor& x,
                                                        const GraphStructure& graph, const torch::Tensor& targets,
                                                        const DominantOptions& options, bool training) {
  const auto [z, x_hat] = net.forward(x, graph.adjacency, graph.propagated(x));
  auto attribute = (x.index_select(0, targets) - x_hat.index_select(0, targets)).pow(2).sum(1).sqrt();
  auto structure = dominant_structure_error(z, graph, targets, options.sigmoid_structure(),
                                            training ? options.negative_samples() : 0);
  return {attribute, structure};
}

torch::Tensor dominant_scores(DominantNetImpl& net, const torch::Tensor& x, const GraphStructure& graph,
                              const torch::Tensor& targets, const DominantOptions& options, bool training) {
  const auto [attribute, structure] = dominant_errors(net, x, graph, targets, options, training);
  return options.alpha() * attribute + (1 - options.alpha()) * structure;
}

torch::Tensor Dominant::node_scores(const Batch& batch, bool training) {
  if (training || options_.combine() == DominantCombine::Weighted)
    return dominant_scores(*net_, batch.x, graphs_.of(batch), batch_targets(batch), options_, training);
  const auto [attribute, structure] =
      dominant_errors(*net_, batch.x, graphs_.of(batch), batch_targets(batch), options_, false);
  const auto& m = moments_;
  return torch::maximum((attribute - m.attribute_mean) / m.attribute_std,
                        (structure - m.structure_mean) / m.structure_std);
}

void Dominant::fit_model(const Data& train, const Data& validation) {
  train_module(*net_, train, validation, options_.train(),
               [this](const Batch& batch, bool) { return node_scores(batch, /*training=*/true).mean(); }, progress(),
               type());
  // The two errors' moments over the training nodes, for combine = max_z (exact errors, one scoring pass).
  if (options_.combine() != DominantCombine::MaxZ) return;
  torch::NoGradGuard no_grad;
  net_->eval();
  const auto& kind = train.input_kind();
  const auto batch = kind.collate(kind.slice(train, 0, kind.size(train)));
  const auto [attribute, structure] =
      dominant_errors(*net_, batch.x, graphs_.of(batch), batch_targets(batch), options_, false);
  auto moments = [](const torch::Tensor& e) {
    const auto v = e.to(torch::kCPU, torch::kFloat64);
    return std::make_pair(v.mean().item<double>(),
                          std::max(kSmallestStd, v.numel() > 1 ? v.std().item<double>() : 0.0));
  };
  std::tie(moments_.attribute_mean, moments_.attribute_std) = moments(attribute);
  std::tie(moments_.structure_mean, moments_.structure_std) = moments(structure);
}

Scores Dominant::score_model(const Batch& batch) {
  Scores s;
  s.per_item = node_scores(batch, /*training=*/false);
  return s;
}

void Dominant::save_extra(TensorMap& state) const {
  state[kDefinitionKey] = torch::tensor(kScoreDefinition, torch::kLong);
  const auto& m = moments_;
  state[kMomentsKey] =
      torch::tensor({m.attribute_mean, m.attribute_std, m.structure_mean, m.structure_std}, torch::kFloat64);
}

void Dominant::load_extra(const TensorMap& state) {
  const auto found = state.find(kDefinitionKey);
  ADX_CHECK_AS(IoError, found != state.end() && found->second.numel() == 1,
               "this DOMINANT model was fitted by an earlier adx, whose score weighed the structure by alpha, "
               "applied a sigmoid and sampled non-edges; fit it again to score as PyGOD's DOMINANT does");
  const int64_t definition = found->second.item<int64_t>();
  ADX_CHECK_AS(IoError, definition == kScoreDefinition || definition == kWeightedOnlyDefinition,
               "this DOMINANT model has score definition {}, this adx knows {} and {}", definition,
               kWeightedOnlyDefinition, kScoreDefinition);
  if (definition == kWeightedOnlyDefinition) {
    // Fitted before combine existed: its score was the weighted one, and it stays so.
    options_.combine(DominantCombine::Weighted);
    return;
  }
  const auto moments = state.find(kMomentsKey);
  ADX_CHECK_AS(IoError, moments != state.end(), "this DOMINANT model file lacks '{}'", kMomentsKey);
  const auto& v = moments->second;
  ADX_CHECK_AS(IoError, v.numel() == 4 && v.scalar_type() == torch::kFloat64 && v.isfinite().all().item<bool>(),
               "model file's '{}' is not 4 finite float64 values", kMomentsKey);
  const auto m = v.contiguous();
  const double* p = m.data_ptr<double>();
  ADX_CHECK_AS(IoError, p[1] > 0 && p[3] > 0, "model file's '{}' holds a standard deviation <= 0 ({}, {})",
               kMomentsKey, p[1], p[3]);
  moments_ = {p[0], p[1], p[2], p[3]};
}

ADX_BUILTIN_DETECTOR(dominant, factory_for<Dominant>(),
                     "DOMINANT: GCN dual reconstruction of attributes and (sparse) structure, per node")

}  // namespace adx
