#pragma once
// Graphs with labelled anomalies, for benchmarks, examples and tests: anomaly injection as PyGOD defines it
// (into a real graph such as CiteSeer, or a generated one), and a generator of power-law graphs with
// communities. Nothing here allocates an N x N matrix.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace adx::graph {

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

}  // namespace adx::graph
