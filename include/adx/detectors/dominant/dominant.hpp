#pragma once
// DOMINANT (Ding et al., SDM 2019), as PyGOD and the authors' code compute it: a GCN encoder (no
// activation after its last layer), an attribute decoder (GCN back to the features) and a structure
// decoder (GCN, then S_hat = Z Z^T, or sigmoid(Z Z^T) with sigmoid_structure, the paper's form); node
// score = alpha * attribute error + (1 - alpha) * structure error, each the L2 norm of the node's row of
// the residual (PyGOD's `weight` is alpha), with `combine = weighted`. The default, `combine = max_z`,
// scores the larger of the two errors after standardising each by its mean and standard deviation over
// the training nodes: an injected clique shows in the structure error alone and a contextual outlier in
// the attribute error alone, and the weighted sum lets the term with the larger spread drown the other
// (CiteSeer with PyGOD's injection: docs/graphs.md). Training minimises the weighted mean either way.
// The structure target is the adjacency without self-loops, and the sum runs over every node j, i itself
// included, as the reference's dense N x N matrices do. adx never builds them: the error of node i is
// split into its edges and every node,
//   sum_j (A_ij - S_ij)^2 = sum_j S_ij^2 + sum_{j in N(i)} (1 - 2 S_ij),
// and with S = Z Z^T the first sum is z_i^T (Z^T Z) z_i, exact in O(N d^2). With the sigmoid it is
// computed exactly in row chunks at score time (O(chunk x N) memory), and estimated in training from
// `negative_samples` uniformly drawn nodes (unbiased before the square root; 0 = exact there too).
//
//   adx::Dominant dominant;
//   dominant.fit(adx::Data::graph(features, edge_index));
//   auto scores = dominant.score(adx::Data::graph(features, edge_index)).per_item;  // per node
#include <adx/detectors/components/algorithms/graph_structure.hpp>
#include <adx/nn/gcn.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

/// How DOMINANT turns a node's attribute and structure errors into its score.
enum class DominantCombine {
  Weighted,  ///< alpha * attribute + (1 - alpha) * structure (the paper, PyGOD)
  MaxZ,      ///< the larger of the two errors, each standardised over the training nodes
};
ADX_ENUM_NAMES(DominantCombine, {DominantCombine::Weighted, "weighted"}, {DominantCombine::MaxZ, "max_z"});

struct DominantOptions {
  ADX_OPTIONS_STRUCT;
  /// Width of every hidden GCN layer and of the embedding.
  ADX_ARG(int64_t, hidden) = 64;
  /// GCN layers in all: half encode, half decode the attributes; the structure decoder
  /// has one fewer than the attribute decoder before its inner product (PyGOD's layout).
  ADX_ARG(int64_t, layers) = 4;
  /// Dropout between GCN layers.
  ADX_ARG(double, dropout) = 0.0;
  /// Weight of the attribute error in loss and score (1 - alpha weighs the structure): the paper's alpha
  /// and PyGOD's `weight`.
  ADX_ARG(double, alpha) = 0.5;
  /// The score: `max_z` (default, chosen on CiteSeer) or `weighted` (the paper's and PyGOD's).
  ADX_ARG(DominantCombine, combine) = DominantCombine::MaxZ;
  /// Reconstruct the structure as sigmoid(Z Z^T) (the paper) instead of Z Z^T (PyGOD's default and the
  /// authors' code).
  ADX_ARG(bool, sigmoid_structure) = false;
  /// With sigmoid_structure, nodes drawn per node in training to estimate the sum over every node
  /// (0 = exact, O(N^2) per epoch); scores are always exact.
  ADX_ARG(int64_t, negative_samples) = 32;
  /// Training loop; a batch is a set of target nodes over the whole graph (PyGOD: full graph,
  /// 100 epochs, lr 0.004).
  ADX_ARG(TrainOptions, train) =
      TrainOptions().epochs(100).lr(0.004).weight_decay(0.0).batch_size(4096).patience(0);
  // Features as given, as PyGOD feeds them: standardising sparse binary features (bag-of-words) turns
  // rare words into huge values.
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// DOMINANT's structure error of each node of `targets`: sqrt(sum_j (A_ij - S_ij)^2) over every node j,
/// with S = Z Z^T (or sigmoid(Z Z^T) when `sigmoid`) from the structure decoder's output `z` (N x d) and A
/// the graph's adjacency without self-loops. `negative_samples` > 0 estimates the sum over every node
/// from that many uniform draws per target (with `generator`, or the global one); 0 computes it exactly,
/// the sigmoid's in chunks of `chunk_rows` targets (each a chunk x N product).
torch::Tensor dominant_structure_error(const torch::Tensor& z, const GraphStructure& graph, const torch::Tensor& targets,
                                       bool sigmoid, int64_t negative_samples = 0,
                                       c10::optional<at::Generator> generator = c10::nullopt,
                                       int64_t chunk_rows = 0);

class DominantNetImpl : public torch::nn::Module {
 public:
  DominantNetImpl(int64_t features, const DominantOptions& o);
  /// The structure decoder's output Z (S_hat = Z Z^T) and the attribute reconstruction of every node.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& adjacency,
                                                  const torch::Tensor& propagated_x = {});
  nn::GcnStack encoder{nullptr}, attribute_decoder{nullptr}, structure_decoder{nullptr};
};
TORCH_MODULE(DominantNet);

/// DOMINANT's attribute and structure errors of the nodes `targets` (rows of x) over `graph`, from one pass
/// of `net`; with `training`, the sigmoid's structure error is estimated as in training.
std::pair<torch::Tensor, torch::Tensor> dominant_errors(DominantNetImpl& net, const torch::Tensor& x,
                                                        const GraphStructure& graph, const torch::Tensor& targets,
                                                        const DominantOptions& options, bool training = false);

/// DOMINANT's weighted node scores (alpha * attribute + (1 - alpha) * structure error) of `targets`: the
/// training loss's terms and, with combine = weighted, what score() returns.
torch::Tensor dominant_scores(DominantNetImpl& net, const torch::Tensor& x, const GraphStructure& graph,
                              const torch::Tensor& targets, const DominantOptions& options, bool training = false);

class Dominant : public GraphDetector<DominantOptions, DominantNet> {
 public:
  using Options = DominantOptions;
  explicit Dominant(Options options = Options());
  std::string type() const override { return "dominant"; }

  /// Node scores of `targets` (rows of batch.x) from one pass over the batch's graph: exact, or in
  /// training with the sigmoid, estimated from negative_samples draws.
  torch::Tensor node_scores(const Batch& batch, bool training);

 protected:
  DominantNet make_net(int64_t features) override { return DominantNet(features, options_); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  /// Files record which definition of the score they were fitted under; files of the earlier one (alpha on
  /// the structure, a sigmoid, sampled scores) are refused rather than scored differently.
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  /// Mean and standard deviation of the attribute and the structure error over the training nodes.
  struct ErrorMoments {
    double attribute_mean = 0, attribute_std = 1, structure_mean = 0, structure_std = 1;
  } moments_;
};

}  // namespace adx
