#pragma once
// Nearest-neighbour search over a memory bank (PatchCore's), exact or approximate:
//   exact  adx's blocked GEMM search (coreset.hpp)
//   flat   faiss IndexFlatL2: exact as well
//   ivf    faiss IVF-Flat: the bank split into `ivf_lists` k-means cells, `ivf_probes` searched
//   hnsw   faiss HNSW-Flat: a navigable small-world graph, `hnsw_m` links, breadth `hnsw_ef_search`
// each optionally over an 8-bit scalar-quantised bank (compression = sq8, a quarter of the memory).
// faiss is what the PatchCore authors' code searches with. The index serialises into the model
// file, so save -> load gives identical scores; faiss's errors become adx::Errors.
#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace adx {

struct BankSearch {
  std::string kind = "exact";        ///< exact, flat, ivf, hnsw
  std::string compression = "none";  ///< none or sq8 (faiss kinds)
  int64_t ivf_lists = 0;             ///< 0 = 4 sqrt(bank rows), at most rows / 39
  int64_t ivf_probes = 8;
  int64_t hnsw_m = 32;
  int64_t hnsw_ef_search = 64;
};

/// Refuses unknown kinds and out-of-range parameters (OptionError naming `prefix` + field).
void check_bank_search(const BankSearch& search, const std::string& prefix = "");

class BankIndex {
 public:
  BankIndex();
  ~BankIndex();
  BankIndex(BankIndex&&) noexcept;
  BankIndex& operator=(BankIndex&&) noexcept;

  /// Indexes `bank` (M x D float32; any device, faiss works on a CPU copy).
  void build(const at::Tensor& bank, const BankSearch& search);
  /// Euclidean distance of every query row (N x D) to its nearest bank row, and that row's index;
  /// on the queries' device.
  void search(const at::Tensor& queries, at::Tensor* distances, at::Tensor* indices) const;
  /// What the index searches with: the kind asked for, or flat where an approximate index could not be
  /// built (see note()).
  const std::string& kind() const { return kind_; }
  /// Why the kind differs from the one asked for (empty otherwise).
  const std::string& note() const { return note_; }
  bool built() const { return rows_ > 0; }
  /// Bytes the index holds for the bank (0 for exact, which searches the bank tensor itself).
  int64_t memory_bytes() const;
  /// The faiss index as bytes (empty for exact), for the model file.
  at::Tensor serialize() const;
  /// Restores what serialize() wrote for a bank of `rows` x `dims`; a mismatch is an IoError.
  void deserialize(const at::Tensor& bytes, const BankSearch& search, int64_t rows, int64_t dims);

 private:
  struct Faiss;
  std::unique_ptr<Faiss> faiss_;
  at::Tensor bank_;  ///< exact: the bank itself
  std::string kind_ = "exact", note_;
  int64_t rows_ = 0, dims_ = 0;
};

}  // namespace adx
