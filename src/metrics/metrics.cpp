#include <adx/core/error.hpp>
#include <adx/metrics/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace adx::metrics {
namespace {

// One step of the threshold sweep: all items with score >= `score` are flagged.
struct CurvePoint {
  double score;
  int64_t tp;
  int64_t fp;
};

void check_inputs(const std::vector<int>& labels, const std::vector<double>& scores, bool need_both) {
  ADX_CHECK_AS(ShapeError, !labels.empty(), "metrics need at least one item, got empty labels");
  ADX_CHECK_AS(ShapeError, labels.size() == scores.size(), "metrics got {} labels but {} scores",
               labels.size(), scores.size());
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    ADX_CHECK_AS(ValueError, labels[i] == 0 || labels[i] == 1, "label {} at index {} is not 0 or 1",
                 labels[i], i);
    ADX_CHECK_AS(ValueError, std::isfinite(scores[i]), "score at index {} is not finite ({})", i,
                 scores[i]);
    positives += labels[i];
  }
  if (need_both) {
    ADX_CHECK_AS(ValueError, positives > 0 && positives < static_cast<int64_t>(labels.size()),
                 "metric is undefined with a single class: {} anomalies among {} items", positives,
                 labels.size());
  }
}

// Cumulative counts at each distinct score, sorted by decreasing score.
std::vector<CurvePoint> threshold_sweep(const std::vector<int>& labels, const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<CurvePoint> curve;
  int64_t tp = 0, fp = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    tp += labels[i];
    fp += 1 - labels[i];
    const bool last_of_tie = k + 1 == order.size() || scores[order[k + 1]] != scores[i];
    if (last_of_tie) curve.push_back({scores[i], tp, fp});
  }
  return curve;
}

}  // namespace

double roc_auc(const std::vector<int>& labels, const std::vector<double>& scores) {
  check_inputs(labels, scores, true);
  const auto curve = threshold_sweep(labels, scores);
  const double positives = static_cast<double>(curve.back().tp);
  const double negatives = static_cast<double>(curve.back().fp);
  double area = 0.0;
  int64_t prev_tp = 0, prev_fp = 0;
  for (const auto& p : curve) {
    area += static_cast<double>(p.fp - prev_fp) * static_cast<double>(p.tp + prev_tp) / 2.0;
    prev_tp = p.tp;
    prev_fp = p.fp;
  }
  return area / (positives * negatives);
}

double average_precision(const std::vector<int>& labels, const std::vector<double>& scores) {
  check_inputs(labels, scores, true);
  const auto curve = threshold_sweep(labels, scores);
  const double positives = static_cast<double>(curve.back().tp);
  double ap = 0.0, prev_recall = 0.0;
  for (const auto& p : curve) {
    const double recall = p.tp / positives;
    const double precision = static_cast<double>(p.tp) / static_cast<double>(p.tp + p.fp);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return ap;
}

PrecisionRecallF1 precision_recall_f1(const std::vector<int>& labels, const std::vector<double>& scores,
                                      double threshold) {
  check_inputs(labels, scores, false);
  PrecisionRecallF1 r;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool flagged = scores[i] > threshold;
    if (flagged && labels[i] == 1) ++r.true_positives;
    if (flagged && labels[i] == 0) ++r.false_positives;
    if (!flagged && labels[i] == 1) ++r.false_negatives;
  }
  const double tp = static_cast<double>(r.true_positives);
  r.precision = tp + r.false_positives > 0 ? tp / (tp + r.false_positives) : 0.0;
  r.recall = tp + r.false_negatives > 0 ? tp / (tp + r.false_negatives) : 0.0;
  r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
  return r;
}

BestF1 best_f1(const std::vector<int>& labels, const std::vector<double>& scores) {
  check_inputs(labels, scores, true);
  const auto curve = threshold_sweep(labels, scores);
  const double positives = static_cast<double>(curve.back().tp);
  BestF1 best;
  best.f1 = -1.0;
  for (size_t k = 0; k < curve.size(); ++k) {
    const auto& p = curve[k];
    const double precision = static_cast<double>(p.tp) / static_cast<double>(p.tp + p.fp);
    const double recall = p.tp / positives;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    if (f1 > best.f1) {
      best = {f1, precision, recall, 0.0};
      // Items with score >= p.score are flagged; as a strict ">" threshold take the
      // midpoint to the next lower distinct score.
      best.threshold = k + 1 < curve.size() ? 0.5 * (p.score + curve[k + 1].score)
                                            : p.score - std::max(1.0, std::abs(p.score));
    }
  }
  return best;
}

double recall_at_k(const std::vector<int>& labels, const std::vector<double>& scores, int64_t k) {
  check_inputs(labels, scores, false);
  ADX_CHECK_AS(ValueError, k >= 1, "recall@k needs k >= 1, got {}", k);
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  int64_t positives = 0, found = 0;
  for (int v : labels) positives += v;
  ADX_CHECK_AS(ValueError, positives > 0, "recall@k needs at least one anomaly");
  for (size_t i = 0; i < std::min<size_t>(static_cast<size_t>(k), order.size()); ++i) found += labels[order[i]];
  return static_cast<double>(found) / static_cast<double>(positives);
}

std::vector<double> min_max_per_sequence(const std::vector<double>& scores, const std::vector<int64_t>& lengths) {
  int64_t total = 0;
  for (const int64_t n : lengths) {
    ADX_CHECK_AS(ValueError, n >= 0, "sequence lengths must be >= 0, got {}", n);
    total += n;
  }
  ADX_CHECK_AS(ShapeError, total == static_cast<int64_t>(scores.size()), "sequence lengths add up to {} but there are {} scores",
               total, scores.size());
  std::vector<double> out(scores.size());
  size_t begin = 0;
  for (const int64_t n : lengths) {
    const size_t end = begin + static_cast<size_t>(n);
    double low = INFINITY, high = -INFINITY;
    for (size_t i = begin; i < end; ++i)
      if (std::isfinite(scores[i])) low = std::min(low, scores[i]), high = std::max(high, scores[i]);
    for (size_t i = begin; i < end; ++i)
      out[i] = !std::isfinite(scores[i]) ? scores[i] : high > low ? (scores[i] - low) / (high - low) : 0.0;
    begin = end;
  }
  return out;
}

}  // namespace adx::metrics
