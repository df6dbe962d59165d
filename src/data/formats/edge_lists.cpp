#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/formats/edge_lists.hpp>
#include <adx/data/formats/loaders.hpp>

#include "csv_lines.hpp"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <unordered_map>

namespace adx::graph {

namespace {

// An edge list stored as .npy: 2 x E, E x 2 (ids), or E x 3 (ids and a weight).
EdgeList load_edge_npy(const std::string& path, const EdgeListOptions& options) {
  const auto a = load_npy(path);
  ADX_CHECK_AS(ShapeError, a.dim() == 2 && (a.size(0) == 2 || a.size(1) == 2 || a.size(1) == 3),
               "'{}': an edge list is 2 x E, E x 2 or E x 3 (with weights), got shape {}", path, c10::str(a.sizes()));
  const bool rows_are_edges = !(a.size(0) == 2 && a.size(1) != 2 && a.size(1) != 3);
  const auto pairs = rows_are_edges ? a.slice(1, 0, 2).t() : a;
  ADX_CHECK_AS(ShapeError, pairs.size(1) > 0, "'{}' has no edges", path);
  const auto ids = pairs.to(torch::kDouble);
  ADX_CHECK_AS(ValueError, (ids == ids.round()).all().item<bool>(), "'{}': node ids must be integers", path);
  const auto bad = (ids < 0).nonzero();
  ADX_CHECK_AS(ValueError, bad.numel() == 0, "'{}': negative node id {} (edge {})", path,
               bad.numel() ? ids[bad[0][0]][bad[0][1]].item<double>() : 0.0, bad.numel() ? bad[0][1].item<int64_t>() : 0);
  EdgeList out;
  auto edges = ids.to(torch::kLong);
  int64_t n = options.num_nodes;
  if (n > 0) {
    const int64_t largest = edges.max().item<int64_t>();
    ADX_CHECK_AS(ValueError, largest < n, "'{}': node id {} is outside 0..{} (the feature matrix has {} rows)", path,
                 largest, n - 1, n);
  } else {
    // Numbered in increasing order of id, as for CSV files.
    const auto [unique, inverse, counts] = at::_unique2(edges.reshape({-1}), true, true, false);
    edges = inverse.reshape(edges.sizes());
    for (int64_t v : std::vector<int64_t>(unique.data_ptr<int64_t>(), unique.data_ptr<int64_t>() + unique.numel()))
      out.node_ids.push_back(std::to_string(v));
    n = unique.numel();
  }
  if (out.node_ids.empty())
    for (int64_t k = 0; k < n; ++k) out.node_ids.push_back(std::to_string(k));
  out.edge_index = edges.contiguous();
  if (rows_are_edges && a.size(1) == 3) {
    out.edge_weight = a.select(1, 2).to(torch::kFloat32).contiguous();
    check_finite(out.edge_weight.reshape({-1, 1}), path.c_str(), "edge weight");
  }
  return out;
}

}  // namespace

EdgeList load_edge_list(const std::string& path, const EdgeListOptions& options) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".npy") == 0) return load_edge_npy(path, options);
  csv::LineReader reader(path, "edge list", options.delimiter, '#');
  std::vector<std::string> ids, cells;
  std::vector<float> weights;
  std::vector<int64_t> lines;
  int64_t columns = -1;
  bool first = true;
  while (reader.next(cells)) {
    const int64_t line_no = reader.line_number();
    if (first) {
      first = false;
      std::string head = cells[0];
      std::transform(head.begin(), head.end(), head.begin(), ::tolower);
      const bool named = head == "src" || head == "source" || head == "from" || head == "u" || head == "node1";
      if (options.header == 1 || (options.header == -1 && named)) continue;
    }
    ADX_CHECK_AS(IoError, cells.size() == 2 || cells.size() == 3,
                 "edge list '{}' line {}: {} columns; expected src,dst[,weight]", path, line_no, cells.size());
    if (columns < 0) columns = static_cast<int64_t>(cells.size());
    ADX_CHECK_AS(IoError, static_cast<int64_t>(cells.size()) == columns, "edge list '{}' line {}: {} columns, expected {}",
                 path, line_no, cells.size(), columns);
    ADX_CHECK_AS(IoError, !cells[0].empty() && !cells[1].empty(), "edge list '{}' line {}: an empty node id", path,
                 line_no);
    ids.push_back(cells[0]);
    ids.push_back(cells[1]);
    if (columns == 3) {
      char* end = nullptr;
      const double w = std::strtod(cells[2].c_str(), &end);
      ADX_CHECK_AS(IoError, end != cells[2].c_str() && *end == '\0' && std::isfinite(w),
                   "edge list '{}' line {}: weight '{}' is not a finite number", path, line_no, cells[2]);
      weights.push_back(static_cast<float>(w));
    }
    lines.push_back(line_no);
  }
  ADX_CHECK_AS(IoError, !ids.empty(), "edge list '{}' has no edges", path);

  // Numeric ids when every id is an integer.
  std::vector<int64_t> numeric(ids.size());
  bool all_numeric = true;
  for (size_t i = 0; i < ids.size() && all_numeric; ++i) {
    char* end = nullptr;
    errno = 0;
    numeric[i] = std::strtoll(ids[i].c_str(), &end, 10);
    all_numeric = *end == '\0' && errno == 0;
  }
  EdgeList out;
  std::vector<int64_t> node(ids.size());
  if (all_numeric) {
    for (size_t i = 0; i < ids.size(); ++i)
      ADX_CHECK_AS(ValueError, numeric[i] >= 0, "edge list '{}' line {}: negative node id {}", path, lines[i / 2],
                   numeric[i]);
    if (options.num_nodes > 0) {
      for (size_t i = 0; i < ids.size(); ++i) {
        ADX_CHECK_AS(ValueError, numeric[i] < options.num_nodes,
                     "edge list '{}' line {}: node id {} is outside 0..{} (the feature matrix has {} rows)", path,
                     lines[i / 2], numeric[i], options.num_nodes - 1, options.num_nodes);
        node[i] = numeric[i];
      }
      for (int64_t k = 0; k < options.num_nodes; ++k) out.node_ids.push_back(std::to_string(k));
    } else {
      std::map<int64_t, int64_t> order;
      for (auto v : numeric) order.emplace(v, 0);
      int64_t k = 0;
      for (auto& [id, index] : order) index = k++, out.node_ids.push_back(std::to_string(id));
      for (size_t i = 0; i < ids.size(); ++i) node[i] = order[numeric[i]];
    }
  } else {
    std::unordered_map<std::string, int64_t> order;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto [it, added] = order.emplace(ids[i], static_cast<int64_t>(order.size()));
      if (added) out.node_ids.push_back(ids[i]);
      node[i] = it->second;
    }
    if (options.num_nodes > 0) {
      ADX_CHECK_AS(ValueError, static_cast<int64_t>(order.size()) <= options.num_nodes,
                   "edge list '{}' names {} distinct nodes but the feature matrix has {} rows", path, order.size(),
                   options.num_nodes);
      for (int64_t k = static_cast<int64_t>(order.size()); k < options.num_nodes; ++k)
        out.node_ids.push_back(fmt::format("#{}", k));
    }
  }
  out.edge_index = torch::tensor(node, torch::kLong).reshape({-1, 2}).t().contiguous();
  if (!weights.empty()) out.edge_weight = torch::tensor(weights, torch::kFloat32);
  return out;
}

}  // namespace adx::graph
