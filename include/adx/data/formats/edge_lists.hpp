#pragma once
// Edge-list files: CSV rows `src,dst[,weight]` with integer or string ids, or an NPY integer array.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx::graph {

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
