#pragma once
// A memory bank: rows of features and the index that searches them (bank_index.hpp), held whole by this
// process or split over the ranks of a process group, as faiss's IndexShards splits an index. Sharded,
// each rank keeps a share of the rows; every search is then collective (each rank passes the same
// queries and gets the answers the whole bank gives: the least distance over the shards, ties to the
// lower row of the whole bank), and saving gathers the shards on rank 0 into the record one process
// writes. A detector asks the same questions either way, so none branches on the process group.
#include <adx/core/distributed.hpp>
#include <adx/detectors/components/algorithms/bank_index.hpp>
#include <adx/io/model_file.hpp>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace adx {

class MemoryBank {
 public:
  /// Keeps rows `chosen` (int64 indices into the whole row matrix, the same on every rank) of the whole row
  /// matrix, of which this process holds `mine`: rows first_row .. first_row + mine.size(0). Alone (`group`
  /// null) `mine` is the whole matrix. Under `group` every rank ends with the whole bank, or with `shard` only
  /// the chosen rows it holds (the bank never meets in one place). The rows are indexed with `search`.
  /// Returns, for each of this process's bank rows in bank order (exact search with cells groups rows by
  /// cell), its index into the whole row matrix.
  at::Tensor assemble(const at::Tensor& mine, const at::Tensor& chosen, int64_t first_row, ProcessGroup* group,
                      bool shard, const BankSearch& search);
  /// A whole bank of `rows` in this process, indexed with `search`.
  void assign(const at::Tensor& rows, const BankSearch& search);
  /// Splits a whole bank over `group` (collective: every rank holds the same bank, as after loading one
  /// file): each rank keeps a contiguous slice of the rows and indexes it. No group: the bank stays whole.
  void shard_over(ProcessGroup* group);
  /// Indexes the rows with another search (exact search with cells may reorder the rows, not change them).
  void set_search(const BankSearch& search);
  /// Forgets the rows.
  void clear();

  bool defined() const { return rows_.defined(); }
  /// This process's rows: the whole bank, or its shard.
  const at::Tensor& rows() const { return rows_; }
  /// Rows of the whole bank.
  int64_t total_rows() const { return sharded() ? total_rows_ : (rows_.defined() ? rows_.size(0) : 0); }
  bool sharded() const { return group_ != nullptr; }
  /// The process group the shards live in (nullptr when whole).
  ProcessGroup* group() const { return group_; }
  /// Each of this shard's rows' place in the whole bank (int64; undefined when whole).
  const at::Tensor& places() const { return places_; }
  const BankIndex& index() const { return index_; }

  /// The nearest bank row to each query row (Q x D).
  struct Nearest {
    at::Tensor distance;        ///< Q: the least over the whole bank
    at::Tensor local_distance;  ///< Q: this process's own nearest distance (infinity for an empty shard)
    at::Tensor local_row;       ///< Q: that row, into rows()
  };
  /// Collective when sharded. With `query_groups` (Q) and `bank_groups` (one per row of rows()), a query never
  /// matches a row of its own group (leave-one-out); only exact search takes groups, so with them a faiss
  /// index is passed by and every row searched. Without groups the index searches.
  Nearest nearest(const at::Tensor& queries, const at::Tensor& query_groups = {},
                  const at::Tensor& bank_groups = {}) const;
  /// The features of each query's nearest bank row, from the shard that holds it (ties: the lower row of the
  /// whole bank). Collective when sharded.
  at::Tensor nearest_rows(const Nearest& nearest) const;
  /// Distances of each row of `points` (N x D) to the `k` bank rows nearest its row of `anchors` (N x D),
  /// nearest to the anchor first; groups leave rows out as in nearest(). Sharded, the k are the nearest among
  /// every shard's k nearest (ties to the lower row of the whole bank), and every distance comes from the
  /// fixed-order kernel (exact_search.hpp), so a shard's candidates carry the bits the whole bank's search
  /// gives them. Collective when sharded.
  at::Tensor distances_to_neighbours(const at::Tensor& anchors, const at::Tensor& points, int64_t k,
                                     const at::Tensor& anchor_groups = {}, const at::Tensor& bank_groups = {}) const;

  /// Writes the bank (`prefix` + "memory_bank") and its index record (`prefix` + "index"). Sharded, the call is
  /// collective: the shards meet on rank 0 in the whole bank's order and rank 0 writes what one process
  /// would; the other ranks write nothing.
  void save(TensorMap& state, const std::string& prefix) const;
  /// Reads what save() wrote onto `device` and restores the index as saved (a record without one builds it
  /// from the bank with `search`). Missing or malformed entries are IoErrors.
  void load(const TensorMap& state, const std::string& prefix, const BankSearch& search, const c10::Device& device);

 private:
  /// Indexes rows_ and keeps them in the index's row order, permuting `order_along` with them when given.
  void index_rows(const BankSearch& search, at::Tensor* order_along = nullptr);

  at::Tensor rows_;
  BankIndex index_;
  BankSearch search_;
  ProcessGroup* group_ = nullptr;
  at::Tensor places_;
  int64_t total_rows_ = 0;
};

}  // namespace adx
