#pragma once
// Nearest-neighbour search over a memory bank (PatchCore's), exact or approximate:
//   exact  adx's GEMM search over the bank grouped into k-means cells, skipping the cells that
//          provably cannot hold the answer (cell_search.hpp); the same answers as a full search
//   flat   faiss IndexFlatL2: exact as well
//   ivf    faiss IVF-Flat: the bank split into `ivf_lists` k-means cells, `ivf_probes` searched
//   hnsw   faiss HNSW-Flat: a navigable small-world graph, `hnsw_m` links, breadth `hnsw_ef_search`
// each optionally over an 8-bit scalar-quantised bank (compression = sq8, a quarter of the memory).
// faiss is what the PatchCore authors' code searches with. The index serialises into the model
// file, so save -> load gives identical scores; faiss's errors become adx::Errors.
#include <adx/core/options.hpp>
#include <adx/detectors/components/algorithms/cell_search.hpp>

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace adx {

/// How the nearest memory row is found: adx's exact search, or a faiss index (flat is exact, ivf and hnsw
/// approximate).
enum class SearchKind { Exact, Flat, Ivf, Hnsw };
ADX_ENUM_NAMES(SearchKind, {SearchKind::Exact, "exact"}, {SearchKind::Flat, "flat"}, {SearchKind::Ivf, "ivf"},
               {SearchKind::Hnsw, "hnsw"});
/// How a faiss index stores the bank: float32, or 8-bit scalar quantisation (a quarter the memory).
enum class BankCompression { None, Sq8 };
ADX_ENUM_NAMES(BankCompression, {BankCompression::None, "none"}, {BankCompression::Sq8, "sq8"});

/// How a memory bank is searched; PatchCore's `search.*` options.
struct BankSearch {
  ADX_OPTIONS_STRUCT;
  /// exact (adx's GEMM search, skipping k-means cells that cannot hold the answer), flat (faiss, exact), ivf
  /// or hnsw (faiss, approximate).
  ADX_ARG(SearchKind, kind) = SearchKind::Exact;
  /// exact: k-means cells of the bank (0 = round(sqrt(rows)) from 2^20 bank values up, none below; 1 = search
  /// the whole bank). Same answers either way.
  ADX_ARG(int64_t, exact_cells) = 0;
  /// Bank storage in a faiss index: none (float32) or sq8 (8-bit scalar quantisation, a quarter the memory).
  ADX_ARG(BankCompression, compression) = BankCompression::None;
  /// ivf: k-means cells (0 = 4 sqrt(bank rows), at most rows / 39).
  ADX_ARG(int64_t, ivf_lists) = 0;
  /// ivf: cells searched per query.
  ADX_ARG(int64_t, ivf_probes) = 8;
  /// hnsw: links per node (M).
  ADX_ARG(int64_t, hnsw_m) = 32;
  /// hnsw: search breadth (efSearch).
  ADX_ARG(int64_t, hnsw_ef_search) = 64;

 public:
  /// Refuses sq8 on exact search and out-of-range parameters (see check_options).
  void check(const std::string& prefix) const;
  bool operator==(const BankSearch& o) const { return to_option_map(*this) == to_option_map(o); }
  bool operator!=(const BankSearch& o) const { return !(*this == o); }
};

class BankIndex {
 public:
  BankIndex();
  ~BankIndex();
  BankIndex(BankIndex&&) noexcept;
  BankIndex& operator=(BankIndex&&) noexcept;

  /// Indexes `bank` (M x D float32; any device, faiss works on a CPU copy). Exact search with cells keeps
  /// the rows grouped by cell: bank() is then the bank in that order, and order() says which row of `bank`
  /// each of its rows is. Answers are rows of bank().
  void build(const at::Tensor& bank, const BankSearch& search);
  /// Euclidean distance of every query row (N x D) to its nearest bank row, and that row's index;
  /// on the queries' device. Exact search also takes leave-one-out groups, as nearest_neighbours does.
  void search(const at::Tensor& queries, at::Tensor* distances, at::Tensor* indices,
              const at::Tensor& query_groups = {}, const at::Tensor& bank_groups = {}) const;
  /// Exact search: the bank it searches, in its row order (undefined for faiss, which holds a copy).
  const at::Tensor& bank() const { return bank_; }
  /// The row of the bank given to build() for each row of bank(); undefined when the order is unchanged.
  const at::Tensor& order() const { return order_; }
  /// Exact search: the cells (count() 0 or 1 when the bank is searched whole).
  const BankCells& cells() const { return cells_; }
  /// What the index searches with: the kind asked for, or flat where an approximate index could not be
  /// built (see note()).
  SearchKind kind() const { return kind_; }
  /// Why the kind differs from the one asked for (empty otherwise).
  const std::string& note() const { return note_; }
  bool built() const { return rows_ > 0; }
  /// Bytes the index holds beside the bank (for exact, the cells' centroids and bounds; exact searches the
  /// bank tensor itself).
  int64_t memory_bytes() const;
  /// For the model file: the faiss index as bytes (uint8), exact search's cell offsets (int64), or an
  /// undefined tensor for a bank searched whole.
  at::Tensor serialize() const;
  /// Restores what serialize() wrote, for `bank` as saved (in the index's order); a mismatch is an IoError.
  void deserialize(const at::Tensor& record, const at::Tensor& bank, const BankSearch& search);

 private:
  struct Faiss;
  std::unique_ptr<Faiss> faiss_;
  at::Tensor bank_;   ///< exact: the bank itself, grouped by cell
  at::Tensor order_;  ///< exact with cells: the given bank's row for each row of bank_
  BankCells cells_;
  SearchKind kind_ = SearchKind::Exact;
  std::string note_;
  int64_t rows_ = 0, dims_ = 0;
};

}  // namespace adx
