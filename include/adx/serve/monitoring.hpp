#pragma once
// What a deployed detector watches besides its scores: scoring latency over a
// sliding window, the rate of flagged items (an alert with a cooldown), and
// input drift by the population stability index. No LibTorch: plain values.
#include <cstdint>
#include <deque>
#include <vector>

namespace adx {

/// Latency over the last `window` calls, in milliseconds; percentiles interpolate linearly (numpy's default).
struct LatencySummary {
  int64_t count = 0;  ///< calls in the window
  double mean_ms = 0, p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t over_budget = 0;  ///< calls slower than the budget since the start (not only in the window)
};

class LatencyWindow {
 public:
  /// `budget_ms` 0 = no budget.
  explicit LatencyWindow(int64_t window = 1000, double budget_ms = 0.0);
  void record(double milliseconds);
  LatencySummary summary() const;

 private:
  int64_t window_;
  double budget_ms_;
  std::deque<double> recent_;
  int64_t over_budget_ = 0;
};

/// Raises an alert when more than `max_rate` of the last `window` items were flagged, at most once per
/// `cooldown_seconds` (timestamps come from the caller, so the rule is testable and clock-free).
class AnomalyRateAlert {
 public:
  AnomalyRateAlert(int64_t window, double max_rate, double cooldown_seconds);
  /// Records one item; true when this item raises an alert.
  bool update(bool flagged, double now_seconds);
  /// Share of flagged items in the window.
  double rate() const;
  int64_t alerts() const { return alerts_; }

 private:
  int64_t window_;
  double max_rate_, cooldown_seconds_;
  std::deque<bool> recent_;
  int64_t flagged_in_window_ = 0, alerts_ = 0;
  bool alerted_ = false;
  double last_alert_ = 0.0;
};

/// Population stability index of `current` against `reference`: bins at the reference's quantiles
/// (`bins` equal-mass bins, outer bins open), each share floored at `floor` so that an empty bin stays
/// finite, PSI = sum (c - r) ln(c / r). Below 0.1 is usually read as stable, above 0.25 as a shift.
double population_stability_index(const std::vector<double>& reference, const std::vector<double>& current,
                                  int bins = 10, double floor = 1e-4);

/// Two-sample Kolmogorov–Smirnov test, two-sided.
struct KsResult {
  double statistic = 0.0;  ///< D = max |F_a(x) - F_b(x)| over all values x
  double p_value = 1.0;    ///< probability of a D at least this large when both samples share one distribution
  bool exact = false;      ///< whether p_value is exact (lattice paths) or asymptotic
};

/// D and its p-value. Exact (the lattice-path count of scipy's ks_2samp method="exact") when
/// a.size() * b.size() <= `exact_limit`; above it, Kolmogorov's limiting distribution with
/// Stephens' small-sample correction, lambda = (sqrt(e) + 0.12 + 0.11 / sqrt(e)) * D with
/// e = n_a n_b / (n_a + n_b). Ties are handled as scipy does (both CDFs step past equal values).
KsResult ks_two_sample(std::vector<double> a, std::vector<double> b, double exact_limit = 1e6);

}  // namespace adx
