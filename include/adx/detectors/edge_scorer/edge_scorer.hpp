#pragma once
// Edge scoring: a GCN embeds every node, and an MLP on the two endpoint embeddings
// (element-wise product, or concatenation) predicts whether an edge belongs to the
// graph, trained on the observed edges against as many uniformly drawn non-edges. An
// edge the model finds unlikely is suspicious: its score is the negative logit. Users
// rank transactions or links with score_edges(); score() gives every node the mean score
// of its edges, so the detector also works as a node detector.
//
//   adx::EdgeScorer scorer;
//   scorer.fit(adx::Data::graph(features, edges));
//   auto suspicious = scorer.score_edges(adx::Data::graph(features, edges));  // one per edge
#include <adx/detectors/components/algorithms/graph_structure.hpp>
#include <adx/nn/gcn.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

enum class EdgeCombine { Product, Concat };
ADX_ENUM_NAMES(EdgeCombine, {EdgeCombine::Product, "product"}, {EdgeCombine::Concat, "concat"});

struct EdgeScorerOptions {
  ADX_OPTIONS_STRUCT;
  /// Widths of the GCN layers (the last is the embedding).
  ADX_ARG(std::vector<int64_t>, gcn) = std::vector<int64_t>{64, 64};
  /// Hidden widths of the MLP on the endpoint pair.
  ADX_ARG(std::vector<int64_t>, mlp) = std::vector<int64_t>{64};
  /// How the endpoint embeddings are combined.
  ADX_ARG(EdgeCombine, combine) = EdgeCombine::Product;
  /// Training loop; a batch is a set of target nodes, whose edges are the positives.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(100).lr(0.005).weight_decay(0.0).batch_size(4096).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class EdgeScorerNetImpl : public torch::nn::Module {
 public:
  EdgeScorerNetImpl(int64_t features, const EdgeScorerOptions& o);
  torch::Tensor embed(const torch::Tensor& x, const torch::Tensor& adjacency) { return encoder->forward(x, adjacency); }
  /// Logits of edges (source, target) from the node embeddings z.
  torch::Tensor edge_logits(const torch::Tensor& z, const torch::Tensor& source, const torch::Tensor& target);
  nn::GcnStack encoder{nullptr};
  torch::nn::Sequential decoder{nullptr};

 private:
  EdgeCombine combine_;
};
TORCH_MODULE(EdgeScorerNet);

class EdgeScorer : public GraphDetector<EdgeScorerOptions, EdgeScorerNet> {
 public:
  using Options = EdgeScorerOptions;
  explicit EdgeScorer(Options options = Options());
  std::string type() const override { return "edge_scorer"; }

  /// A score for every edge of `data.edge_index`, in order (higher = more suspicious).
  torch::Tensor score_edges(const Data& data);

 protected:
  EdgeScorerNet make_net(int64_t features) override { return EdgeScorerNet(features, options_); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;

 private:
  /// -logit of every edge of the batch's edge list (not symmetrised), in chunks.
  torch::Tensor given_edge_scores(const Batch& batch);
};

/// Edges between random node pairs, appended to a graph and labelled 1 (real edges 0):
/// the anomalies an edge detector should rank first.
struct InjectedEdges {
  torch::Tensor edge_index;  ///< 2 x (E + count)
  torch::Tensor labels;      ///< E + count, int64
};
InjectedEdges inject_random_edges(const torch::Tensor& edge_index, int64_t num_nodes, int64_t count, uint64_t seed = 0);

}  // namespace adx
