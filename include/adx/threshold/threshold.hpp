#pragma once
// Threshold policies. A threshold turns per-item scores into decisions
// (anomalous iff score > threshold). It is calibrated on held-out normal
// data, never on the test set. Light header: no LibTorch.
#include <adx/core/options.hpp>

#include <cmath>
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

/// Whether a score is flagged against `threshold`: above it, or not finite. A NaN score (an overflow)
/// would pass "score > threshold" as normal, so it is flagged; the one rule of predict(), the scoring
/// server and the command line.
inline bool is_flagged(double score, double threshold) { return !std::isfinite(score) || score > threshold; }

/// Mean and sample standard deviation (n - 1 in the denominator) of two or more values.
struct MeanStd {
  double mean = 0.0;
  double std = 0.0;
};
MeanStd mean_and_std(const std::vector<double>& values);

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

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
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

/// The anomaly-ratio threshold of the Anomaly Transformer (its r, in percent): the
/// (100 - r)-th percentile of the training scores and the scores to judge, together.
/// It looks at the unlabelled test scores, as the paper's protocol does; on held-out
/// normal data alone the Contamination policy is the same rule.
double anomaly_ratio_threshold(const std::vector<double>& train_scores, const std::vector<double>& test_scores,
                               double ratio_percent);

struct AdaptiveThresholdOptions {
  ADX_OPTIONS_STRUCT;
  /// Recent scores the target percentile is taken over.
  ADX_ARG(int64_t, window) = 500;
  /// Target percentile in (0, 100) of the recent scores.
  ADX_ARG(double, percentile) = 99.0;
  /// EMA weight of each new target, in (0, 1].
  ADX_ARG(double, smoothing) = 0.05;
  /// The threshold stays within [initial - max_fall * |initial|, initial + max_rise * |initial|]:
  /// a slow drift of the scores cannot move it without limit. This is the upward bound.
  ADX_ARG(double, max_rise) = 0.5;
  /// The downward bound (see max_rise). 0: never below the calibrated threshold, which normal data
  /// already exceeds at the policy's rate; falling into quiet stretches of autocorrelated scores
  /// only adds alarms (NAB's real series, matrix profile: 22.9% of normal steps flagged at 0.5,
  /// 6.7% at 0, 10.7% without adapting, the same anomaly windows caught; docs/thresholds_and_metrics.md).
  ADX_ARG(double, max_fall) = 0.0;
  /// Scores seen before the threshold starts to move (at most `window`).
  ADX_ARG(int64_t, min_samples) = 100;

 public:
  void check(const std::string& prefix = "") const;
};

/// A threshold that follows recent scores: after each score, once `min_samples` have been seen,
/// it moves by `smoothing` towards the target percentile of the last `window` scores and is
/// clamped to its bounds around the initial value.
class AdaptiveThreshold {
 public:
  AdaptiveThreshold(double initial, AdaptiveThresholdOptions options = AdaptiveThresholdOptions());
  /// Records one score and returns the updated threshold.
  double update(double score);
  double value() const { return value_; }
  double lower_bound() const { return lower_; }
  double upper_bound() const { return upper_; }

 private:
  AdaptiveThresholdOptions options_;
  double value_, lower_, upper_;
  std::vector<double> recent_;  ///< ring buffer of the last `window` scores
  size_t next_ = 0;
  int64_t seen_ = 0;
};

struct SpotOptions {
  ADX_OPTIONS_STRUCT;
  /// Target probability q that a normal score exceeds the threshold.
  ADX_ARG(double, risk) = 1e-4;
  /// Quantile of the initial scores where the tail (peaks) starts.
  ADX_ARG(double, level) = 0.98;
  /// DSPOT: scores are taken relative to the mean of the last `depth` normal scores,
  /// which follows a drifting level; 0 = plain SPOT.
  ADX_ARG(int64_t, depth) = 0;
};

/// Streaming peaks-over-threshold, SPOT and DSPOT (Siffer et al., KDD 2017). Initialised
/// on a batch of normal scores, then fed one score at a time: a score above the
/// threshold is an alarm and leaves the model unchanged; a score in the tail refits
/// the Pareto tail and moves the threshold; any other score only counts.
class Spot {
 public:
  explicit Spot(SpotOptions options = SpotOptions());
  /// Fits the initial tail; needs enough scores for at least 3 peaks (plus `depth`).
  void initialize(const std::vector<double>& scores);
  /// Judges one score and learns from it; true = alarm.
  bool update(double score);
  /// The threshold the next score is compared with (with DSPOT's local mean added).
  double threshold() const;
  bool initialized() const { return initialized_; }
  int64_t peaks() const { return static_cast<int64_t>(peaks_.size()); }

 private:
  double local_mean() const;
  void refit();
  SpotOptions options_;
  bool initialized_ = false;
  double level_value_ = 0.0;  ///< t: where the tail starts
  double tail_threshold_ = 0.0;  ///< z_q relative to the local mean
  int64_t seen_ = 0;  ///< n
  std::vector<double> peaks_;
  std::vector<double> window_;  ///< DSPOT: the last `depth` normal scores
  size_t window_next_ = 0;
};

}  // namespace adx
