#include <adx/core/error.hpp>
#include <adx/serve/monitoring.hpp>
#include <adx/threshold/threshold.hpp>

#include <algorithm>
#include <cmath>
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

}  // namespace adx
