#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/graphs.hpp>
#include <adx/data/loaders.hpp>

#include "csv_lines.hpp"

#include <torch/types.h>

#include <ATen/Parallel.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <map>
#include <unordered_map>

namespace adx::graph {
namespace {

const auto kLong = torch::TensorOptions().dtype(torch::kLong);

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

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

InjectedGraph inject_structural(const InjectedGraph& g, int64_t clique_size, int64_t cliques, double drop,
                                uint64_t seed) {
  const int64_t n = g.x.size(0);
  ADX_CHECK_AS(ValueError, clique_size >= 2 && cliques >= 1, "structural injection needs cliques >= 1 of >= 2 nodes, got {} of {}",
               cliques, clique_size);
  ADX_CHECK_AS(ValueError, clique_size * cliques <= n, "structural injection: {} cliques of {} nodes need more than the {} nodes",
               cliques, clique_size, n);
  ADX_CHECK_AS(ValueError, drop >= 0 && drop < 1, "structural injection: drop must be in [0, 1), got {}", drop);
  auto gen = generator(seed);
  const auto chosen = torch::randperm(n, gen, kLong).slice(0, 0, clique_size * cliques);
  const auto groups = chosen.reshape({cliques, clique_size});
  // Every unordered pair inside each clique (torch.combinations), as PyGOD lists them.
  const auto first = groups.unsqueeze(2).expand({cliques, clique_size, clique_size}).reshape({-1});
  const auto second = groups.unsqueeze(1).expand({cliques, clique_size, clique_size}).reshape({-1});
  const auto position = torch::arange(clique_size, kLong);
  const auto upper = (position.unsqueeze(1) < position.unsqueeze(0)).expand({cliques, clique_size, clique_size});
  const auto pairs = upper.reshape({-1}).nonzero().reshape({-1});
  auto src = first.index_select(0, pairs), dst = second.index_select(0, pairs);
  if (drop > 0) {
    // PyGOD keeps int((1 - p) * pairs) whole pairs drawn at random: an undirected edge goes with both copies.
    const auto kept = torch::randperm(src.size(0), gen, kLong)
                          .slice(0, 0, static_cast<int64_t>((1.0 - drop) * static_cast<double>(src.size(0))));
    src = src.index_select(0, kept);
    dst = dst.index_select(0, kept);
  }
  InjectedGraph out = g;
  out.edge_index = torch::cat({g.edge_index.to(torch::kLong), torch::stack({torch::cat({src, dst}), torch::cat({dst, src})})}, 1);
  out.labels = g.labels.defined() ? g.labels.clone() : torch::zeros({n}, kLong);
  out.labels.index_fill_(0, chosen, 1);
  return out;
}

InjectedGraph inject_contextual(const InjectedGraph& g, int64_t count, int64_t candidates, uint64_t seed) {
  const int64_t n = g.x.size(0);
  ADX_CHECK_AS(ValueError, count >= 1 && count <= n, "contextual injection: count must be in 1..{}, got {}", n, count);
  ADX_CHECK_AS(ValueError, candidates >= 1, "contextual injection: candidates must be >= 1, got {}", candidates);
  auto gen = generator(seed);
  const auto chosen = torch::randperm(n, gen, kLong).slice(0, 0, count);
  const auto pool = torch::randint(n, {count, candidates}, gen, kLong);
  const auto x = g.x.to(torch::kFloat32);
  // Distance from each chosen node to each of its candidates; the farthest wins.
  const auto d = (x.index_select(0, pool.reshape({-1})).reshape({count, candidates, -1}) -
                  x.index_select(0, chosen).unsqueeze(1))
                     .pow(2)
                     .sum(-1);
  const auto farthest = pool.gather(1, d.argmax(1, true)).reshape({-1});
  InjectedGraph out = g;
  out.x = g.x.clone();
  out.x.index_copy_(0, chosen, g.x.index_select(0, farthest));
  out.labels = g.labels.defined() ? g.labels.clone() : torch::zeros({n}, kLong);
  out.labels.index_fill_(0, chosen, 1);
  return out;
}

InjectedGraph make_synthetic_graph(const SyntheticGraphOptions& o) {
  ADX_CHECK_AS(OptionError, o.nodes >= 2 && o.edges >= 1 && o.features >= 1 && o.communities >= 1,
               "synthetic graph: nodes >= 2, edges, features and communities >= 1, got {}, {}, {}, {}", o.nodes, o.edges,
               o.features, o.communities);
  ADX_CHECK_AS(OptionError, o.exponent > 1, "synthetic graph: exponent must be > 1, got {}", o.exponent);
  auto gen = generator(o.seed);
  const int64_t n = o.nodes, k = o.communities;
  const auto community = torch::randint(k, {n}, gen, kLong);
  // Chung-Lu weights: node of rank r has expected degree ~ r^(-1 / (exponent - 1)).
  const auto rank = torch::randperm(n, gen, kLong).to(torch::kDouble) + 1.0;
  const auto weight = rank.pow(-1.0 / (o.exponent - 1.0));
  const auto src = torch::multinomial(weight, o.edges, /*replacement=*/true, gen);
  auto dst = torch::multinomial(weight, o.edges, true, gen);
  // Most edges stay inside the source's community: redraw their targets from it.
  const auto inside = torch::rand({o.edges}, gen) < o.within_community;
  const auto src_community = community.index_select(0, src);
  for (int64_t c = 0; c < k; ++c) {
    const auto members = (community == c).nonzero().reshape({-1});
    const auto rows = (inside & (src_community == c)).nonzero().reshape({-1});
    if (members.numel() == 0 || rows.numel() == 0) continue;
    const auto picks = torch::multinomial(weight.index_select(0, members), rows.size(0), true, gen);
    dst.index_copy_(0, rows, members.index_select(0, picks));
  }
  InjectedGraph out;
  const auto keep = (src != dst).nonzero().reshape({-1});
  out.edge_index = torch::stack({src.index_select(0, keep), dst.index_select(0, keep)});
  const auto centres = torch::randn({k, o.features}, gen) * 2.0;
  out.x = (centres.index_select(0, community) + torch::randn({n, o.features}, gen)).to(torch::kFloat32);
  out.labels = torch::zeros({n}, kLong);
  return out;
}

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
  out.edge_index = torch::tensor(node, kLong).reshape({-1, 2}).t().contiguous();
  if (!weights.empty()) out.edge_weight = torch::tensor(weights, torch::kFloat32);
  return out;
}

}  // namespace adx::graph
