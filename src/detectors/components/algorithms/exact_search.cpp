#include <adx/core/error.hpp>
#include <adx/detectors/components/algorithms/exact_search.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace adx {

float squared_distance_fixed_order(const float* a, const float* b, int64_t dims) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= dims; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const float t = a[j + k] - b[j + k];
      lanes[k] += t * t;
    }
  for (int k = 0; j < dims; ++j, ++k) {
    const float t = a[j] - b[j];
    lanes[k] += t * t;
  }
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  return lanes[0];
}

double squared_distance_rounding(int64_t dims) {
  // GEMM: x^2 and y^2 over dims terms, the dot product over dims terms, two additions. The fixed-order
  // kernel: a rounded difference squared (3 roundings), dims / 16 terms per lane and 4 pairwise levels.
  // Either is within gamma_{dims+8} of the exact value, relative to (|x| + |y|)^2.
  const double nu = static_cast<double>(dims + 8) * std::ldexp(1.0, -24);
  return 2.0 * nu / (1.0 - nu);
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

namespace {

// Each query's shortlist slack: the GEMM and the fixed-order kernel each err by at most
// F (|x| + |y|)^2 / 2 on a squared distance, so a row whose GEMM distance exceeds another's by more than
// 2 F (|x| + R)^2 (R the largest bank norm) has the larger fixed-order distance too. The squared norms carry
// float32 rounding of their own, which the factor (1 + F) covers.
std::vector<double> shortlist_slack(const at::Tensor& query_sq, double bank_sq_max, int64_t dims) {
  const double f = squared_distance_rounding(dims);
  const double bank_norm = std::sqrt(std::max(0.0, bank_sq_max) * (1.0 + f));
  const auto sq = query_sq.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto* p = sq.data_ptr<double>();
  std::vector<double> slack(static_cast<size_t>(sq.numel()));
  for (size_t i = 0; i < slack.size(); ++i) {
    const double reach = std::sqrt(std::max(0.0, p[i]) * (1.0 + f)) + bank_norm;
    slack[i] = 2.0 * f * reach * reach;
  }
  return slack;
}

// The least float32 at or above `value` (a GEMM distance compared with it must not be rounded out); the
// largest finite float32 for an infinite value, so that excluded rows (+infinity) never pass.
float float_at_or_above(double value) {
  if (!(value < static_cast<double>(std::numeric_limits<float>::max()))) return std::numeric_limits<float>::max();
  auto f = static_cast<float>(value);
  if (static_cast<double>(f) < value) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// The shortlisted pairs of a GEMM block: (i, j) wherever d2[i][j] is at most limit[i] (finite).
struct Shortlist {
  at::Tensor pairs;             ///< P x 2, int64 on the CPU: block row i, block column j
  std::vector<float> squared;   ///< P: the pair's fixed-order squared distance
};

// `query_rows[i]` is the query of block row i; block column j is bank row first_row + j.
Shortlist shortlist(const at::Tensor& queries, const at::Tensor& bank, const int64_t* query_rows, const at::Tensor& d2,
                    const std::vector<float>& limit, int64_t first_row) {
  const int64_t n = d2.size(0), dims = bank.size(1);
  const auto limits = torch::from_blob(const_cast<float*>(limit.data()), {n}, torch::kFloat32).to(d2.device());
  Shortlist out;
  out.pairs = d2.le(limits.unsqueeze(1)).nonzero().to(torch::kCPU).contiguous();
  const int64_t count = out.pairs.size(0);
  out.squared.resize(static_cast<size_t>(count));
  if (count == 0) return out;
  const auto* pair = out.pairs.data_ptr<int64_t>();
  // Rows on another device come to the CPU, gathered in pair order; CPU rows are read where they lie.
  at::Tensor x_rows, y_rows;
  if (!queries.device().is_cpu() || !bank.device().is_cpu()) {
    auto qi = torch::empty({count}, torch::kLong), bi = torch::empty({count}, torch::kLong);
    for (int64_t p = 0; p < count; ++p) {
      qi[p] = query_rows[pair[2 * p]];
      bi[p] = first_row + pair[2 * p + 1];
    }
    x_rows = queries.index_select(0, qi.to(queries.device())).to(torch::kCPU).contiguous();
    y_rows = bank.index_select(0, bi.to(bank.device())).to(torch::kCPU).contiguous();
  }
  const bool gathered = x_rows.defined();
  const float* x = gathered ? x_rows.data_ptr<float>() : queries.data_ptr<float>();
  const float* y = gathered ? y_rows.data_ptr<float>() : bank.data_ptr<float>();
  at::parallel_for(0, count, 256, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t xi = gathered ? p : query_rows[pair[2 * p]];
      const int64_t yi = gathered ? p : first_row + pair[2 * p + 1];
      out.squared[static_cast<size_t>(p)] = squared_distance_fixed_order(x + xi * dims, y + yi * dims, dims);
    }
  });
  return out;
}

// Float32, contiguous, detached: what the fixed-order kernel reads.
at::Tensor plain_rows(const at::Tensor& t) { return t.detach().to(torch::kFloat32).contiguous(); }

}  // namespace

ExactNearest::ExactNearest(const at::Tensor& queries, const at::Tensor& bank, const at::Tensor& query_sq,
                           double bank_sq_max)
    : queries_(plain_rows(queries)),
      bank_(plain_rows(bank)),
      slack_(shortlist_slack(query_sq, bank_sq_max, bank.size(1))),
      gemm_best_(static_cast<size_t>(queries.size(0)), std::numeric_limits<float>::infinity()),
      best_(static_cast<size_t>(queries.size(0)), std::numeric_limits<float>::infinity()),
      best_row_(static_cast<size_t>(queries.size(0)), 0) {}

void ExactNearest::offer(const at::Tensor& query_rows_in, const at::Tensor& d2, int64_t first_row) {
  const int64_t n = d2.size(0);
  if (n == 0 || d2.size(1) == 0) return;
  const auto query_rows = query_rows_in.to(torch::kCPU, torch::kLong).contiguous();
  const auto* rows = query_rows.data_ptr<int64_t>();
  const auto block_least = std::get<0>(d2.min(1)).to(torch::kCPU, torch::kFloat32).contiguous();
  const auto* least = block_least.data_ptr<float>();
  std::vector<float> limit(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto q = static_cast<size_t>(rows[i]);
    gemm_best_[q] = std::min(gemm_best_[q], least[i]);
    limit[static_cast<size_t>(i)] = float_at_or_above(reach(rows[i]));
  }
  const auto found = shortlist(queries_, bank_, rows, d2, limit, first_row);
  const auto* pair = found.pairs.data_ptr<int64_t>();
  for (size_t p = 0; p < found.squared.size(); ++p) {
    const auto q = static_cast<size_t>(rows[pair[2 * p]]);
    const int64_t row = first_row + pair[2 * p + 1];
    const float v = found.squared[p];
    if (v < best_[q] || (v == best_[q] && row < best_row_[q])) {
      best_[q] = v;
      best_row_[q] = row;
    }
  }
}

double ExactNearest::reach(int64_t query) const {
  const auto q = static_cast<size_t>(query);
  return static_cast<double>(gemm_best_[q]) + slack_[q];
}

void ExactNearest::finish(at::Tensor* distances, at::Tensor* indices) const {
  const auto q = static_cast<int64_t>(best_.size());
  if (distances) {
    auto d = torch::empty({q}, torch::kFloat32);
    auto* p = d.data_ptr<float>();
    for (int64_t i = 0; i < q; ++i) p[i] = std::sqrt(std::max(0.0f, best_[static_cast<size_t>(i)]));
    *distances = d.to(queries_.device());
  }
  if (indices)
    *indices = torch::from_blob(const_cast<int64_t*>(best_row_.data()), {q}, torch::kLong).clone().to(queries_.device());
}

void nearest_neighbours(const at::Tensor& queries, const at::Tensor& bank, at::Tensor* distances,
                        at::Tensor* indices, int64_t block_elements, const at::Tensor& query_groups,
                        const at::Tensor& bank_groups) {
  const bool grouped = check_nearest_neighbour_inputs(queries, bank, query_groups, bank_groups);
  torch::NoGradGuard no_grad;
  const int64_t q = queries.size(0), m = bank.size(0);
  const int64_t bank_block = std::max<int64_t>(1, std::min(m, block_elements / 256));
  const int64_t query_block = std::max<int64_t>(1, block_elements / bank_block);
  const auto x_all = plain_rows(queries), y_all = plain_rows(bank);
  const auto bank_sq = y_all.square().sum(1);
  const auto x_sq = x_all.square().sum(1);
  ExactNearest exact(x_all, y_all, x_sq, bank_sq.max().item<double>());
  for (int64_t qb = 0; qb < q; qb += query_block) {
    const int64_t qe = std::min(q, qb + query_block);
    const auto x = x_all.slice(0, qb, qe);
    const auto rows = torch::arange(qb, qe, torch::kLong);
    for (int64_t mb = 0; mb < m; mb += bank_block) {
      const int64_t me = std::min(m, mb + bank_block);
      // |x - y|^2 = |x|^2 + |y|^2 - 2 x.y, one GEMM per block: the shortlist.
      auto d2 = torch::addmm(x_sq.slice(0, qb, qe).unsqueeze(1) + bank_sq.slice(0, mb, me).unsqueeze(0), x,
                             y_all.slice(0, mb, me).t(), 1.0, -2.0);
      if (grouped)
        d2.masked_fill_(query_groups.slice(0, qb, qe).unsqueeze(1) == bank_groups.slice(0, mb, me).unsqueeze(0),
                        std::numeric_limits<float>::infinity());
      exact.offer(rows, d2, mb);
    }
  }
  exact.finish(distances, indices);
  if (distances) *distances = distances->to(queries.scalar_type());
}

void k_nearest_neighbours(const at::Tensor& queries, const at::Tensor& bank, int64_t k, at::Tensor* distances,
                          at::Tensor* indices, const at::Tensor& query_groups, const at::Tensor& bank_groups) {
  const bool grouped = check_nearest_neighbour_inputs(queries, bank, query_groups, bank_groups);
  const int64_t q = queries.size(0), m = bank.size(0);
  ADX_CHECK_AS(ValueError, k >= 1 && k <= m, "k nearest neighbours need 1 <= k <= {} bank rows, got k = {}", m, k);
  torch::NoGradGuard no_grad;
  const auto x_all = plain_rows(queries), y_all = plain_rows(bank);
  const auto bank_sq = y_all.square().sum(1);
  const auto x_sq = x_all.square().sum(1);
  const auto slack = shortlist_slack(x_sq, bank_sq.max().item<double>(), bank.size(1));
  const auto inf = std::numeric_limits<float>::infinity();
  const at::Tensor groups_q = grouped ? query_groups.to(torch::kCPU, torch::kLong).contiguous() : at::Tensor();
  const at::Tensor groups_b = grouped ? bank_groups.to(torch::kCPU, torch::kLong).contiguous() : at::Tensor();
  auto out_d = torch::empty({q, k}, torch::kFloat32);
  auto out_i = torch::empty({q, k}, torch::kLong);
  auto d_out = out_d.accessor<float, 2>();
  auto i_out = out_i.accessor<int64_t, 2>();
  const int64_t block = std::max<int64_t>(1, kNearestNeighbourBlock / m);
  for (int64_t qb = 0; qb < q; qb += block) {
    const int64_t qe = std::min(q, qb + block), n = qe - qb;
    auto d2 = torch::addmm(x_sq.slice(0, qb, qe).unsqueeze(1) + bank_sq.unsqueeze(0), x_all.slice(0, qb, qe),
                           y_all.t(), 1.0, -2.0);
    if (grouped)
      d2.masked_fill_(query_groups.slice(0, qb, qe).unsqueeze(1) == bank_groups.unsqueeze(0), inf);
    // The k-th least GEMM distance plus the slack: no row beyond it can be among the k nearest.
    const auto kth = std::get<0>(d2.topk(k, 1, /*largest=*/false)).select(1, k - 1).to(torch::kCPU).contiguous();
    std::vector<float> limit(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      limit[static_cast<size_t>(i)] =
          float_at_or_above(static_cast<double>(kth.data_ptr<float>()[i]) + slack[static_cast<size_t>(qb + i)]);
    std::vector<int64_t> rows(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = qb + i;
    const auto found = shortlist(x_all, y_all, rows.data(), d2, limit, 0);
    std::vector<std::vector<std::pair<float, int64_t>>> candidates(static_cast<size_t>(n));
    const auto* pair = found.pairs.data_ptr<int64_t>();
    for (size_t p = 0; p < found.squared.size(); ++p)
      candidates[static_cast<size_t>(pair[2 * p])].emplace_back(found.squared[p], pair[2 * p + 1]);
    for (int64_t i = 0; i < n; ++i) {
      auto& c = candidates[static_cast<size_t>(i)];
      std::sort(c.begin(), c.end());  // nearest first, ties to the lower row
      c.resize(std::min<size_t>(c.size(), static_cast<size_t>(k)));
      // Fewer than k outside the query's group: its own group's rows follow, in row order.
      for (int64_t j = 0; grouped && static_cast<int64_t>(c.size()) < k && j < m; ++j)
        if (groups_b.data_ptr<int64_t>()[j] == groups_q.data_ptr<int64_t>()[qb + i]) c.emplace_back(inf, j);
      ADX_CHECK_AS(ValueError, static_cast<int64_t>(c.size()) == k,
                   "query {} has {} finite distances where {} neighbours were asked for; are its features finite?",
                   qb + i, c.size(), k);
      for (int64_t r = 0; r < k; ++r) {
        d_out[qb + i][r] = std::sqrt(std::max(0.0f, c[static_cast<size_t>(r)].first));
        i_out[qb + i][r] = c[static_cast<size_t>(r)].second;
      }
    }
  }
  if (distances) *distances = out_d.to(queries.device()).to(queries.scalar_type());
  if (indices) *indices = out_i.to(queries.device());
}

at::Tensor row_pair_distances(const at::Tensor& a, const at::Tensor& b) {
  ADX_CHECK_AS(ShapeError, a.dim() == 2 && a.sizes() == b.sizes(), "row pairs need two P x D matrices, got {} and {}",
               std::string(c10::str(a.sizes())), std::string(c10::str(b.sizes())));
  const auto x = plain_rows(a).to(torch::kCPU), y = plain_rows(b).to(torch::kCPU);
  const int64_t pairs = x.size(0), dims = x.size(1);
  auto out = torch::empty({pairs}, torch::kFloat32);
  const float *xp = x.data_ptr<float>(), *yp = y.data_ptr<float>();
  auto* o = out.data_ptr<float>();
  at::parallel_for(0, pairs, 64, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) o[p] = std::sqrt(squared_distance_fixed_order(xp + p * dims, yp + p * dims, dims));
  });
  return out.to(a.device()).to(a.scalar_type());
}

}  // namespace adx
