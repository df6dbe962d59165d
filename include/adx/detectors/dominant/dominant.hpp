#pragma once
// DOMINANT (Ding et al., SDM 2019): a GCN encoder, an attribute decoder (GCN back to the
// features) and a structure decoder (A_hat_ij = sigmoid(z_i . z_j)); node score =
// alpha * structure error + (1 - alpha) * attribute error, each the L2 norm of the node's
// row of the residual. The reference (and PyGOD) builds the dense N x N adjacency; adx
// never does: the structure error of node i is split into its edges and all other nodes,
//   sum_j (A_ij - a_ij)^2 = sum_{j in N(i)} ((1 - a_ij)^2 - a_ij^2) + sum_{j != i} a_ij^2,
// and the last sum is estimated from `negative_samples` uniformly drawn nodes (unbiased;
// scoring draws them from a fixed seed, so scores repeat exactly).
//
//   adx::Dominant dominant;
//   dominant.fit(adx::Data::graph(features, edge_index));
//   auto scores = dominant.score(adx::Data::graph(features, edge_index)).per_item;  // per node
#include <adx/detectors/components/graph_structure.hpp>
#include <adx/nn/gcn.hpp>
#include <adx/train/trainer.hpp>

namespace adx {

struct DominantOptions {
  ADX_OPTIONS_STRUCT;
  /// Width of every hidden GCN layer and of the embedding.
  ADX_ARG(int64_t, hidden) = 64;
  /// GCN layers in all: half encode, half decode the attributes; the structure decoder
  /// has one fewer than the attribute decoder before its inner product (PyGOD's layout).
  ADX_ARG(int64_t, layers) = 4;
  /// Dropout between GCN layers.
  ADX_ARG(double, dropout) = 0.0;
  /// Weight of the structure error in loss and score (1 - alpha weighs the attributes).
  ADX_ARG(double, alpha) = 0.5;
  /// Nodes drawn per node to estimate its error against all non-neighbours.
  ADX_ARG(int64_t, negative_samples) = 32;
  /// Training loop; a batch is a set of target nodes over the whole graph (PyGOD: full graph,
  /// 100 epochs, lr 0.004).
  ADX_ARG(TrainOptions, train) =
      TrainOptions().epochs(100).lr(0.004).weight_decay(0.0).batch_size(4096).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);
};

class DominantNetImpl : public torch::nn::Module {
 public:
  DominantNetImpl(int64_t features, const DominantOptions& o);
  /// Embedding and attribute reconstruction of every node.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& adjacency);
  nn::GcnStack encoder{nullptr}, attribute_decoder{nullptr}, structure_decoder{nullptr};
};
TORCH_MODULE(DominantNet);

class Dominant : public GraphDetector<DominantOptions, DominantNet> {
 public:
  using Options = DominantOptions;
  explicit Dominant(Options options = Options());
  std::string type() const override { return "dominant"; }

  /// Node scores of `targets` (rows of batch.x) from one pass over the batch's graph.
  /// `generator` draws the non-neighbour samples (nullptr: the global generator).
  torch::Tensor node_scores(const Batch& batch, c10::optional<at::Generator> generator);

 protected:
  DominantNet make_net(int64_t features) override { return DominantNet(features, options_); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;

 private:
  static constexpr int64_t kTargetChunk = 4096;
};

}  // namespace adx
