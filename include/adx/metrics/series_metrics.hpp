#pragma once
// Time-series detection metrics on per-step labels (1 = anomaly) and per-step
// scores or predictions. Anomalies in a series come as ranges of consecutive
// steps, and how a metric credits a partly detected range decides what it
// rewards:
//   - point-wise precision / recall / F1 / AUROC / AUPRC: no credit beyond each step;
//   - point adjustment (PA): one detected step marks its whole range detected. It
//     flatters any method, random scores included (Kim et al., AAAI 2022), so a
//     report always prints the unadjusted figure beside it;
//   - PA%K: a range counts only when more than K% of it is detected; the area
//     under F1 over K in [0, 100] summarises all K (Kim et al. 2022);
//   - range-based precision and recall (Tatbul et al., NeurIPS 2018);
//   - affiliation precision and recall (Huet et al., KDD 2022);
//   - VUS-ROC and VUS-PR (Paparrizos et al., VLDB 2022).
// Light header: no LibTorch.
#include <adx/metrics/metrics.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace adx::metrics {

/// Steps [begin, end) of one anomaly range (or one run of positive predictions).
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t length() const { return end - begin; }
  bool operator==(const Range& o) const { return begin == o.begin && end == o.end; }
};

/// The runs of non-zero values, in order.
std::vector<Range> ranges_of(const std::vector<int>& binary);

/// 1 where score > threshold.
std::vector<int> predictions_above(const std::vector<double>& scores, double threshold);

/// Precision, recall and F1 of binary predictions against labels, step by step.
PrecisionRecallF1 point_precision_recall_f1(const std::vector<int>& labels, const std::vector<int>& predictions);

/// PA%K adjustment: every label range in which more than `k_percent` of the steps are
/// predicted becomes fully predicted. k = 0 is point adjustment (one step is enough);
/// k = 100 leaves the predictions unchanged.
std::vector<int> adjust_predictions(const std::vector<int>& labels, const std::vector<int>& predictions,
                                    double k_percent = 0.0);

/// F1 (with precision and recall) after PA%K adjustment at `k_percent`.
PrecisionRecallF1 pa_k_f1(const std::vector<int>& labels, const std::vector<int>& predictions, double k_percent);

/// Area under F1 over K in [0, 100] (trapezoids over `ks`, normalised to [0, 1]).
double pa_k_auc(const std::vector<int>& labels, const std::vector<int>& predictions,
                const std::vector<double>& ks = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100});

/// Positional bias delta of range-based metrics.
enum class RangeBias { Flat, Front, Back, Middle };

struct RangeOptions {
  /// Weight of the existence reward in recall (precision never has one).
  double alpha = 0.0;
  RangeBias bias = RangeBias::Flat;
  /// Cardinality factor gamma: true = 1 / (number of overlapping ranges), false = 1.
  bool reciprocal_cardinality = true;
};

/// Range-based precision and recall (Tatbul et al. 2018), F1 their harmonic mean.
/// Recall averages alpha * existence + (1 - alpha) * cardinality * overlap over label
/// ranges; precision averages cardinality * overlap over predicted ranges.
PrecisionRecallF1 range_precision_recall(const std::vector<int>& labels, const std::vector<int>& predictions,
                                         const RangeOptions& options = {});

struct Affiliation {
  double precision = 0.0;  ///< mean over label ranges whose zone holds a prediction
  double recall = 0.0;     ///< mean over all label ranges
};

/// Affiliation precision and recall (Huet et al. 2022). Step i is the interval [i, i+1);
/// each label range owns the zone of the series closer to it than to any other range;
/// distances inside a zone are turned into probabilities against a uniformly random
/// prediction, so 0.5 is what chance scores.
Affiliation affiliation(const std::vector<int>& labels, const std::vector<int>& predictions);

struct Vus {
  double roc = 0.0;
  double pr = 0.0;
};

/// Volume under the range-AUC surfaces (Paparrizos et al. 2022), as the authors' reference computes it
/// (TheDatumOrg/VUS, RangeAUC_volume_opt): range-AUC-ROC and range-AUC-PR with soft label buffers of
/// width 0..max_buffer (buffer/2 steps either side of each range), averaged; `thresholds` scores of the
/// descending order are swept. The reference's README sets max_buffer to the median range length.
Vus vus(const std::vector<int>& labels, const std::vector<double>& scores, int64_t max_buffer,
        int64_t thresholds = 250);

/// The median length of the labelled anomaly ranges, as numpy's median truncated to an integer.
int64_t median_range_length(const std::vector<int>& labels);

/// Every metric above for one detector's per-step scores and a threshold.
struct SeriesReport {
  double auroc = 0.0;
  double auprc = 0.0;
  PrecisionRecallF1 point;      ///< unadjusted, at the threshold
  PrecisionRecallF1 adjusted;   ///< point-adjusted (PA), at the threshold
  double pa_k_auc = 0.0;        ///< area under F1 over K
  PrecisionRecallF1 range;      ///< range-based, flat bias, alpha 0
  Affiliation affiliation;
  Vus vus;
  double best_point_f1 = 0.0;    ///< best unadjusted F1 over all thresholds (an upper bound, uses labels)
  double best_adjusted_f1 = 0.0; ///< best PA-F1 over the same thresholds
};

struct SeriesReportOptions {
  /// VUS buffer; 0 picks the median label range length (the VUS reference's recommendation).
  int64_t vus_max_buffer = 0;
  /// Thresholds tried for the best-F1 figures (quantiles of the scores).
  int64_t best_f1_thresholds = 200;
};

/// Computes the report. Steps whose score is NaN (never scored) count as the lowest score. A NaN
/// threshold (none could be calibrated) leaves every figure at a threshold NaN; the threshold-free
/// ones (AUROC, AUPRC, VUS, best F1) are computed as always.
SeriesReport series_report(const std::vector<int>& labels, std::vector<double> scores, double threshold,
                           const SeriesReportOptions& options = {});

/// One Markdown table row: `name` and the report's figures, unadjusted beside adjusted; NaN prints as –.
std::string markdown_row(const std::string& name, const SeriesReport& report);
/// The header that matches markdown_row.
std::string markdown_header();

}  // namespace adx::metrics
