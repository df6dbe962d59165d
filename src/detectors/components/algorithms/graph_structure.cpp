#include <adx/data/graphs.hpp>
#include <adx/detectors/components/algorithms/graph_structure.hpp>
#include <adx/nn/gcn.hpp>

namespace adx {

torch::Tensor GraphStructure::has_edge(const torch::Tensor& u, const torch::Tensor& v) const {
  const auto wanted = (u * nodes + v).reshape({-1});
  const auto pos = torch::searchsorted(keys, wanted).clamp_max(std::max<int64_t>(0, keys.size(0) - 1));
  if (keys.size(0) == 0) return torch::zeros(u.sizes(), u.options().dtype(torch::kBool));
  return keys.index_select(0, pos).eq(wanted).reshape(u.sizes());
}

torch::Tensor GraphStructure::propagated(const torch::Tensor& x) const {
  // Inference tensors keep no version to check, and an input that needs its gradient is not constant.
  if (x.is_inference() || x.requires_grad()) return nn::symmetric_spmm(adjacency, x);
  const auto held = propagated_.input.lock();
  if (held.get() == x.unsafeGetTensorImpl() && propagated_.version == static_cast<int64_t>(x._version()) &&
      propagated_.value.defined())
    return propagated_.value;
  propagated_.value = nn::sparse_dense_product(adjacency, x);
  propagated_.input = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(x.getIntrusivePtr());
  propagated_.version = static_cast<int64_t>(x._version());
  return propagated_.value;
}

std::pair<torch::Tensor, torch::Tensor> GraphStructure::edges_from(const torch::Tensor& targets) const {
  // From the row offsets, in O(targets' edges): a scan of every edge would cost a full pass over E
  // per training step of a few targets.
  const auto long_options = symmetric.options();
  const auto first = row_start.index_select(0, targets);
  const auto counts = row_start.index_select(0, targets + 1) - first;
  const auto owner = torch::repeat_interleave(counts);
  const auto start_of_owner = counts.cumsum(0) - counts;
  const auto rank_in_owner = torch::arange(owner.size(0), long_options) - start_of_owner.index_select(0, owner);
  return {first.index_select(0, owner) + rank_in_owner, owner};
}

const GraphStructure& GraphStructureCache::of(const Batch& batch) {
  const Key key{batch.edge_index.data_ptr(), batch.edge_index.size(1), batch.x.size(0)};
  if (key == key_) return structure_;
  const int64_t n = batch.x.size(0);
  const auto device = batch.x.device();
  structure_ = GraphStructure{};
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
