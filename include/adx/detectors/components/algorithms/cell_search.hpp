#pragma once
// Exact nearest-neighbour search that skips most of a memory bank. The bank's
// rows are grouped into k-means cells, stored contiguously. A query searches its
// nearest cell first; any other cell is searched only when a lower bound on the
// distance to every row in it (the ball around the cell's centroid, and the
// half-space that separates the cell from the query's nearest one) could still
// reach the shortlist of exact_search.hpp, less a margin that covers float32
// rounding. The searched cells' GEMM distances go through that shortlist, and
// its fixed-order kernel decides, so the answer is the full search's: the same
// row and the same distance, on every CPU, at a fraction of the arithmetic on
// banks whose queries lie near them, as a memory bank's normal patches do.
#include <adx/detectors/components/algorithms/exact_search.hpp>

#include <ATen/Tensor.h>

#include <cstdint>

namespace adx {

/// A bank's cells and what the bounds need of them.
struct BankCells {
  at::Tensor offsets;             ///< C + 1, int64 on the CPU: cell c holds rows [offsets[c], offsets[c + 1])
  at::Tensor centroids;           ///< C x D, float64: each cell's mean
  at::Tensor centroid_distances;  ///< C x C, float64
  at::Tensor radius;              ///< C, float64: the distance of the cell's farthest row from its centroid
  /// C, float64: how much closer (squared) a row of the cell is to another centroid than to its own, at most;
  /// 0 when k-means has converged, kept so that the half-space bound holds for any grouping.
  at::Tensor slack;
  at::Tensor max_norm;            ///< C, float64: the largest row norm, which sets the rounding margin
  at::Tensor bank_sq;             ///< M, float32: squared row norms, the GEMM's y^2 term
  int64_t count() const { return offsets.defined() ? offsets.numel() - 1 : 0; }
  /// Bytes held beside the bank.
  int64_t memory_bytes() const;
};

/// Groups the rows of `bank` (M x D) into `cells` k-means cells (0 = round(sqrt(M))) by `iterations` Lloyd
/// steps from evenly spaced rows, so the grouping depends on the bank alone. Returns the permutation that puts
/// the rows in cell order; `offsets` receives the cell boundaries in that order (empty cells dropped).
at::Tensor partition_bank(const at::Tensor& bank, int64_t cells, at::Tensor* offsets, int64_t iterations = 10);

/// The bounds' inputs for a bank whose rows are grouped by cell at `offsets` (ValueError unless offsets
/// run from 0 to M without decreasing).
BankCells describe_cells(const at::Tensor& bank, const at::Tensor& offsets);

/// nearest_neighbours over a bank grouped into `cells`: the same rows and distances (ties go to the lower
/// row), the same leave-one-out groups. A bank on another device than the CPU is searched in full, since
/// the pruning's bookkeeping would synchronise with the host for every cell. `distances_computed`, when
/// given, receives how many query-row distances were computed (queries x rows for a full search).
void nearest_neighbours_in_cells(const at::Tensor& queries, const at::Tensor& bank, const BankCells& cells,
                                 at::Tensor* distances, at::Tensor* indices, const at::Tensor& query_groups = {},
                                 const at::Tensor& bank_groups = {}, int64_t* distances_computed = nullptr);

}  // namespace adx
