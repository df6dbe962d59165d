#pragma once
// Threshold policies. A threshold turns per-item scores into decisions
// (anomalous iff score > threshold). It is calibrated on held-out normal
// data, never on the test set. Light header: no LibTorch.
#include <adx/core/options.hpp>

#include <cstdint>
#include <vector>

namespace adx {

enum class ThresholdPolicy {
  MeanStd,        ///< mean + k * std of the normal scores
  Percentile,     ///< the given percentile of the normal scores
  Contamination,  ///< flags the expected fraction nu of items: quantile 1 - nu
  BestF1,         ///< maximises F1 on labelled calibration data
  Pot,            ///< peaks over threshold (extreme value theory, Siffer et al. 2017)
};
ADX_ENUM_NAMES(ThresholdPolicy, {ThresholdPolicy::MeanStd, "mean_std"},
               {ThresholdPolicy::Percentile, "percentile"},
               {ThresholdPolicy::Contamination, "contamination"}, {ThresholdPolicy::BestF1, "best_f1"},
               {ThresholdPolicy::Pot, "pot"});

struct ThresholdOptions {
  ADX_OPTIONS_STRUCT;
  /// Which policy sets the threshold.
  ADX_ARG(ThresholdPolicy, policy) = ThresholdPolicy::Percentile;
  /// MeanStd: number of standard deviations above the mean.
  ADX_ARG(double, k) = 3.0;
  /// Percentile: percentile in (0, 100) of the normal scores.
  ADX_ARG(double, percentile) = 99.0;
  /// Contamination: expected fraction of anomalies in (0, 0.5].
  ADX_ARG(double, contamination) = 0.01;
  /// Pot: target probability of a normal score exceeding the threshold.
  ADX_ARG(double, risk) = 1e-3;
  /// Pot: quantile of the normal scores where the tail (peaks) starts.
  ADX_ARG(double, pot_level) = 0.98;
};

/// Minimum number of normal scores the policy needs.
int64_t min_calibration_samples(const ThresholdOptions& options);

/// Computes a threshold from scores of held-out normal data. BestF1 needs labels: use best_f1_threshold.
double fit_threshold(const std::vector<double>& normal_scores, const ThresholdOptions& options);

/// Threshold that maximises F1 on labelled calibration data.
double best_f1_threshold(const std::vector<int>& labels, const std::vector<double>& scores);

/// Linear-interpolated quantile (numpy's default), q in [0, 1].
double quantile(std::vector<double> values, double q);

/// Generalised Pareto fit of tail excesses (Grimshaw's maximum likelihood).
struct GpdFit {
  double shape = 0.0;  ///< gamma (xi)
  double scale = 1.0;  ///< sigma
};
GpdFit fit_generalized_pareto(const std::vector<double>& excesses);

/// Peaks-over-threshold: the score exceeded with probability `risk` by normal data.
double pot_threshold(const std::vector<double>& normal_scores, double risk, double level);

}  // namespace adx
