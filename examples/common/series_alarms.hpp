#pragma once
// How a threshold judges a stream of per-step scores, as a deployment would see it: which steps alarm
// under a fixed threshold and under the adaptive threshold ProductionDetector runs, the share of normal
// steps that alarm, and the share of labelled anomaly windows with at least one alarm.
#include <adx/metrics/series_metrics.hpp>
#include <adx/threshold/threshold.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace adx::examples {

/// Which steps alarm under a fixed threshold: a finite score above it.
inline std::vector<bool> fixed_alarms(const std::vector<double>& scores, double threshold) {
  std::vector<bool> alarms(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) alarms[i] = std::isfinite(scores[i]) && scores[i] > threshold;
  return alarms;
}

/// The same under adx::AdaptiveThreshold, started at the calibrated threshold and fed the scores in time
/// order: each step is judged against the threshold before its own score moves it. Non-finite scores
/// (unscored steps) neither alarm nor move it.
inline std::vector<bool> adaptive_alarms(const std::vector<double>& scores, double threshold,
                                         const AdaptiveThresholdOptions& options = AdaptiveThresholdOptions()) {
  AdaptiveThreshold adaptive(threshold, options);
  std::vector<bool> alarms(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) continue;
    alarms[i] = scores[i] > adaptive.value();
    adaptive.update(scores[i]);
  }
  return alarms;
}

/// Share of the normal steps (label 0) that alarm; NaN without any.
inline double false_alarm_rate(const std::vector<int>& labels, const std::vector<bool>& alarms) {
  int64_t normal = 0, flagged = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0) continue;
    ++normal;
    flagged += alarms[i] ? 1 : 0;
  }
  return normal == 0 ? NAN : static_cast<double>(flagged) / static_cast<double>(normal);
}

/// Share of the labelled anomaly windows (runs of label 1) with at least one alarm inside; NaN without any.
inline double windows_caught(const std::vector<int>& labels, const std::vector<bool>& alarms) {
  const auto windows = metrics::ranges_of(labels);
  int64_t caught = 0;
  for (const auto& w : windows)
    caught += std::any_of(alarms.begin() + w.begin, alarms.begin() + w.end, [](bool alarm) { return alarm; }) ? 1 : 0;
  return windows.empty() ? NAN : static_cast<double>(caught) / static_cast<double>(windows.size());
}

}  // namespace adx::examples
