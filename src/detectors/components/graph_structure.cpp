#include <adx/data/graphs.hpp>
#include <adx/detectors/components/graph_structure.hpp>

namespace adx {

torch::Tensor GraphStructure::has_edge(const torch::Tensor& u, const torch::Tensor& v) const {
  const auto keys = symmetric[0] * nodes + symmetric[1];
  const auto wanted = (u * nodes + v).reshape({-1});
  const auto pos = torch::searchsorted(keys, wanted).clamp_max(std::max<int64_t>(0, keys.size(0) - 1));
  if (keys.size(0) == 0) return torch::zeros(u.sizes(), u.options().dtype(torch::kBool));
  return keys.index_select(0, pos).eq(wanted).reshape(u.sizes());
}

const GraphStructure& GraphStructureCache::of(const Batch& batch) {
  const Key key{batch.edge_index.data_ptr(), batch.edge_index.size(1), batch.x.size(0)};
  if (key == key_) return structure_;
  const int64_t n = batch.x.size(0);
  const auto device = batch.x.device();
  structure_.nodes = n;
  structure_.symmetric = graph::symmetrize(batch.edge_index, n).to(device);
  const auto counts = torch::bincount(structure_.symmetric[0], {}, n);
  structure_.row_start = torch::cat({torch::zeros({1}, counts.options()), counts.cumsum(0)});
  structure_.adjacency = graph::normalized_adjacency(batch.edge_index, batch.edge_weight, n).to(device);
  key_ = key;
  return structure_;
}

}  // namespace adx
