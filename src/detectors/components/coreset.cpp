#include <adx/core/error.hpp>
#include <adx/detectors/components/coreset.hpp>

#include <ATen/Parallel.h>
#include <Eigen/Core>
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

Coreset greedy_coreset(const at::Tensor& points_in, int64_t size, int64_t start) {
  ADX_CHECK_AS(ShapeError, points_in.dim() == 2 && points_in.size(0) >= 1,
               "coreset selection takes an N x D matrix with N >= 1, got {}", std::string(c10::str(points_in.sizes())));
  const auto points = points_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = points.size(0), d = points.size(1);
  ADX_CHECK_AS(OptionError, size >= 1 && size <= n, "coreset size must lie in [1, {}], got {}", n, size);
  ADX_CHECK_AS(OptionError, start >= 0 && start < n, "coreset start row must lie in [0, {}), got {}", n, start);
  const float* p = points.data_ptr<float>();
  using Row = Eigen::Map<const Eigen::VectorXf>;
  auto distance = [&](int64_t a, int64_t b) {  // Eigen's SIMD reduction; a scalar loop does not vectorise
    return (Row(p + a * d, d) - Row(p + b * d, d)).norm();
  };
  // Per row: distance to its nearest centre so far, and which centre (position in `centres`).
  std::vector<float> nearest(n);
  std::vector<int32_t> owner(n, 0);
  std::vector<int64_t> centres{start};
  at::parallel_for(0, n, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) nearest[i] = distance(i, start);
  });
  std::vector<float> centre_gap;  // distance of each existing centre to the new one
  Coreset out;
  out.indices.reserve(size);
  for (int64_t step = 0; step < size; ++step) {
    int64_t next = 0;
    for (int64_t i = 1; i < n; ++i)
      if (nearest[i] > nearest[next]) next = i;
    out.indices.push_back(next);
    // A row i owned by centre a cannot move to `next` when |c_a - next| >= 2 nearest[i]:
    // then |i - next| >= |c_a - next| - nearest[i] >= nearest[i].
    const int64_t count = static_cast<int64_t>(centres.size());
    centre_gap.resize(count);
    at::parallel_for(0, count, 256, [&](int64_t b, int64_t e) {
      for (int64_t a = b; a < e; ++a) centre_gap[a] = distance(centres[a], next);
    });
    centres.push_back(next);
    const auto id = static_cast<int32_t>(count);
    at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (centre_gap[owner[i]] >= 2 * nearest[i]) continue;
        const float dist = distance(i, next);
        if (dist < nearest[i]) {
          nearest[i] = dist;
          owner[i] = id;
        }
      }
    });
  }
  float radius = 0;
  for (float v : nearest) radius = std::max(radius, v);
  out.coverage_radius = radius;
  return out;
}

bool check_nearest_neighbour_inputs(const at::Tensor& queries, const at::Tensor& bank, const at::Tensor& query_groups,
                                    const at::Tensor& bank_groups) {
  ADX_CHECK_AS(ShapeError, queries.dim() == 2 && bank.dim() == 2 && queries.size(1) == bank.size(1) && bank.size(0) > 0,
               "nearest neighbours need Q x D queries and a non-empty M x D bank, got {} and {}",
               std::string(c10::str(queries.sizes())), std::string(c10::str(bank.sizes())));
  const bool grouped = query_groups.defined() && bank_groups.defined();
  ADX_CHECK_AS(ShapeError, !grouped || (query_groups.numel() == queries.size(0) && bank_groups.numel() == bank.size(0)),
               "nearest neighbours got {} query groups for {} queries and {} bank groups for {} bank rows",
               query_groups.numel(), queries.size(0), bank_groups.numel(), bank.size(0));
  return grouped;
}

void nearest_neighbours(const at::Tensor& queries, const at::Tensor& bank, at::Tensor* distances,
                        at::Tensor* indices, int64_t block_elements, const at::Tensor& query_groups,
                        const at::Tensor& bank_groups) {
  const bool grouped = check_nearest_neighbour_inputs(queries, bank, query_groups, bank_groups);
  torch::NoGradGuard no_grad;
  const int64_t q = queries.size(0), m = bank.size(0);
  const int64_t bank_block = std::max<int64_t>(1, std::min(m, block_elements / 256));
  const int64_t query_block = std::max<int64_t>(1, block_elements / bank_block);
  const auto bank_sq = bank.square().sum(1);
  auto best = torch::full({q}, std::numeric_limits<float>::infinity(), queries.options());
  auto best_index = torch::zeros({q}, queries.options().dtype(torch::kLong));
  for (int64_t qb = 0; qb < q; qb += query_block) {
    const auto x = queries.slice(0, qb, std::min(q, qb + query_block));
    const auto x_sq = x.square().sum(1, /*keepdim=*/true);
    auto run_best = best.slice(0, qb, qb + x.size(0));
    auto run_index = best_index.slice(0, qb, qb + x.size(0));
    for (int64_t mb = 0; mb < m; mb += bank_block) {
      const auto y = bank.slice(0, mb, std::min(m, mb + bank_block));
      // |x - y|^2 = |x|^2 + |y|^2 - 2 x.y, one GEMM per block.
      auto d2 = torch::addmm(x_sq + bank_sq.slice(0, mb, mb + y.size(0)).unsqueeze(0), x, y.t(), 1.0, -2.0);
      if (grouped) {
        const auto same = query_groups.slice(0, qb, qb + x.size(0)).unsqueeze(1) ==
                          bank_groups.slice(0, mb, mb + y.size(0)).unsqueeze(0);
        d2.masked_fill_(same, std::numeric_limits<float>::infinity());
      }
      const auto [value, index] = d2.min(1);
      const auto better = value < run_best;
      run_best.copy_(torch::where(better, value, run_best));
      run_index.copy_(torch::where(better, index + mb, run_index));
    }
  }
  if (distances) *distances = best.clamp_min(0).sqrt();
  if (indices) *indices = best_index;
}

}  // namespace adx
