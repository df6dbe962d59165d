#pragma once
// Graph helpers on edge lists: symmetric normalisation, anomaly injection as PyGOD
// defines it, a generator of power-law graphs with communities, and edge-list files.
// Nothing here allocates an N x N matrix: memory grows with N + E.
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

/// A graph with labels of injected anomalies.
struct InjectedGraph {
  at::Tensor x;           ///< N x F
  at::Tensor edge_index;  ///< 2 x E
  at::Tensor labels;      ///< N int64, 1 = injected
};

/// Structural anomalies (PyGOD's gen_structural_outliers): `cliques` groups of `clique_size`
/// random distinct nodes, each group fully connected (both directions); with `drop` = p, as PyGOD
/// does, only int((1 - p) * pairs) of a clique's undirected pairs, drawn at random, are added, each with
/// both directions. Labels of the chosen nodes become 1.
InjectedGraph inject_structural(const InjectedGraph& graph, int64_t clique_size, int64_t cliques, double drop = 0.0,
                                uint64_t seed = 0);

/// Contextual anomalies (PyGOD's gen_contextual_outliers): `count` random nodes each take the
/// features of the farthest (Euclidean) of `candidates` random nodes. Labels become 1.
InjectedGraph inject_contextual(const InjectedGraph& graph, int64_t count, int64_t candidates, uint64_t seed = 0);

struct SyntheticGraphOptions {
  int64_t nodes = 2000;
  int64_t edges = 10000;          ///< undirected edges drawn (before removing duplicates)
  int64_t features = 32;
  int64_t communities = 8;
  double within_community = 0.9;  ///< share of edges inside a community
  double exponent = 2.5;          ///< degree distribution ~ d^-exponent (Chung-Lu weights)
  uint64_t seed = 0;
};

/// A power-law graph with communities: node features are the community's centre plus noise,
/// and most edges join nodes of the same community, so attributes and structure agree.
InjectedGraph make_synthetic_graph(const SyntheticGraphOptions& options = {});

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

struct EdgeListOptions {
  char delimiter = ',';
  /// -1: detect (a first row whose ids are not numbers, or that says src/source, is a header).
  int header = -1;
  /// > 0: numeric ids are rows of a feature matrix with this many nodes (0..num_nodes-1),
  /// and string ids are numbered in order of appearance among them.
  int64_t num_nodes = 0;
};

struct EdgeList {
  at::Tensor edge_index;   ///< 2 x E int64
  at::Tensor edge_weight;  ///< E float32, undefined without a third column
  /// The file's id of every node, in node order (node k is node_ids[k]).
  std::vector<std::string> node_ids;
};

/// Reads `src,dst[,weight]` rows (a path ending in .npy: an integer array 2 x E, E x 2, or
/// E x 3 with weights). Ids may be integers or strings: without num_nodes, numeric
/// ids are numbered in increasing order and string ids in order of first appearance; the
/// mapping is kept in node_ids. A negative numeric id, an id beyond num_nodes, a bad weight
/// or a short row is an error naming the line.
EdgeList load_edge_list(const std::string& path, const EdgeListOptions& options = {});

}  // namespace adx::graph
