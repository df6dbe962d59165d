#include <adx/detectors/edge_scorer/edge_scorer.hpp>
#include <adx/nn/mlp.hpp>
#include "detectors/builtin_detector.hpp"

#include <ATen/CPUGeneratorImpl.h>

namespace adx {

EdgeScorerNetImpl::EdgeScorerNetImpl(int64_t features, const EdgeScorerOptions& o) : combine_(o.combine()) {
  std::vector<int64_t> widths{features};
  widths.insert(widths.end(), o.gcn().begin(), o.gcn().end());
  encoder = register_module("encoder", nn::GcnStack(widths, 0.0));
  const int64_t embedding = widths.back();
  decoder = register_module(
      "decoder", nn::make_mlp({combine_ == EdgeCombine::Concat ? 2 * embedding : embedding, o.mlp(), 1, false, 0.0}));
}

torch::Tensor EdgeScorerNetImpl::edge_logits(const torch::Tensor& z, const torch::Tensor& source,
                                            const torch::Tensor& target) {
  const auto a = z.index_select(0, source), b = z.index_select(0, target);
  const auto pair = combine_ == EdgeCombine::Concat ? torch::cat({a, b}, 1) : a * b;
  return decoder->forward(pair).reshape({-1});
}

void EdgeScorerOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).each_at_least("gcn", gcn(), 1).each_at_least("mlp", mlp(), 1, 0);
}

EdgeScorer::EdgeScorer(Options options) : GraphDetector(std::move(options)) {}

void EdgeScorer::fit_model(const Data& train, const Data& validation) {
  train_module(*net_, train, validation, options_.train(),
               [this](const Batch& batch, bool) {
                 const auto& g = graphs_.of(batch);
                 const auto z = net_->embed(batch.x, g.adjacency);
                 // Positives: the edges leaving the batch's targets; negatives: as many random pairs.
                 const auto rows = g.edges_from(batch.targets).first;
                 const auto src = g.symmetric[0].index_select(0, rows), dst = g.symmetric[1].index_select(0, rows);
                 const auto fake = torch::randint(g.nodes, {dst.size(0)}, src.options());
                 const auto logits = torch::cat({net_->edge_logits(z, src, dst), net_->edge_logits(z, src, fake)});
                 const auto labels = torch::cat({torch::ones({src.size(0)}, z.options()), torch::zeros({src.size(0)}, z.options())});
                 return torch::binary_cross_entropy_with_logits(logits, labels);
               },
               progress(), type());
}

torch::Tensor EdgeScorer::given_edge_scores(const Batch& batch) {
  const auto& g = graphs_.of(batch);
  const auto z = net_->embed(batch.x, g.adjacency);
  const auto e = batch.edge_index.to(torch::kLong);
  std::vector<torch::Tensor> parts;
  constexpr int64_t kChunk = 1 << 18;
  for (int64_t begin = 0; begin < e.size(1); begin += kChunk) {
    const int64_t n = std::min(kChunk, e.size(1) - begin);
    parts.push_back(-net_->edge_logits(z, e[0].narrow(0, begin, n), e[1].narrow(0, begin, n)));
  }
  return parts.empty() ? torch::zeros({0}, z.options()) : torch::cat(parts);
}

Scores EdgeScorer::score_model(const Batch& batch) {
  // A node's score: the mean score of its edges (0 without edges).
  const auto edge_scores = given_edge_scores(batch);
  const int64_t n = batch.x.size(0);
  const auto e = batch.edge_index.to(torch::kLong);
  auto sums = torch::zeros({n}, edge_scores.options());
  auto counts = torch::zeros({n}, edge_scores.options());
  for (int side = 0; side < 2; ++side) {
    sums.index_add_(0, e[side], edge_scores);
    counts.index_add_(0, e[side], torch::ones_like(edge_scores));
  }
  const auto node = sums / counts.clamp_min(1);
  Scores s;
  s.per_item = batch.targets.defined() ? node.index_select(0, batch.targets) : node;
  return s;
}

torch::Tensor EdgeScorer::score_edges(const Data& data) {
  ADX_CHECK_AS(NotFittedError, fitted(), "{}: score_edges() called before fit()", type());
  check_input(data, "scoring data", false);
  apply_threads();
  torch::NoGradGuard no_grad;
  net_->eval();
  // Every edge of the data as given (not the k-hop batch a graph's collate would make).
  const auto prepared = prepare(data);
  Batch batch;
  batch.x = prepared.x;
  batch.edge_index = prepared.edge_index;
  batch.edge_weight = prepared.edge_weight;
  return given_edge_scores(batch).to(torch::kCPU, torch::kFloat32);
}

InjectedEdges inject_random_edges(const torch::Tensor& edge_index, int64_t num_nodes, int64_t count, uint64_t seed) {
  ADX_CHECK_AS(ValueError, count >= 1 && num_nodes >= 2, "edge injection needs count >= 1 and 2 nodes, got {} and {}",
               count, num_nodes);
  auto gen = at::detail::createCPUGenerator(seed);
  const auto options = torch::TensorOptions().dtype(torch::kLong);
  const auto src = torch::randint(num_nodes, {count}, gen, options);
  // A different node for the other end.
  const auto dst = torch::remainder(src + torch::randint(1, num_nodes, {count}, gen, options), num_nodes);
  InjectedEdges out;
  out.edge_index = torch::cat({edge_index.to(torch::kLong), torch::stack({src, dst})}, 1);
  out.labels = torch::cat({torch::zeros({edge_index.size(1)}, options), torch::ones({count}, options)});
  return out;
}

ADX_BUILTIN_DETECTOR(edge_scorer, factory_for<EdgeScorer>(),
                     "GCN embeddings and an MLP on endpoint pairs; unlikely edges score high")

}  // namespace adx
