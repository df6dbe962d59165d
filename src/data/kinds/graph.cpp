// Graph input: node features N x F and an edge list 2 x E (optional weights
// and node labels); an item is a node. Storage is sparse only: nothing here
// allocates more than O(N + E), never an N x N matrix.
#include "reading.hpp"

#include <adx/core/error.hpp>
#include <adx/data/formats/edge_lists.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/data/input_kind.hpp>

#include <torch/types.h>

namespace adx {
namespace {

class GraphKind final : public InputKind {
 public:
  std::string name() const override { return kinds::kGraph; }
  InputKindTraits traits() const override {
    InputKindTraits t;
    t.graph = true;
    return t;
  }
  /// Node features N x F (CSV or NPY) and the edge list of options.edges (src,dst[,weight] CSV or NPY).
  Data read(const std::string& path, const ReadOptions& options, std::vector<std::string>* columns) const override {
    ADX_CHECK_AS(OptionError, !options.edges.empty(),
                 "graph data need an edge list (src,dst[,weight] rows; --edges FILE in the adx command)");
    const auto x = kind_reading::read_array(path, true, columns);
    ADX_CHECK_AS(ShapeError, x.dim() == 2, "{} holds node features of shape {}; they are N x F", path,
                 shape_string(x.sizes().vec()));
    graph::EdgeListOptions edge_options;
    edge_options.num_nodes = x.size(0);
    const auto edges = graph::load_edge_list(options.edges, edge_options);
    return Data::graph(x.to(torch::kFloat32), edges.edge_index, edges.edge_weight);
  }

  void validate(const Data& data, const char* what) const override {
    validate_values(data, what, 2, "N x F node features");
    const int64_t nodes = data.x.size(0);
    ADX_CHECK_AS(ShapeError, data.edge_index.defined(), "{}: a graph needs an edge_index (2 x E)", what);
    const auto& e = data.edge_index;
    ADX_CHECK_AS(ShapeError, e.dim() == 2 && e.size(0) == 2, "{}: edge_index must be 2 x E, got shape {}", what,
                 shape_string(e.sizes().vec()));
    ADX_CHECK_AS(ShapeError, !e.is_floating_point() && e.scalar_type() != torch::kBool,
                 "{}: edge_index must hold integer node ids, got dtype {}", what,
                 std::string(c10::toString(e.scalar_type())));
    if (e.size(1) > 0) {
      const auto bad = ((e < 0) | (e >= nodes)).any(0).nonzero();
      if (bad.numel() > 0) {
        const int64_t i = bad[0][0].item<int64_t>();
        throw ShapeError(fmt::format("{}: edge {} ({} -> {}) refers to a node outside 0..{}: the node count is {} "
                                     "(rows of the feature matrix)",
                                     what, i, e[0][i].item<int64_t>(), e[1][i].item<int64_t>(), nodes - 1, nodes));
      }
    }
    if (data.edge_weight.defined()) {
      ADX_CHECK_AS(ShapeError, data.edge_weight.dim() == 1 && data.edge_weight.size(0) == e.size(1),
                   "{}: {} edge weights for {} edges", what, data.edge_weight.numel(), e.size(1));
      check_finite(data.edge_weight.reshape({-1, 1}), what, "edge weight");
    }
    if (data.labels.defined())
      ADX_CHECK_AS(ShapeError, data.labels.numel() == nodes,
                   "{}: {} node labels but the feature matrix has {} rows (nodes)", what, data.labels.numel(), nodes);
    ADX_CHECK_AS(ShapeError, data.items.defined() && data.items.dim() == 1 && data.items.scalar_type() == torch::kLong,
                 "{}: items must be a 1-D int64 tensor of target nodes", what);
    if (data.items.numel() > 0) {
      const auto bad = ((data.items < 0) | (data.items >= nodes)).nonzero();
      ADX_CHECK_AS(ShapeError, bad.numel() == 0, "{}: target node {} is outside 0..{}", what,
                   bad.numel() ? data.items[bad[0][0]].item<int64_t>() : 0, nodes - 1);
    }
    ADX_CHECK_AS(ValueError, data.hops >= 0, "{}: hops must be >= 0, got {}", what, data.hops);
    check_finite(data.x, what, "node");
  }

  int64_t size(const Data& data) const override { return data.items.defined() ? data.items.size(0) : 0; }
  std::vector<int64_t> item_shape(const Data& data) const override {
    return data.x.defined() ? std::vector<int64_t>{data.x.size(1)} : std::vector<int64_t>{};
  }
  Data select(const Data& data, const at::Tensor& indices) const override {
    Data d = data;
    d.items = data.items.index_select(0, indices.to(data.items.device()));
    return d;
  }
  Data slice(const Data& data, int64_t begin, int64_t end) const override {
    Data d = data;
    d.items = data.items.slice(0, begin, end);
    return d;
  }

  // The whole graph with the batch's nodes as targets, or their k-hop neighbourhood.
  Batch collate(const Data& data) const override {
    if (data.hops == 0) {
      Batch b;
      b.x = data.x;
      b.edge_index = data.edge_index;
      b.edge_weight = data.edge_weight;
      b.targets = data.items;
      return b;
    }
    const auto nodes = graph::k_hop_nodes(data.edge_index, data.x.size(0), data.items, data.hops);
    return graph::induced_subgraph(data, nodes, data.items);
  }

  // Held-out nodes stay in the graph (their features and edges are visible, as in
  // transductive training) but are never targets of a training batch.
  Preprocess default_preprocess() const override { return Preprocess::Standardize; }
  at::Tensor fit_values(const Data& data) const override {
    return data.x.index_select(0, data.items.to(data.x.device()));
  }
  // A full-graph pass scores every node at once; with hops, batches stay bounded.
  int64_t score_chunk(const Data& data, int64_t requested) const override {
    return data.hops == 0 ? std::max<int64_t>(1, size(data)) : requested;
  }
};

}  // namespace

std::shared_ptr<const InputKind> make_graph_kind() { return std::make_shared<GraphKind>(); }

Data Data::graph(at::Tensor x, at::Tensor edge_index, at::Tensor edge_weight, at::Tensor labels) {
  Data d;
  d.kind = &adx::input_kind(kinds::kGraph);
  if (x.defined() && x.dim() >= 1)
    d.items = torch::arange(x.size(0), torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  d.x = std::move(x);
  d.edge_index = std::move(edge_index);
  d.edge_weight = std::move(edge_weight);
  d.labels = std::move(labels);
  return d;
}

namespace graph {

at::Tensor k_hop_nodes(const at::Tensor& edge_index, int64_t num_nodes, const at::Tensor& targets, int64_t hops) {
  const auto device = edge_index.device();
  auto reached = torch::zeros({num_nodes}, torch::TensorOptions().dtype(torch::kBool).device(device));
  reached.index_fill_(0, targets.to(device), true);
  const auto src = edge_index[0], dst = edge_index[1];
  for (int64_t h = 0; h < hops; ++h) {
    // Both directions: a neighbour is a neighbour whichever way the edge points.
    const auto from_src = reached.index_select(0, src), from_dst = reached.index_select(0, dst);
    auto next = reached.clone();
    next.index_fill_(0, dst.masked_select(from_src), true);
    next.index_fill_(0, src.masked_select(from_dst), true);
    if (torch::equal(next, reached)) break;
    reached = next;
  }
  return reached.nonzero().reshape({-1});
}

Batch induced_subgraph(const Data& data, const at::Tensor& nodes, const at::Tensor& targets) {
  const auto device = data.x.device();
  const int64_t n = data.x.size(0);
  // Old id -> row in the batch (-1 outside): one int64 per node, never N x N.
  auto position = torch::full({n}, -1, torch::TensorOptions().dtype(torch::kLong).device(device));
  const auto rows = nodes.to(device);
  position.index_put_({rows}, torch::arange(rows.size(0), position.options()));
  const auto e = data.edge_index.to(device);
  const auto ps = position.index_select(0, e[0]), pd = position.index_select(0, e[1]);
  const auto keep = ((ps >= 0) & (pd >= 0)).nonzero().reshape({-1});
  Batch b;
  b.x = data.x.index_select(0, rows);
  b.edge_index = torch::stack({ps.index_select(0, keep), pd.index_select(0, keep)});
  if (data.edge_weight.defined()) b.edge_weight = data.edge_weight.to(device).index_select(0, keep);
  b.targets = position.index_select(0, targets.to(device));
  ADX_CHECK((b.targets >= 0).all().item<bool>(), "induced_subgraph: a target node is not among the nodes");
  return b;
}

}  // namespace graph
}  // namespace adx
