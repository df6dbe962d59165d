#include <adx/core/error.hpp>
#include <adx/data/graphs.hpp>

#include <torch/types.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace adx::graph {
namespace {

const auto kLong = torch::TensorOptions().dtype(torch::kLong);

// Unique (source, target) keys of both directions without self-loops, sorted, with the
// largest weight of duplicates.
std::pair<at::Tensor, at::Tensor> both_directions(const at::Tensor& edge_index, const at::Tensor& edge_weight,
                                                  int64_t n) {
  const auto e = edge_index.to(torch::kLong);
  auto src = torch::cat({e[0], e[1]}), dst = torch::cat({e[1], e[0]});
  at::Tensor w;
  if (edge_weight.defined()) w = torch::cat({edge_weight, edge_weight}).to(torch::kFloat32);
  const auto keep = (src != dst).nonzero().reshape({-1});
  src = src.index_select(0, keep);
  dst = dst.index_select(0, keep);
  // Sorting and dropping repeats is much faster than a hash-based unique on millions of keys.
  const auto [sorted, order] = (src * n + dst).sort();
  const auto [unique, inverse, counts] = torch::unique_consecutive(sorted, /*return_inverse=*/true);
  at::Tensor weights;
  if (w.defined())
    weights = torch::zeros({unique.size(0)}, w.options())
                  .scatter_reduce(0, inverse, w.index_select(0, keep).index_select(0, order), "amax",
                                  /*include_self=*/false);
  return {torch::stack({torch::div(unique, n, "floor"), torch::remainder(unique, n)}), weights};
}

}  // namespace

at::Tensor symmetrize(const at::Tensor& edge_index, int64_t num_nodes) {
  return both_directions(edge_index, {}, num_nodes).first;
}

at::Tensor degrees(const at::Tensor& edge_index, int64_t num_nodes) {
  return torch::bincount(symmetrize(edge_index, num_nodes)[0], {}, num_nodes);
}

NeighbourLists neighbour_lists(const at::Tensor& edge_index, int64_t num_nodes) {
  NeighbourLists lists;
  lists.symmetric = symmetrize(edge_index, num_nodes);
  const auto counts = torch::bincount(lists.symmetric[0], {}, num_nodes);
  lists.row_start = torch::cat({torch::zeros({1}, counts.options()), counts.cumsum(0)});
  return lists;
}

at::Tensor normalized_adjacency(const at::Tensor& edge_index, const at::Tensor& edge_weight, int64_t n) {
  auto [edges, weights] = both_directions(edge_index, edge_weight, n);
  const auto device = edge_index.device();
  if (!weights.defined()) weights = torch::ones({edges.size(1)}, torch::TensorOptions().device(device));
  const auto self = torch::arange(n, kLong.device(device));
  const auto indices = torch::cat({edges, torch::stack({self, self})}, 1);
  const auto values = torch::cat({weights, torch::ones({n}, weights.options())});
  const auto degree = torch::zeros({n}, values.options()).index_add_(0, indices[0], values);
  const auto inv_sqrt = degree.rsqrt();
  const auto norm = values * inv_sqrt.index_select(0, indices[0]) * inv_sqrt.index_select(0, indices[1]);
  return torch::sparse_coo_tensor(indices, norm, {n, n}).coalesce();
}

at::Tensor structural_features(const at::Tensor& edge_index, int64_t n) {
  const auto lists = neighbour_lists(edge_index.cpu(), n);
  const auto& sym = lists.symmetric;
  const int64_t e = sym.size(1);
  const auto row_start = lists.row_start.contiguous();
  const auto degree = row_start.slice(0, 1) - row_start.slice(0, 0, -1);
  const int64_t* rs = row_start.data_ptr<int64_t>();
  const auto cols = sym[1].contiguous();
  const int64_t* col = cols.data_ptr<int64_t>();
  const auto src_t = sym[0].contiguous();
  const int64_t* src = src_t.data_ptr<int64_t>();
  // Triangles: for every edge u < v, the common neighbours of u and v (sorted lists).
  std::vector<int64_t> triangles(static_cast<size_t>(n), 0);
  at::parallel_for(0, e, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t u = src[k], v = col[k];
      if (u >= v) continue;
      int64_t a = rs[u], b = rs[v], common = 0;
      while (a < rs[u + 1] && b < rs[v + 1]) {
        if (col[a] < col[b]) ++a;
        else if (col[a] > col[b]) ++b;
        else ++common, ++a, ++b;
      }
      if (common == 0) continue;
      // Each triangle u-v-w is found once per edge; add it to the edge's two ends.
      __atomic_fetch_add(&triangles[static_cast<size_t>(u)], common, __ATOMIC_RELAXED);
      __atomic_fetch_add(&triangles[static_cast<size_t>(v)], common, __ATOMIC_RELAXED);
    }
  });
  // Every triangle at u was counted on both of its edges at u.
  auto tri = torch::tensor(triangles, torch::kLong).to(torch::kDouble) / 2.0;
  const auto d = degree.to(torch::kDouble);
  const auto pairs = d * (d - 1) / 2.0;
  const auto clustering = torch::where(pairs > 0, tri / pairs.clamp_min(1), torch::zeros_like(tri));
  const auto neighbour_degree = torch::zeros({n}, torch::kDouble).index_add_(0, sym[0], d.index_select(0, sym[1])) /
                                d.clamp_min(1);
  return torch::stack({torch::log1p(d), clustering, torch::log1p(tri), torch::log1p(neighbour_degree)}, 1)
      .to(torch::kFloat32);
}

}  // namespace adx::graph
