#include <adx/core/error.hpp>
#include <adx/serve/monitoring.hpp>
#include <adx/threshold/threshold.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace adx {

LatencyWindow::LatencyWindow(int64_t window, double budget_ms) : window_(window), budget_ms_(budget_ms) {
  ADX_CHECK_AS(OptionError, window >= 1, "latency window must hold at least 1 call, got {}", window);
  ADX_CHECK_AS(OptionError, std::isfinite(budget_ms) && budget_ms >= 0, "latency budget must be >= 0 ms, got {}",
               budget_ms);
}

void LatencyWindow::record(double milliseconds) {
  ADX_CHECK_AS(ValueError, std::isfinite(milliseconds) && milliseconds >= 0, "latency must be >= 0 ms, got {}",
               milliseconds);
  recent_.push_back(milliseconds);
  if (static_cast<int64_t>(recent_.size()) > window_) recent_.pop_front();
  if (budget_ms_ > 0 && milliseconds > budget_ms_) ++over_budget_;
}

LatencySummary LatencyWindow::summary() const {
  LatencySummary s;
  s.count = static_cast<int64_t>(recent_.size());
  s.over_budget = over_budget_;
  if (recent_.empty()) return s;
  const std::vector<double> values(recent_.begin(), recent_.end());
  s.mean_ms = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.p50_ms = quantile(values, 0.50);
  s.p95_ms = quantile(values, 0.95);
  s.p99_ms = quantile(values, 0.99);
  s.max_ms = *std::max_element(values.begin(), values.end());
  return s;
}

AnomalyRateAlert::AnomalyRateAlert(int64_t window, double max_rate, double cooldown_seconds)
    : window_(window), max_rate_(max_rate), cooldown_seconds_(cooldown_seconds) {
  ADX_CHECK_AS(OptionError, window >= 1, "anomaly-rate window must hold at least 1 item, got {}", window);
  ADX_CHECK_AS(OptionError, max_rate >= 0 && max_rate < 1, "anomaly-rate limit must be in [0, 1), got {}", max_rate);
  ADX_CHECK_AS(OptionError, std::isfinite(cooldown_seconds) && cooldown_seconds >= 0,
               "anomaly-rate cooldown must be >= 0 s, got {}", cooldown_seconds);
}

bool AnomalyRateAlert::update(bool flagged, double now_seconds) {
  recent_.push_back(flagged);
  flagged_in_window_ += flagged;
  if (static_cast<int64_t>(recent_.size()) > window_) {
    flagged_in_window_ -= recent_.front();
    recent_.pop_front();
  }
  // Judged on a full window only: the first few items say nothing about a rate.
  if (static_cast<int64_t>(recent_.size()) < window_ || rate() <= max_rate_) return false;
  if (alerted_ && now_seconds - last_alert_ < cooldown_seconds_) return false;
  alerted_ = true;
  last_alert_ = now_seconds;
  ++alerts_;
  return true;
}

double AnomalyRateAlert::rate() const {
  return recent_.empty() ? 0.0 : static_cast<double>(flagged_in_window_) / static_cast<double>(recent_.size());
}

double population_stability_index(const std::vector<double>& reference, const std::vector<double>& current, int bins,
                                  double floor) {
  ADX_CHECK_AS(ValueError, !reference.empty() && !current.empty(),
               "PSI needs reference and current values, got {} and {}", reference.size(), current.size());
  ADX_CHECK_AS(OptionError, bins >= 2, "PSI needs at least 2 bins, got {}", bins);
  ADX_CHECK_AS(OptionError, floor > 0 && floor < 1, "PSI floor must be in (0, 1), got {}", floor);
  for (const auto* values : {&reference, &current})
    for (double v : *values) ADX_CHECK_AS(ValueError, std::isfinite(v), "PSI got a non-finite value {}", v);
  // Inner edges at the reference's quantiles 1/bins, ..., (bins-1)/bins; a value equal to an edge goes right.
  std::vector<double> edges;
  for (int b = 1; b < bins; ++b) edges.push_back(quantile(reference, static_cast<double>(b) / bins));
  auto shares = [&](const std::vector<double>& values) {
    std::vector<double> counts(static_cast<size_t>(bins), 0.0);
    for (double v : values)
      counts[static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin())] += 1.0;
    for (auto& c : counts) c = std::max(c / static_cast<double>(values.size()), floor);
    return counts;
  };
  const auto r = shares(reference), c = shares(current);
  double psi = 0.0;
  for (size_t b = 0; b < r.size(); ++b) psi += (c[b] - r[b]) * std::log(c[b] / r[b]);
  return psi;
}

namespace {

// P(D >= h / lcm) for samples of n and m: one minus the probability that a uniformly random
// monotone lattice path from (0, 0) to (n, m) stays strictly inside |i (m/g) - j (n/g)| < h.
// Probabilities, not path counts, so large samples cannot overflow.
double ks_exact_p_value(int64_t n, int64_t m, int64_t h) {
  const int64_t g = std::gcd(n, m), step_i = m / g, step_j = n / g;
  std::vector<double> row(static_cast<size_t>(m + 1), 0.0), next(row.size());
  auto inside = [&](int64_t i, int64_t j) { return std::llabs(i * step_i - j * step_j) < h; };
  row[0] = 1.0;
  for (int64_t i = 0; i <= n; ++i) {
    std::fill(next.begin(), next.end(), 0.0);
    for (int64_t j = 0; j <= m; ++j) {
      double mass = row[static_cast<size_t>(j)];
      if (mass == 0.0) continue;
      if (!inside(i, j)) {
        row[static_cast<size_t>(j)] = 0.0;
        continue;
      }
      const double left_i = static_cast<double>(n - i), left_j = static_cast<double>(m - j);
      if (left_i + left_j == 0) continue;
      if (left_i > 0) next[static_cast<size_t>(j)] += mass * left_i / (left_i + left_j);
      if (left_j > 0) row[static_cast<size_t>(j + 1)] += mass * left_j / (left_i + left_j);
    }
    if (i == n) return std::clamp(1.0 - row[static_cast<size_t>(m)], 0.0, 1.0);
    row.swap(next);
  }
  return 1.0;
}

// Kolmogorov's Q(lambda) = P(K > lambda), by whichever of its two series converges fast.
double kolmogorov_survival(double lambda) {
  if (lambda <= 0) return 1.0;
  if (lambda < 1.0) {
    const double pi = 3.14159265358979323846;
    double cdf = 0.0;
    for (int k = 1; k <= 20; ++k) {
      const double odd = 2.0 * k - 1.0;
      cdf += std::exp(-odd * odd * pi * pi / (8.0 * lambda * lambda));
    }
    return std::clamp(1.0 - std::sqrt(2.0 * pi) / lambda * cdf, 0.0, 1.0);
  }
  double q = 0.0;
  for (int k = 1; k <= 100; ++k) q += (k % 2 ? 2.0 : -2.0) * std::exp(-2.0 * k * k * lambda * lambda);
  return std::clamp(q, 0.0, 1.0);
}

}  // namespace

KsResult ks_two_sample(std::vector<double> a, std::vector<double> b, double exact_limit) {
  ADX_CHECK_AS(ValueError, !a.empty() && !b.empty(), "the KS test needs two non-empty samples, got {} and {} values",
               a.size(), b.size());
  for (const auto* values : {&a, &b})
    for (double v : *values) ADX_CHECK_AS(ValueError, std::isfinite(v), "the KS test got a non-finite value {}", v);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const auto n = static_cast<int64_t>(a.size()), m = static_cast<int64_t>(b.size());
  // Walk the merged values; at each distinct value both CDFs step past every copy of it.
  KsResult r;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    const double x = j >= b.size() || (i < a.size() && a[i] <= b[j]) ? a[i] : b[j];
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    r.statistic = std::max(r.statistic, std::fabs(static_cast<double>(i) / n - static_cast<double>(j) / m));
  }
  if (static_cast<double>(n) * static_cast<double>(m) <= exact_limit) {
    // D on the lattice of steps 1/lcm(n, m), rounded as scipy does.
    const int64_t lcm = n / std::gcd(n, m) * m;
    const auto h = static_cast<int64_t>(std::llround(r.statistic * static_cast<double>(lcm)));
    r.exact = true;
    r.p_value = h == 0 ? 1.0 : ks_exact_p_value(n, m, h);
    return r;
  }
  const double e = static_cast<double>(n) * static_cast<double>(m) / static_cast<double>(n + m);
  const double root = std::sqrt(e);
  r.p_value = kolmogorov_survival((root + 0.12 + 0.11 / root) * r.statistic);
  return r;
}

}  // namespace adx
