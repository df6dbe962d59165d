#pragma once
// What graph detectors derive from a batch's edge list, built once per distinct edge
// tensor (full-graph training hands the same one back every step): the symmetric edge
// list, its CSR row offsets and the GCN's normalised sparse adjacency. All O(N + E).
#include <adx/data/data.hpp>
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

namespace adx {

struct GraphStructure {
  torch::Tensor symmetric;  ///< 2 x E' int64, both directions, no self-loops, sorted by (source, target)
  torch::Tensor row_start;  ///< N + 1 offsets: the neighbours of u are symmetric[1][row_start[u] .. row_start[u+1])
  torch::Tensor adjacency;  ///< D^-1/2 (A + I) D^-1/2, sparse N x N
  torch::Tensor keys;       ///< source * N + target of every symmetric edge, sorted (edge lookups)
  int64_t nodes = 0;

 private:
  struct Propagated {
    c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> input{
        c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
    int64_t version = -1;
    torch::Tensor value;
  };
  mutable Propagated propagated_;

 public:
  /// Number of neighbours of every node.
  torch::Tensor degree() const { return row_start.slice(0, 1) - row_start.slice(0, 0, -1); }
  /// True where (u, v) is an edge (any shapes, broadcast).
  torch::Tensor has_edge(const torch::Tensor& u, const torch::Tensor& v) const;
  /// adjacency @ x, kept while x is the same tensor, unchanged: a GCN's first layer applies A_hat to its
  /// input once per fit this way, (A_hat x) W = A_hat (x W), instead of once per step and again in the
  /// backward pass.
  torch::Tensor propagated(const torch::Tensor& x) const;
  /// The symmetric edges leaving `targets`: their rows in `symmetric`, grouped by target in the
  /// order of `targets`, and for each the position of its source among the targets.
  std::pair<torch::Tensor, torch::Tensor> edges_from(const torch::Tensor& targets) const;
};

class GraphStructureCache {
 public:
  const GraphStructure& of(const Batch& batch);
  void clear() { key_ = {}; }

 private:
  struct Key {
    const void* edges = nullptr;
    int64_t edge_count = -1, nodes = -1;
    bool operator==(const Key& o) const { return edges == o.edges && edge_count == o.edge_count && nodes == o.nodes; }
  };
  Key key_;
  GraphStructure structure_;
};

/// Base of the graph detectors: a network over node features, built for the fitted feature
/// width on device(), and the structure cache of the graph it last saw.
template <class Options, class Net>
class GraphDetector : public DetectorWithOptions<Options> {
 public:
  using DetectorWithOptions<Options>::DetectorWithOptions;
  std::vector<std::string> input_kinds() const override { return {kinds::kGraph}; }

 protected:
  /// Creates the network for nodes with `features` features.
  virtual Net make_net(int64_t features) = 0;
  void build(const std::vector<int64_t>& item_shape, const InputKind&) override {
    net_ = make_net(item_shape.at(0));
    net_->to(this->device());
    graphs_.clear();
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }
  /// The nodes a batch scores: its targets, or every node when it names none.
  static torch::Tensor batch_targets(const Batch& batch) {
    return batch.targets.defined()
               ? batch.targets
               : torch::arange(batch.x.size(0), torch::TensorOptions().dtype(torch::kLong).device(batch.x.device()));
  }

  Net net_{nullptr};
  GraphStructureCache graphs_;
};

}  // namespace adx
