#pragma once
// The classic baselines a careful user tries on a series before a deep model, computed beside the
// detectors and scored with the same metrics:
//   - nearest window: the Euclidean distance of each test window to its nearest training window (raw
//     values, every training window), each step taking the maximum over the test windows covering it
//     (discord style);
//   - rolling z-score: |x - mean| / std over the `window` steps before each step (the training head
//     included), the largest over the channels.
// Isolation Forest on windows and the z-normalised matrix profile are adx detectors
// (isolation_forest, matrix_profile) and run as such.
#include <adx/base.hpp>
#include <adx/detectors/matrix_profile/matrix_profile.hpp>

#include <string>
#include <utility>
#include <vector>

#include "tensors.hpp"

namespace adx::examples {

struct BaselineScores {
  std::string name;
  std::vector<double> per_step;  ///< one per test step
};

/// Each step's maximum over the scores of the stride-1 windows of `window` steps that cover it.
inline torch::Tensor max_over_covering_windows(const torch::Tensor& window_scores, int64_t window) {
  const auto padded = torch::constant_pad_nd(window_scores.to(torch::kFloat64).reshape({1, 1, -1}),
                                             {window - 1, window - 1}, -std::numeric_limits<double>::infinity());
  return torch::max_pool1d(padded, window, 1).reshape({-1});
}

/// Baselines for the test steps `values[train_steps:]` of `values` (T x D), trained on the head.
inline std::vector<BaselineScores> series_baselines(const torch::Tensor& values, int64_t train_steps, int64_t window) {
  const auto x = values.to(torch::kFloat64);
  const int64_t steps = x.size(0);
  std::vector<BaselineScores> out;

  // Nearest training window, per-step maximum.
  auto windows_of = [&](const torch::Tensor& part) { return part.unfold(0, window, 1).permute({0, 2, 1}); };
  const auto reference = adx::matrix_profile_rows(windows_of(x.slice(0, 0, train_steps)), false);
  const auto distances = adx::nearest_rows(adx::matrix_profile_rows(windows_of(x.slice(0, train_steps)), false),
                                           reference, 4096).first;
  out.push_back({"nearest window (baseline)", doubles_of(max_over_covering_windows(distances, window))});

  // Rolling z-score against the preceding `window` steps. A flat stretch would divide by 0: its spread
  // is floored at 1e-3 of the channel's spread over the training head (1 for a constant channel).
  const auto floor = (1e-3 * x.slice(0, 0, train_steps).std(0, false)).where(
      x.slice(0, 0, train_steps).std(0, false) > 0, torch::ones({x.size(1)}, x.options()));
  const auto first = std::max<int64_t>(train_steps, window);
  const auto preceding = x.slice(0, first - window, steps - 1).unfold(0, window, 1);  // (steps - first) x D x W
  const auto mean = preceding.mean(2), spread = torch::maximum(preceding.std(2, false), floor);
  auto z = ((x.slice(0, first) - mean).abs() / spread).amax(1);
  if (first > train_steps)  // too short a head for a full window before the first test steps
    z = torch::cat({torch::zeros({first - train_steps}, z.options()), z});
  out.push_back({"rolling z-score (baseline)", doubles_of(z)});
  return out;
}

}  // namespace adx::examples
