#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/detectors/components/algorithms/cell_search.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/components/algorithms/exact_search.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace adx {

namespace {

// Queries whose bounds are computed at once (their float64 copy is this many rows).
constexpr int64_t kBoundBlock = 4096;

// Squared distances of `a` (N x D) to `b` (C x D) in float64 as x^2 + y^2 - 2xy, clamped at 0.
at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  return (a.square().sum(1, true) + b.square().sum(1).unsqueeze(0) - 2.0 * torch::mm(a, b.t())).clamp_min(0);
}

// Row of `matrix` nearest to each row of `points` (float32 GEMM), in blocks of `block` rows.
at::Tensor nearest_rows(const at::Tensor& points, const at::Tensor& matrix, int64_t block = 8192) {
  const auto matrix_sq = matrix.square().sum(1).unsqueeze(0);
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < points.size(0); b += block) {
    const auto x = points.slice(0, b, std::min(points.size(0), b + block));
    parts.push_back(torch::addmm(matrix_sq, x, matrix.t(), 1.0, -2.0).argmin(1));
  }
  return torch::cat(parts);
}

}  // namespace

int64_t BankCells::memory_bytes() const {
  int64_t bytes = 0;
  for (const auto* t : {&offsets, &centroids, &centroid_distances, &radius, &slack, &max_norm, &bank_sq})
    if (t->defined()) bytes += t->numel() * static_cast<int64_t>(t->element_size());
  return bytes;
}

at::Tensor partition_bank(const at::Tensor& bank_in, int64_t cells, at::Tensor* offsets, int64_t iterations) {
  ADX_CHECK_AS(ShapeError, bank_in.dim() == 2 && bank_in.size(0) >= 1, "a bank to partition is M x D, got {}",
               shape_string(bank_in.sizes().vec()));
  ADX_CHECK_AS(OptionError, cells >= 0 && iterations >= 0, "cells and iterations must be >= 0, got {} and {}", cells,
               iterations);
  torch::NoGradGuard no_grad;
  const auto bank = bank_in.detach().to(torch::kFloat32).contiguous();
  const int64_t m = bank.size(0);
  if (cells == 0) cells = std::llround(std::sqrt(static_cast<double>(m)));
  cells = std::clamp<int64_t>(cells, 1, m);
  const auto long_options = torch::TensorOptions(torch::kLong).device(bank.device());
  // Evenly spaced starting rows: no random draw, so the same bank always gives the same cells.
  auto centroids = bank.index_select(0, torch::arange(cells, long_options).mul(m).div(cells, "floor")).clone();
  auto assignment = nearest_rows(bank, centroids);
  for (int64_t it = 0; it < iterations; ++it) {
    const auto sums = torch::zeros({cells, bank.size(1)}, bank.options().dtype(torch::kFloat64))
                          .index_add_(0, assignment, bank.to(torch::kFloat64));
    const auto counts = torch::bincount(assignment, {}, cells).to(torch::kFloat64);
    const auto filled = counts.gt(0).unsqueeze(1);
    // An empty cell keeps its centroid.
    centroids = torch::where(filled, sums / counts.clamp_min(1).unsqueeze(1), centroids.to(torch::kFloat64))
                    .to(torch::kFloat32);
    assignment = nearest_rows(bank, centroids);
  }
  const auto order = std::get<1>(torch::sort(assignment, /*stable=*/true, 0, false));
  const auto counts = torch::bincount(assignment, {}, cells).cpu();
  const auto kept = counts.masked_select(counts.gt(0));
  *offsets = torch::cat({torch::zeros({1}, torch::kLong), kept.cumsum(0)});
  return order;
}

BankCells describe_cells(const at::Tensor& bank_in, const at::Tensor& offsets_in) {
  const auto offsets = offsets_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t m = bank_in.size(0);
  ADX_CHECK_AS(ValueError, offsets.dim() == 1 && offsets.numel() >= 2, "cell offsets must be a vector of >= 2 values, got {}",
               shape_string(offsets.sizes().vec()));
  const auto* o = offsets.data_ptr<int64_t>();
  const int64_t count = offsets.numel() - 1;
  ADX_CHECK_AS(ValueError, o[0] == 0 && o[count] == m, "cell offsets must run from 0 to the bank's {} rows, got {} to {}",
               m, o[0], o[count]);
  for (int64_t c = 0; c < count; ++c)
    ADX_CHECK_AS(ValueError, o[c] < o[c + 1], "cell {} is empty or reversed: rows {} to {}", c, o[c], o[c + 1]);
  torch::NoGradGuard no_grad;
  const auto bank = bank_in.detach().to(torch::kFloat32).contiguous();
  const auto exact = bank.to(torch::kFloat64);
  BankCells cells;
  cells.offsets = offsets;
  cells.bank_sq = bank.square().sum(1);
  std::vector<at::Tensor> centroids, radius, max_norm;
  const auto norms = exact.norm(2, 1);
  for (int64_t c = 0; c < count; ++c) {
    const auto rows = exact.slice(0, o[c], o[c + 1]);
    const auto centroid = rows.mean(0);
    centroids.push_back(centroid);
    radius.push_back((rows - centroid).norm(2, 1).max());
    max_norm.push_back(norms.slice(0, o[c], o[c + 1]).max());
  }
  cells.centroids = torch::stack(centroids);
  cells.radius = torch::stack(radius);
  cells.max_norm = torch::stack(max_norm);
  cells.centroid_distances = squared_distances(cells.centroids, cells.centroids).sqrt();
  // Slack: for every row, its squared distance to its own centroid less that to the nearest centroid.
  std::vector<at::Tensor> slack;
  for (int64_t c = 0; c < count; ++c) {
    const auto d2 = squared_distances(exact.slice(0, o[c], o[c + 1]), cells.centroids);
    slack.push_back((d2.select(1, c) - std::get<0>(d2.min(1))).max());
  }
  cells.slack = torch::stack(slack).clamp_min(0);
  return cells;
}

void nearest_neighbours_in_cells(const at::Tensor& queries, const at::Tensor& bank, const BankCells& cells,
                                 at::Tensor* distances, at::Tensor* indices, const at::Tensor& query_groups,
                                 const at::Tensor& bank_groups, int64_t* distances_computed) {
  const int64_t count = cells.count();
  if (!bank.device().is_cpu() || !queries.device().is_cpu() || count <= 1) {
    nearest_neighbours(queries, bank, distances, indices, kNearestNeighbourBlock, query_groups, bank_groups);
    if (distances_computed) *distances_computed = queries.size(0) * bank.size(0);
    return;
  }
  ADX_CHECK_AS(ValueError, queries.scalar_type() == torch::kFloat32 && bank.scalar_type() == torch::kFloat32,
               "cell search takes float32 queries and bank, got {} and {}", c10::toString(queries.scalar_type()),
               c10::toString(bank.scalar_type()));
  const bool grouped = check_nearest_neighbour_inputs(queries, bank, query_groups, bank_groups);
  ADX_CHECK_AS(ShapeError, cells.bank_sq.numel() == bank.size(0) && cells.centroids.size(1) == bank.size(1),
               "the cells describe a bank of {} x {}, not {} x {}", cells.bank_sq.numel(), cells.centroids.size(1),
               bank.size(0), bank.size(1));
  torch::NoGradGuard no_grad;
  const int64_t q = queries.size(0), dims = queries.size(1);
  if (q == 0) {
    if (distances) *distances = torch::empty({0}, queries.options());
    if (indices) *indices = torch::empty({0}, queries.options().dtype(torch::kLong));
    if (distances_computed) *distances_computed = 0;
    return;
  }
  const auto x_all = queries.detach().contiguous();
  const auto x_sq = x_all.square().sum(1);
  const auto* offsets = cells.offsets.data_ptr<int64_t>();

  // Bounds, in float64: each query's nearest cell, and for every cell the least GEMM squared distance a row
  // of it could show after float32 rounding (`floor`); a cell whose floor exceeds the query's reach (its
  // best GEMM distance plus the shortlist's slack, exact_search.hpp) cannot hold the answer, nor tie with it.
  // One pass per query block, so memory stays bounded.
  auto floor = torch::empty({q, count}, torch::kFloat64);
  auto first = torch::empty({q}, torch::kLong);
  const double margin = squared_distance_rounding(dims);
  const auto centroid_sq = cells.centroids.square().sum(1).contiguous();
  const auto* centroid_sq_p = centroid_sq.data_ptr<double>();
  const auto* radius_p = cells.radius.data_ptr<double>();
  const auto* slack_p = cells.slack.data_ptr<double>();
  const auto* max_norm_p = cells.max_norm.data_ptr<double>();
  const auto* between_p = cells.centroid_distances.data_ptr<double>();
  for (int64_t b = 0; b < q; b += kBoundBlock) {
    const auto exact = x_all.slice(0, b, std::min(q, b + kBoundBlock)).to(torch::kFloat64);
    const auto dot = torch::mm(exact, cells.centroids.t()).contiguous();  // n x C
    const auto q_sq = exact.square().sum(1).contiguous();
    const auto* dot_p = dot.data_ptr<double>();
    const auto* q_sq_p = q_sq.data_ptr<double>();
    auto* floor_p = floor.data_ptr<double>() + b * count;
    auto* first_p = first.data_ptr<int64_t>() + b;
    at::parallel_for(0, exact.size(0), 64, [&](int64_t begin, int64_t end) {
      std::vector<double> to_centroid2(static_cast<size_t>(count));
      for (int64_t i = begin; i < end; ++i) {
        int64_t nearest = 0;
        for (int64_t c = 0; c < count; ++c) {
          const double d2 = std::max(0.0, q_sq_p[i] + centroid_sq_p[c] - 2.0 * dot_p[i * count + c]);
          to_centroid2[static_cast<size_t>(c)] = d2;
          if (d2 < to_centroid2[static_cast<size_t>(nearest)]) nearest = c;
        }
        first_p[i] = nearest;
        const double nearest2 = to_centroid2[static_cast<size_t>(nearest)], q_norm = std::sqrt(q_sq_p[i]);
        for (int64_t c = 0; c < count; ++c) {
          const double d2 = to_centroid2[static_cast<size_t>(c)];
          // Ball: no row lies farther than the radius from its centroid.
          double lower = std::max(0.0, std::sqrt(d2) - radius_p[c]);
          // Half-space: a row of cell c is (up to the slack) no nearer the query's nearest centroid than c's.
          const double between = between_p[nearest * count + c];
          if (c != nearest && between > 0)
            lower = std::max(lower, (d2 - nearest2 - slack_p[c]) / (2.0 * between));
          const double reach = q_norm + max_norm_p[c];
          floor_p[i * count + c] = lower * lower - margin * reach * reach;
        }
      }
    });
  }
  const auto floor_a = floor.accessor<double, 2>();
  const auto first_a = first.accessor<int64_t, 1>();

  ExactNearest answers(x_all, bank, x_sq, cells.bank_sq.max().item<double>());
  std::vector<int64_t> chosen;
  chosen.reserve(static_cast<size_t>(q));
  int64_t computed = 0;
  // Offers cell c's GEMM distances for the queries in `chosen` to the exact search.
  const auto search_cell = [&](int64_t c) {
    const int64_t lo = offsets[c], hi = offsets[c + 1], found = static_cast<int64_t>(chosen.size());
    computed += found * (hi - lo);
    const auto rows = torch::from_blob(chosen.data(), {found}, torch::kLong);
    auto d2 = torch::addmm(x_sq.index_select(0, rows).unsqueeze(1) + cells.bank_sq.slice(0, lo, hi).unsqueeze(0),
                           x_all.index_select(0, rows), bank.slice(0, lo, hi).t(), 1.0, -2.0);
    if (grouped)
      d2.masked_fill_(query_groups.index_select(0, rows).unsqueeze(1) == bank_groups.slice(0, lo, hi).unsqueeze(0),
                      std::numeric_limits<float>::infinity());
    answers.offer(rows, d2, lo);
  };
  // Each query's nearest cell first, which sets a good reach, then every cell its floor allows.
  for (int64_t c = 0; c < count; ++c) {
    chosen.clear();
    for (int64_t i = 0; i < q; ++i)
      if (first_a[i] == c) chosen.push_back(i);
    if (!chosen.empty()) search_cell(c);
  }
  for (int64_t c = 0; c < count; ++c) {
    chosen.clear();
    for (int64_t i = 0; i < q; ++i)
      if (first_a[i] != c && floor_a[i][c] <= answers.reach(i)) chosen.push_back(i);
    if (!chosen.empty()) search_cell(c);
  }
  if (distances_computed) *distances_computed = computed;
  answers.finish(distances, indices);
}

}  // namespace adx
