#pragma once
// Exact nearest neighbours whose answers do not depend on the BLAS kernel.
//
// A GEMM computes every squared distance as x^2 + y^2 - 2xy: fast, but its rounding changes with the CPU's
// kernel (OpenBLAS's SkylakeX, Haswell or Zen), the thread count and the shape of the block. So the GEMM only
// shortlists: it keeps every row whose GEMM distance lies within the worst-case rounding error of both
// computations (twice over) of the least GEMM distance, which provably holds the answer. Each shortlisted
// row's distance is then computed again by squared_distance_fixed_order, a sum in a fixed order whose bits
// depend on the two rows alone, and the answer is the row with the least such distance (ties: the lower row).
// The full search, the cell search (cell_search.hpp) and a bank sharded over processes therefore give the
// same rows and the same distances, to the bit, on every CPU and at every thread count.
#include <ATen/Tensor.h>

#include <cstdint>
#include <vector>

namespace adx {

/// |x - y|^2 of two float32 rows of `dims` values, in 16 running sums combined in a fixed order: the
/// compiler vectorises it, and unlike a library reduction its rounding depends on the two rows alone, not on
/// where they lie in memory, the CPU's kernels or the thread count.
float squared_distance_fixed_order(const float* a, const float* b, int64_t dims);

/// Bound on |computed - exact| / (|x| + |y|)^2 for a float32 squared distance over `dims` terms, by GEMM or
/// by squared_distance_fixed_order: gamma_{dims+8} = (dims + 8) u / (1 - (dims + 8) u), u = 2^-24, doubled
/// to cover the float64 arithmetic of the bounds that use it.
double squared_distance_rounding(int64_t dims);

/// Distances nearest_neighbours computes per block by default.
constexpr int64_t kNearestNeighbourBlock = int64_t{1} << 24;

/// What nearest_neighbours asks of its inputs, as ShapeErrors: Q x D queries, a non-empty M x D bank, and
/// leave-one-out groups, when both are given, one per query and one per bank row. Returns whether they are.
bool check_nearest_neighbour_inputs(const at::Tensor& queries, const at::Tensor& bank, const at::Tensor& query_groups,
                                    const at::Tensor& bank_groups);

/// Distance of each query row to its nearest bank row, and that row's index (ties: the lower row), exact in
/// the sense above: GEMM shortlists in blocks of at most `block_elements` distances, the fixed-order kernel
/// decides. With `query_groups` (Q) and `bank_groups` (M), integer labels such as the source image, a query
/// never matches a bank row of its own group (leave-one-out); a query whose group holds the whole bank gets
/// distance infinity and row 0. Either output may be nullptr when it is not wanted. Outputs are on the
/// queries' device.
void nearest_neighbours(const at::Tensor& queries, const at::Tensor& bank, at::Tensor* distances,
                        at::Tensor* indices, int64_t block_elements = kNearestNeighbourBlock,
                        const at::Tensor& query_groups = {}, const at::Tensor& bank_groups = {});

/// The `k` bank rows nearest each query (Q x k, nearest first, ties to the lower row) and their distances,
/// decided by the fixed-order kernel as nearest_neighbours is. Rows of the query's own group are left out;
/// where fewer than k remain, the rest are the group's rows in row order, at distance infinity. k must not
/// exceed the bank's rows.
void k_nearest_neighbours(const at::Tensor& queries, const at::Tensor& bank, int64_t k, at::Tensor* distances,
                          at::Tensor* indices, const at::Tensor& query_groups = {},
                          const at::Tensor& bank_groups = {});

/// |a_i - b_i| for each row pair of two P x D float32 matrices, by the fixed-order kernel; on a's device.
at::Tensor row_pair_distances(const at::Tensor& a, const at::Tensor& b);

/// The shortlist-and-decide step that nearest_neighbours and the cell search share. GEMM blocks of squared
/// distances are offered as they are computed; each shortlists the rows that may still be a query's answer,
/// whose distances the fixed-order kernel computes, and the least of those is kept.
class ExactNearest {
 public:
  /// `queries` (Q x D) and `bank` (M x D), float32 on one device, with the queries' squared norms `query_sq`
  /// (Q, as the GEMM's x^2 term computes them) and the largest squared norm of a bank row `bank_sq_max`
  /// (either may carry float32 rounding: the slack allows for it).
  ExactNearest(const at::Tensor& queries, const at::Tensor& bank, const at::Tensor& query_sq, double bank_sq_max);
  /// GEMM squared distances `d2` (n x w, +infinity where a row is excluded) of the queries `query_rows`
  /// (n, int64 on the CPU) to the bank rows [first_row, first_row + w).
  void offer(const at::Tensor& query_rows, const at::Tensor& d2, int64_t first_row);
  /// The least GEMM distance offered for `query` plus the shortlist's slack: a bank row whose GEMM distance
  /// (or a lower bound on it) exceeds this cannot be the query's answer.
  double reach(int64_t query) const;
  /// Each query's distance (the square root of its least fixed-order squared distance) and row, on the
  /// queries' device; infinity and row 0 for a query no finite distance was offered for.
  void finish(at::Tensor* distances, at::Tensor* indices) const;

 private:
  at::Tensor queries_, bank_;
  std::vector<double> slack_;
  std::vector<float> gemm_best_, best_;
  std::vector<int64_t> best_row_;
};

}  // namespace adx
