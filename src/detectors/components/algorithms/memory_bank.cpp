#include <adx/detectors/components/algorithms/exact_search.hpp>
#include <adx/detectors/components/algorithms/memory_bank.hpp>

#include <torch/torch.h>

#include <limits>

namespace adx {

at::Tensor MemoryBank::assemble(const at::Tensor& mine, const at::Tensor& chosen, int64_t first_row,
                                ProcessGroup* group, bool shard, const BankSearch& search) {
  clear();
  auto rows = chosen.to(mine.device());
  if (group == nullptr) {
    rows_ = mine.index_select(0, rows).contiguous();
  } else {
    // The chosen rows this rank holds, and their places in the bank.
    const auto local = (rows >= first_row) & (rows < first_row + mine.size(0));
    const auto places = torch::nonzero(local).reshape({-1});
    const auto held = mine.index_select(0, rows.index({local}) - first_row);
    if (shard) {  // each rank keeps them: the bank never meets in one place
      group_ = group;
      places_ = places;
      total_rows_ = rows.size(0);
      rows = rows.index({local});
      rows_ = held.contiguous();
    } else {  // every rank gathers the whole bank
      const auto gathered = group->all_gather(held);
      const auto gathered_places = group->all_gather(places.to(torch::kCPU)).to(mine.device());
      rows_ = torch::empty({rows.size(0), mine.size(1)}, mine.options());
      rows_.index_copy_(0, gathered_places, gathered.to(mine.device()));
    }
  }
  index_rows(search, &rows);
  return rows;
}

void MemoryBank::assign(const at::Tensor& rows, const BankSearch& search) {
  clear();
  rows_ = rows.contiguous();
  index_rows(search);
}

void MemoryBank::clear() {
  rows_ = at::Tensor();
  index_ = BankIndex();
  group_ = nullptr;
  places_ = at::Tensor();
  total_rows_ = 0;
}

void MemoryBank::shard_over(ProcessGroup* group) {
  if (group == nullptr) return;
  ADX_CHECK_AS(NotFittedError, defined(), "the memory bank is empty; fit or load it before sharding it");
  ADX_CHECK_AS(ValueError, !sharded(), "the memory bank is already sharded");
  const int64_t rows = rows_.size(0), rank = group->rank();
  const auto [least, largest] = range_over_ranks(group, rows);
  ADX_CHECK_AS(ValueError, least == rows && largest == rows,
               "rank {}: sharding needs the same memory bank on every rank, but the banks hold between {} and {} rows",
               rank, least, largest);
  const auto [begin, end] = share_of(group, rows);
  rows_ = rows_.slice(0, begin, end).clone();
  group_ = group;
  places_ = torch::arange(begin, end, torch::TensorOptions(torch::kLong).device(rows_.device()));
  total_rows_ = rows;
  index_rows(search_);
}

void MemoryBank::set_search(const BankSearch& search) {
  check_options(search);
  // The same search keeps its index (and exact search its grouping of the rows).
  if (search == search_ && index_.built()) return;
  if (defined())
    index_rows(search);
  else
    search_ = search;
}

void MemoryBank::index_rows(const BankSearch& search, at::Tensor* order_along) {
  search_ = search;
  if (rows_.size(0) == 0) {  // a shard that drew no row: nothing to index
    index_ = BankIndex();
    return;
  }
  index_.build(rows_, search);
  if (!index_.order().defined()) return;
  rows_ = index_.bank();  // shared with the index: one copy of the bank
  if (order_along) *order_along = order_along->index_select(0, index_.order().to(order_along->device()));
  if (sharded()) places_ = places_.index_select(0, index_.order().to(places_.device()));
}

MemoryBank::Nearest MemoryBank::nearest(const at::Tensor& queries, const at::Tensor& query_groups,
                                        const at::Tensor& bank_groups) const {
  Nearest found;
  const int64_t n = queries.size(0);
  if (rows_.size(0) == 0) {  // a shard that drew no row
    found.local_distance = torch::full({n}, std::numeric_limits<float>::infinity(), queries.options());
    found.local_row = torch::zeros({n}, queries.options().dtype(torch::kLong));
  } else if (!query_groups.defined() || index_.kind() == SearchKind::Exact) {
    // Exact search takes the leave-one-out groups; faiss cannot, so with groups every row is searched.
    index_.search(queries, &found.local_distance, &found.local_row, query_groups, bank_groups);
  } else {
    nearest_neighbours(queries, rows_, &found.local_distance, &found.local_row, kNearestNeighbourBlock, query_groups,
                       bank_groups);
  }
  found.distance = found.local_distance;
  if (sharded()) {
    found.distance = found.local_distance.clone();
    group_->all_reduce_min(found.distance);
  }
  return found;
}

at::Tensor MemoryBank::nearest_rows(const Nearest& nearest) const {
  if (!sharded()) return rows_.index_select(0, nearest.local_row);
  const int64_t n = nearest.local_row.size(0);
  const auto none = std::numeric_limits<int64_t>::max();
  auto place = torch::full({n}, none, nearest.local_row.options());
  auto holds = torch::zeros({n}, nearest.local_row.options().dtype(torch::kBool));
  if (rows_.size(0) > 0) {
    holds = nearest.local_distance == nearest.distance;
    place = torch::where(holds, places_.index_select(0, nearest.local_row), place);
  }
  auto chosen = place.clone();
  group_->all_reduce_min(chosen);
  auto found = torch::zeros({n, rows_.size(1)}, rows_.options());
  if (rows_.size(0) > 0)
    found = torch::where((holds & (place == chosen)).unsqueeze(1), rows_.index_select(0, nearest.local_row), found);
  group_->all_reduce_sum(found);  // one holder per query, zeros elsewhere
  return found;
}

at::Tensor MemoryBank::distances_to_neighbours(const at::Tensor& anchors, const at::Tensor& points, int64_t k,
                                               const at::Tensor& anchor_groups, const at::Tensor& bank_groups) const {
  const int64_t n = anchors.size(0), local_k = std::min(k, rows_.size(0));
  at::Tensor to_anchor, neighbours, to_points;
  if (local_k > 0) {
    k_nearest_neighbours(anchors, rows_, local_k, &to_anchor, &neighbours, anchor_groups, bank_groups);  // n x k
    const auto neighbour_rows = rows_.index_select(0, neighbours.flatten());
    to_points = row_pair_distances(points.repeat_interleave(local_k, 0), neighbour_rows).reshape({n, local_k});
  }
  if (!sharded()) return to_points;
  // Every shard's candidates (distance to the anchor, row of the whole bank, distance to the point), exactly
  // in float64, candidate-major so that the gather stacks them.
  auto candidates = torch::zeros({0, n, 3}, anchors.options().dtype(torch::kFloat64));
  if (local_k > 0)
    candidates = torch::stack({to_anchor.to(torch::kFloat64),
                               places_.index_select(0, neighbours.flatten()).reshape({n, local_k}).to(torch::kFloat64),
                               to_points.to(torch::kFloat64)},
                              2)
                     .transpose(0, 1)
                     .contiguous();
  const auto all = group_->all_gather(candidates).transpose(0, 1);  // n x candidates x 3
  // Nearest first, ties to the lower row: sort by row, then stably by distance.
  const auto by_row = std::get<1>(all.select(2, 1).sort(c10::optional<bool>(true), 1));
  const auto distance_by_row = all.select(2, 0).gather(1, by_row);
  const auto order = by_row.gather(1, std::get<1>(distance_by_row.sort(c10::optional<bool>(true), 1)));
  const auto kept = order.slice(1, 0, std::min(k, order.size(1)));
  return all.select(2, 2).gather(1, kept).to(anchors.scalar_type());
}

void MemoryBank::save(TensorMap& state, const std::string& prefix) const {
  if (!sharded()) {
    state[prefix + "memory_bank"] = rows_.detach().cpu();
    const auto index = index_.serialize();
    if (index.defined()) state[prefix + "index"] = index;
    return;
  }
  // The shards meet on rank 0 in the whole bank's order, and rank 0 indexes them as one process does.
  const auto places = group_->gather(places_.cpu());
  const auto rows = group_->gather(rows_.detach().cpu());
  if (group_->rank() != 0) return;  // only rank 0 writes
  ADX_CHECK_AS(ValueError, places.size(0) == total_rows_,
               "the shards hold {} rows of a bank of {}; was every rank's bank sharded from the same one?",
               places.size(0), total_rows_);
  auto whole = torch::empty({total_rows_, rows.size(1)}, rows.options());
  whole.index_copy_(0, places, rows);
  BankIndex index;
  index.build(whole, search_);
  state[prefix + "memory_bank"] = index.order().defined() ? index.bank() : whole;
  const auto record = index.serialize();
  if (record.defined()) state[prefix + "index"] = record;
}

void MemoryBank::load(const TensorMap& state, const std::string& prefix, const BankSearch& search,
                      const c10::Device& device) {
  clear();
  auto bank = state.find(prefix + "memory_bank");
  ADX_CHECK_AS(IoError, bank != state.end() && bank->second.dim() == 2, "model file lacks the memory bank '{}'",
               prefix + "memory_bank");
  rows_ = bank->second.to(device, torch::kFloat32).contiguous();
  search_ = search;
  // An index is restored as saved (HNSW's graph depends on insertion order; exact search's bank is saved
  // grouped by cell); files without one build it from the bank.
  auto index = state.find(prefix + "index");
  if (index != state.end())
    index_.deserialize(index->second, rows_, search);
  else
    index_rows(search);
}

}  // namespace adx
