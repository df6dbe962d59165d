#pragma once
// Memory-bank algorithms shared by the patch detectors: sparse random
// projection and greedy k-center coreset selection (exact nearest neighbours
// are in exact_search.hpp). Every step works in chunks, so a bank of 200k x 1536 features
// never needs a 200k x 200k matrix.
#include <adx/detectors/components/algorithms/exact_search.hpp>

#include <ATen/Tensor.h>

#include <cstdint>
#include <vector>

namespace adx {

/// Johnson-Lindenstrauss dimension for `samples` points at distortion `eps`
/// (scikit-learn's johnson_lindenstrauss_min_dim): 4 ln(n) / (eps^2 / 2 - eps^3 / 3).
int64_t johnson_lindenstrauss_dim(int64_t samples, double eps);

/// A sparse random projection matrix (features x components, stored dense), as scikit-learn's
/// SparseRandomProjection with density 1 / sqrt(features): entries +-sqrt(1 / density) / sqrt(components)
/// with probability density / 2 each, 0 otherwise. Drawn from the global generator.
at::Tensor sparse_random_projection(int64_t features, int64_t components);

struct Coreset {
  std::vector<int64_t> indices;    ///< selected rows, in selection order
  double coverage_radius = 0.0;    ///< max over all rows of the distance to the nearest selected row
};

/// Greedy k-center selection (Sener & Savarese 2018, as PatchCore uses it): start from a random row, then
/// repeatedly add the row farthest from everything selected. Exact; rows whose nearest centre is provably
/// closer than the new centre (triangle inequality) are skipped, which makes it far cheaper than
/// recomputing every distance. `points` is N x D float32 on the CPU.
Coreset greedy_coreset(const at::Tensor& points, int64_t size, int64_t start);

class ProcessGroup;

/// greedy_coreset over rows spread across the ranks of `group`: each rank passes its own rows (its
/// training images' patches), and the whole matrix is the ranks' rows in rank order; `start` is a row
/// of the whole matrix. Each step finds the farthest row in one all-reduce and its owner broadcasts it,
/// so every rank returns the same indices (into the whole matrix) and radius as greedy_coreset on the
/// whole matrix on one machine, without any rank holding more than its rows and the chosen centres.
Coreset greedy_coreset_distributed(const at::Tensor& local_points, int64_t size, int64_t start, ProcessGroup& group);

/// greedy_coreset_distributed over `group`'s ranks, or greedy_coreset when `group` is nullptr (one process).
Coreset greedy_coreset_over(ProcessGroup* group, const at::Tensor& local_points, int64_t size, int64_t start);

}  // namespace adx
