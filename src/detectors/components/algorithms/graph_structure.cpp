#include <adx/data/graphs.hpp>
#include <adx/detectors/components/algorithms/graph_structure.hpp>

namespace adx {

torch::Tensor GraphStructure::has_edge(const torch::Tensor& u, const torch::Tensor& v) const {
  const auto wanted = (u * nodes + v).reshape({-1});
  const auto pos = torch::searchsorted(keys, wanted).clamp_max(std::max<int64_t>(0, keys.size(0) - 1));
  if (keys.size(0) == 0) return torch::zeros(u.sizes(), u.options().dtype(torch::kBool));
  return keys.index_select(0, pos).eq(wanted).reshape(u.sizes());
}

std::pair<torch::Tensor, torch::Tensor> GraphStructure::edges_from(const torch::Tensor& targets) const {
  auto position = torch::full({nodes}, -1, symmetric.options());
  position.index_put_({targets}, torch::arange(targets.size(0), symmetric.options()));
  const auto where = position.index_select(0, symmetric[0]);
  const auto rows = (where >= 0).nonzero().reshape({-1});
  return {rows, where.index_select(0, rows)};
}

const GraphStructure& GraphStructureCache::of(const Batch& batch) {
  const Key key{batch.edge_index.data_ptr(), batch.edge_index.size(1), batch.x.size(0)};
  if (key == key_) return structure_;
  const int64_t n = batch.x.size(0);
  const auto device = batch.x.device();
  structure_.nodes = n;
  auto lists = graph::neighbour_lists(batch.edge_index, n);
  structure_.symmetric = lists.symmetric.to(device);
  structure_.row_start = lists.row_start.to(device);
  structure_.keys = structure_.symmetric[0] * n + structure_.symmetric[1];
  structure_.adjacency = graph::normalized_adjacency(batch.edge_index, batch.edge_weight, n).to(device);
  key_ = key;
  return structure_;
}

}  // namespace adx
