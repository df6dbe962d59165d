#include <adx/core/distributed.hpp>
#include <adx/core/error.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace adx {

int64_t johnson_lindenstrauss_dim(int64_t samples, double eps) {
  ADX_CHECK_AS(OptionError, eps > 0 && eps < 1, "projection eps must lie in (0, 1), got {}", eps);
  ADX_CHECK_AS(ValueError, samples >= 1, "the projection needs at least one sample, got {}", samples);
  return static_cast<int64_t>(4.0 * std::log(static_cast<double>(samples)) / (eps * eps / 2 - eps * eps * eps / 3));
}

at::Tensor sparse_random_projection(int64_t features, int64_t components) {
  const double density = 1.0 / std::sqrt(static_cast<double>(features));
  const double value = std::sqrt(1.0 / density) / std::sqrt(static_cast<double>(components));
  const auto u = torch::rand({features, components});
  auto m = torch::zeros({features, components});
  m.masked_fill_(u < density / 2, value);
  m.masked_fill_((u >= density / 2) & (u < density), -value);
  return m;
}

namespace {

// Euclidean distance of two rows by the fixed-order kernel: a row copied to another rank gives the very
// same distance.
float row_distance(const float* a, const float* b, int64_t d) { return std::sqrt(squared_distance_fixed_order(a, b, d)); }

// The greedy k-center loop over rows `p` (n x d), given how to find the farthest row over everyone's rows
// and how to get that row's features. Rows whose nearest centre is provably closer than the new centre
// (triangle inequality) are skipped: a row i owned by centre a cannot move to `next` when
// |c_a - next| >= 2 nearest[i], since then |i - next| >= |c_a - next| - nearest[i] >= nearest[i].
template <class Farthest, class RowOf>
Coreset greedy_k_center(const float* p, int64_t n, int64_t d, int64_t size, const float* start_row,
                        const Farthest& farthest, const RowOf& row_of, const std::function<float(float)>& global_max) {
  std::vector<float> nearest(n);
  std::vector<int32_t> owner(n, 0);
  std::vector<float> centres(start_row, start_row + d);  // the centres' features, one row each
  at::parallel_for(0, n, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) nearest[i] = row_distance(p + i * d, start_row, d);
  });
  std::vector<float> centre_gap;  // distance of each existing centre to the new one
  Coreset out;
  out.indices.reserve(size);
  for (int64_t step = 0; step < size; ++step) {
    const int64_t next = farthest(nearest);
    out.indices.push_back(next);
    const auto next_row = row_of(next);
    const int64_t count = static_cast<int64_t>(centres.size()) / d;
    centre_gap.resize(count);
    at::parallel_for(0, count, 256, [&](int64_t b, int64_t e) {
      for (int64_t a = b; a < e; ++a) centre_gap[a] = row_distance(centres.data() + a * d, next_row.data(), d);
    });
    centres.insert(centres.end(), next_row.begin(), next_row.end());
    const auto id = static_cast<int32_t>(count);
    at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (centre_gap[owner[i]] >= 2 * nearest[i]) continue;
        const float dist = row_distance(p + i * d, next_row.data(), d);
        if (dist < nearest[i]) {
          nearest[i] = dist;
          owner[i] = id;
        }
      }
    });
  }
  float radius = 0;
  for (float v : nearest) radius = std::max(radius, v);
  out.coverage_radius = global_max(radius);
  return out;
}

// The first row holding the largest value (ties go to the lowest index, as argmax does).
std::pair<int64_t, float> first_largest(const std::vector<float>& values) {
  int64_t best = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(values.size()); ++i)
    if (values[i] > values[best]) best = i;
  return {best, values.empty() ? -std::numeric_limits<float>::infinity() : values[best]};
}

}  // namespace

Coreset greedy_coreset(const at::Tensor& points_in, int64_t size, int64_t start) {
  ADX_CHECK_AS(ShapeError, points_in.dim() == 2 && points_in.size(0) >= 1,
               "coreset selection takes an N x D matrix with N >= 1, got {}", std::string(c10::str(points_in.sizes())));
  const auto points = points_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = points.size(0), d = points.size(1);
  ADX_CHECK_AS(OptionError, size >= 1 && size <= n, "coreset size must lie in [1, {}], got {}", n, size);
  ADX_CHECK_AS(OptionError, start >= 0 && start < n, "coreset start row must lie in [0, {}), got {}", n, start);
  const float* p = points.data_ptr<float>();
  return greedy_k_center(
      p, n, d, size, p + start * d, [](const std::vector<float>& nearest) { return first_largest(nearest).first; },
      [&](int64_t row) { return std::vector<float>(p + row * d, p + (row + 1) * d); }, [](float r) { return r; });
}

Coreset greedy_coreset_distributed(const at::Tensor& local_in, int64_t size, int64_t start, ProcessGroup& group) {
  ADX_CHECK_AS(ShapeError, local_in.dim() == 2, "coreset selection takes an N x D matrix per rank, got {}",
               std::string(c10::str(local_in.sizes())));
  const auto local = local_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t ranks = group.world_size(), rank = group.rank(), d = local.size(1), rows = local.size(0);
  // Every rank's row count and feature width: the offsets of each rank's rows in the whole matrix.
  auto counts = torch::zeros({2 * ranks}, torch::kLong);
  counts[2 * rank] = rows;
  counts[2 * rank + 1] = d;
  group.all_reduce_sum(counts);
  std::vector<int64_t> offsets(ranks + 1, 0);
  for (int64_t r = 0; r < ranks; ++r) {
    ADX_CHECK_AS(ShapeError, counts[2 * r + 1].item<int64_t>() == d || counts[2 * r].item<int64_t>() == 0,
                 "rank {} has {}-dimensional rows, rank {} has {}", r, counts[2 * r + 1].item<int64_t>(), rank, d);
    offsets[r + 1] = offsets[r] + counts[2 * r].item<int64_t>();
  }
  const int64_t n = offsets[ranks], begin = offsets[rank];
  ADX_CHECK_AS(OptionError, size >= 1 && size <= n, "coreset size must lie in [1, {}], got {}", n, size);
  ADX_CHECK_AS(OptionError, start >= 0 && start < n, "coreset start row must lie in [0, {}), got {}", n, start);
  const float* p = local.data_ptr<float>();
  // A row of the whole matrix, sent by the rank that holds it.
  const auto row_of = [&](int64_t row) {
    int64_t holder = 0;
    while (row >= offsets[holder + 1]) ++holder;
    auto buffer = holder == rank ? local[row - begin].clone() : torch::empty({d}, torch::kFloat32);
    group.broadcast(buffer, holder);
    return std::vector<float>(buffer.data_ptr<float>(), buffer.data_ptr<float>() + d);
  };
  // Each rank's farthest row in its own slot; the largest wins, the lowest row among equals.
  const auto farthest = [&](const std::vector<float>& nearest) {
    auto slots = torch::zeros({2 * ranks}, torch::kFloat64);
    const auto [row, value] = first_largest(nearest);
    slots[2 * rank] = rows > 0 ? static_cast<double>(value) : -std::numeric_limits<double>::infinity();
    slots[2 * rank + 1] = static_cast<double>(begin + row);
    group.all_reduce_sum(slots);
    int64_t best = -1;
    for (int64_t r = 0; r < ranks; ++r)
      if (offsets[r + 1] > offsets[r] && (best < 0 || slots[2 * r].item<double>() > slots[2 * best].item<double>()))
        best = r;
    return static_cast<int64_t>(slots[2 * best + 1].item<double>());
  };
  const auto global_max = [&](float radius) {
    auto value = torch::tensor({rows > 0 ? radius : 0.0f});
    group.all_reduce_max(value);
    return value.item<float>();
  };
  const auto start_row = row_of(start);
  return greedy_k_center(p, rows, d, size, start_row.data(), farthest, row_of, global_max);
}

Coreset greedy_coreset_over(ProcessGroup* group, const at::Tensor& local_points, int64_t size, int64_t start) {
  return group ? greedy_coreset_distributed(local_points, size, start, *group)
               : greedy_coreset(local_points, size, start);
}

}  // namespace adx
