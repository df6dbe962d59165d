#pragma once
// CoLA (Liu et al., TNNLS 2021): contrastive self-supervised node anomaly detection.
// Each target node is paired with a small subgraph around it (random walk with restart,
// `subgraph_size` nodes including the target). As in the reference code, the subgraph's
// copy of the target is anonymised (zero features) and the target itself is appended as
// an isolated node; a one-layer GCN embeds both, the subgraph is read out by averaging,
// and a bilinear discriminator tells the node's own subgraph (positive) from another
// node's (negative, the batch shifted by one as the reference shifts it). Score = mean over
// `rounds` sampling rounds, each in a fresh random order of the nodes, of
// (sigmoid(negative logit) - sigmoid(positive logit)): a node that does not agree with its
// neighbourhood scores high.
#include <adx/detectors/components/algorithms/graph_structure.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

struct ColaOptions {
  ADX_OPTIONS_STRUCT;
  /// Width of the GCN embedding.
  ADX_ARG(int64_t, embedding) = 64;
  /// Nodes per sampled subgraph, the target included.
  ADX_ARG(int64_t, subgraph_size) = 4;
  /// Sampling rounds averaged when scoring (the paper uses 256).
  ADX_ARG(int64_t, rounds) = 256;
  /// Training loop: Adam 1e-3, batch 300 target nodes, 100 epochs (the paper's Cora settings).
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(100).lr(1e-3).weight_decay(0.0).batch_size(300).patience(0);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class ColaNetImpl : public torch::nn::Module {
 public:
  ColaNetImpl(int64_t features, int64_t embedding);
  /// Discriminator logits of positive and negative pairs: 2B, for subgraph features
  /// B x (S + 1) x F and normalised subgraph adjacencies B x (S + 1) x (S + 1).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& adjacency);
  torch::nn::Linear gcn{nullptr};
  torch::Tensor gcn_bias;  ///< the reference's GCN adds a bias after propagating
  torch::nn::PReLU activation{nullptr};
  torch::nn::Bilinear discriminator{nullptr};
};
TORCH_MODULE(ColaNet);

class Cola : public GraphDetector<ColaOptions, ColaNet> {
 public:
  using Options = ColaOptions;
  explicit Cola(Options options = Options());
  std::string type() const override { return "cola"; }

 protected:
  ColaNet make_net(int64_t features) override { return ColaNet(features, options_.embedding()); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;

 private:
  /// One round's logits for the batch's targets: positive then negative pairs (2B).
  torch::Tensor logits(const Batch& batch, c10::optional<at::Generator> generator);
};

/// Discriminator logits (positive pairs, then negative) for given subgraphs `nodes` (B x s node ids of
/// the graph's x, the target last), in that order: the negatives pair row i with row i - 1's subgraph.
torch::Tensor cola_logits(ColaNetImpl& net, const torch::Tensor& x, const GraphStructure& graph,
                          const torch::Tensor& nodes);
/// One scoring round for given subgraphs: sigmoid(negative logit) - sigmoid(positive logit) per row.
torch::Tensor cola_round_scores(ColaNetImpl& net, const torch::Tensor& x, const GraphStructure& graph,
                                const torch::Tensor& nodes);

namespace graph {
/// Random walks with restart from every target until `size` - 1 distinct other nodes are
/// found: first single steps from the target (CoLA's restart probability 1), then walks
/// restarting with probability 0.9 (the reference's second phase); nodes with too small a
/// neighbourhood repeat what was found (the target itself when isolated). Returns B x size node ids, the target last.
torch::Tensor sample_subgraphs(const GraphStructure& graph, const torch::Tensor& targets, int64_t size,
                               c10::optional<at::Generator> generator);
}  // namespace graph

}  // namespace adx
