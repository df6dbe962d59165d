#pragma once
// Graph operations on edge lists: symmetric edge lists, normalisation, degrees, neighbour lists and
// structural indicators. Nothing here allocates an N x N matrix: memory grows with N + E. Edge-list files
// are in formats/edge_lists.hpp, anomaly injection and generated graphs in generators/injected_graphs.hpp.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx::graph {

/// Both directions of every edge, without duplicates and self-loops: 2 x E' int64, sorted.
at::Tensor symmetrize(const at::Tensor& edge_index, int64_t num_nodes);

/// D^-1/2 (A + I) D^-1/2 as a sparse N x N COO tensor (coalesced) on the edge list's device:
/// edges taken in both directions, a self-loop on every node (so isolated nodes keep their
/// own features), weights 1 unless given.
at::Tensor normalized_adjacency(const at::Tensor& edge_index, const at::Tensor& edge_weight, int64_t num_nodes);

/// Number of distinct neighbours of every node (edges in both directions).
at::Tensor degrees(const at::Tensor& edge_index, int64_t num_nodes);

/// The symmetric edge list (as symmetrize) with CSR row offsets: the neighbours of u are
/// symmetric[1][row_start[u] .. row_start[u + 1]), sorted.
struct NeighbourLists {
  at::Tensor symmetric;  ///< 2 x E' int64
  at::Tensor row_start;  ///< N + 1 int64
};
NeighbourLists neighbour_lists(const at::Tensor& edge_index, int64_t num_nodes);

/// Names of the columns of structural_features.
inline const std::vector<std::string>& structural_feature_names() {
  static const std::vector<std::string> names{"log_degree", "clustering", "log_triangles", "log_neighbour_degree"};
  return names;
}

/// Structural indicators of every node, N x 4 float32 (edges in both directions):
///   log(1 + degree); local clustering coefficient (triangles / pairs of neighbours);
///   log(1 + triangles through the node); log(1 + mean degree of its neighbours).
/// A member of a dense community has many triangles and a high clustering; the hub of a
/// star has a high degree and a clustering near 0. Usable as scores (the `structural`
/// detector) or appended to node features. Triangles are counted by merging sorted
/// neighbour lists: O(sum of degree^2) time, O(N + E) memory.
at::Tensor structural_features(const at::Tensor& edge_index, int64_t num_nodes);

}  // namespace adx::graph
