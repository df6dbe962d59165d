#pragma once
// The classic baselines a careful user tries on a graph before a deep model, computed beside the
// detectors and scored with the same metrics:
//   - degree;
//   - neighbour distance: the Euclidean distance of a node's features to the mean of its neighbours'
//     (an isolated node, having none, is compared with the mean of every node);
//   - structural rank sum: the sum of the ranks of the four structural indicators (log degree,
//     clustering, log triangles, log neighbour degree);
//   - degree + neighbour distance, as a rank sum.
// Ranks are average ranks (ties share one), so a constant indicator adds nothing.
#include <adx/base.hpp>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "tensors.hpp"

namespace adx::examples {

struct NodeBaseline {
  std::string name;
  std::vector<double> scores;  ///< one per node
};

/// Average ranks (1-based) of `values`, ties sharing the mean of their positions.
inline std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

inline std::vector<double> rank_sum(const std::vector<std::vector<double>>& columns) {
  std::vector<double> total(columns.front().size(), 0.0);
  for (const auto& column : columns) {
    const auto ranks = average_ranks(column);
    for (size_t i = 0; i < total.size(); ++i) total[i] += ranks[i];
  }
  return total;
}

inline std::vector<NodeBaseline> graph_baselines(const torch::Tensor& x, const torch::Tensor& edge_index) {
  const int64_t n = x.size(0);
  const auto features = x.to(torch::kFloat64);
  const auto degree = adx::graph::degrees(edge_index, n).to(torch::kFloat64);
  // Every neighbour once (edges in both directions, repeats merged).
  const auto symmetric = adx::graph::neighbour_lists(edge_index, n).symmetric;
  const auto source = symmetric[0], target = symmetric[1];
  auto sums = torch::zeros_like(features).index_add_(0, target, features.index_select(0, source));
  auto counts = torch::zeros({n}, features.options()).index_add_(0, target, torch::ones({source.size(0)}, features.options()));
  const auto neighbour_mean = torch::where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1),
                                           features.mean(0, true).expand_as(features));
  const auto distance = doubles_of((features - neighbour_mean).norm(2, 1));
  const auto structural = adx::graph::structural_features(edge_index, n);
  std::vector<std::vector<double>> indicators;
  for (int64_t c = 0; c < structural.size(1); ++c) indicators.push_back(doubles_of(structural.select(1, c)));
  const auto degrees = doubles_of(degree);
  return {{"degree (baseline)", degrees},
          {"neighbour distance (baseline)", distance},
          {"structural rank sum (baseline)", rank_sum(indicators)},
          {"degree + neighbour distance, rank sum (baseline)", rank_sum({degrees, distance})}};
}

}  // namespace adx::examples
