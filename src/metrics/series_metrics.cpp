#include <adx/core/error.hpp>
#include <adx/metrics/series_metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace adx::metrics {
namespace {

void check_binary(const std::vector<int>& values, const char* what) {
  for (size_t i = 0; i < values.size(); ++i)
    ADX_CHECK_AS(ValueError, values[i] == 0 || values[i] == 1, "{} {} at step {} is not 0 or 1", what, values[i], i);
}

void check_pair(const std::vector<int>& labels, size_t other, const char* other_name) {
  ADX_CHECK_AS(ShapeError, !labels.empty(), "series metrics need at least one step, got empty labels");
  ADX_CHECK_AS(ShapeError, labels.size() == other, "series metrics got {} labels but {} {}", labels.size(), other,
               other_name);
  check_binary(labels, "label");
}

PrecisionRecallF1 from_counts(int64_t tp, int64_t fp, int64_t fn) {
  PrecisionRecallF1 r;
  r.true_positives = tp;
  r.false_positives = fp;
  r.false_negatives = fn;
  r.precision = tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0;
  r.recall = tp + fn > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0;
  r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
  return r;
}

double harmonic(double a, double b) { return a + b > 0 ? 2 * a * b / (a + b) : 0.0; }

// Positional weight delta(i, length) of step i (1-based) inside a range.
double bias_weight(RangeBias bias, int64_t i, int64_t length) {
  switch (bias) {
    case RangeBias::Flat: return 1.0;
    case RangeBias::Front: return static_cast<double>(length - i + 1);
    case RangeBias::Back: return static_cast<double>(i);
    case RangeBias::Middle: return static_cast<double>(2 * i <= length ? i : length - i + 1);
  }
  return 1.0;
}

// omega(range, range ∩ others, delta): the weighted share of `range` that `others` cover.
// Also counts how many of `others` overlap it (for the cardinality factor).
std::pair<double, int64_t> overlap_share(const Range& range, const std::vector<Range>& others, RangeBias bias) {
  double covered = 0.0, total = 0.0;
  for (int64_t i = 1; i <= range.length(); ++i) total += bias_weight(bias, i, range.length());
  int64_t count = 0;
  // `others` are sorted and disjoint.
  auto it = std::lower_bound(others.begin(), others.end(), range,
                             [](const Range& o, const Range& r) { return o.end <= r.begin; });
  for (; it != others.end() && it->begin < range.end; ++it) {
    const int64_t lo = std::max(it->begin, range.begin), hi = std::min(it->end, range.end);
    if (hi <= lo) continue;
    ++count;
    for (int64_t t = lo; t < hi; ++t) covered += bias_weight(bias, t - range.begin + 1, range.length());
  }
  return {total > 0 ? covered / total : 0.0, count};
}

double cardinality(int64_t overlaps, bool reciprocal) {
  return overlaps <= 1 || !reciprocal ? 1.0 : 1.0 / static_cast<double>(overlaps);
}

// ---- affiliation ----------------------------------------------------------

struct Interval {
  double lo, hi;
};

// Exact integral of a piecewise-linear f over [lo, hi], given every point where f may
// bend or jump: the midpoint rule is exact on each linear piece and never evaluates f
// at a jump.
template <class F>
double integrate_pieces(double lo, double hi, std::vector<double> breaks, F f) {
  breaks.push_back(lo);
  breaks.push_back(hi);
  std::sort(breaks.begin(), breaks.end());
  double sum = 0.0, prev = lo;
  for (double b : breaks) {
    if (b <= prev) continue;
    if (b > hi) b = hi;
    if (b > prev) sum += f(0.5 * (prev + b)) * (b - prev);
    prev = b;
    if (prev >= hi) break;
  }
  return sum;
}

// One label range `gt` in its zone, against the predicted intervals cut to the zone.
// Returns {precision integral / predicted length, recall}; precision is NaN without predictions.
std::pair<double, double> affiliation_in_zone(Interval zone, Interval gt, const std::vector<Interval>& preds) {
  const double width = zone.hi - zone.lo;
  if (preds.empty()) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
  // Precision: P(a uniformly random point of the zone lies at least as far from gt).
  auto precision_at = [&](double y) {
    if (y >= gt.lo && y < gt.hi) return 1.0;
    const double d = y < gt.lo ? gt.lo - y : y - gt.hi;
    return (std::max(0.0, gt.lo - zone.lo - d) + std::max(0.0, zone.hi - gt.hi - d)) / width;
  };
  double precision_sum = 0.0, predicted = 0.0;
  for (const auto& p : preds) {
    const std::vector<double> breaks{gt.lo, gt.hi, gt.lo + gt.hi - zone.hi, gt.lo + gt.hi - zone.lo};
    precision_sum += integrate_pieces(p.lo, p.hi, breaks, precision_at);
    predicted += p.hi - p.lo;
  }
  // Recall: for each point x of gt, P(a random point of the zone lies at least as far
  // from x as the nearest prediction does).
  auto distance_to_preds = [&](double x) {
    double d = std::numeric_limits<double>::infinity();
    for (const auto& p : preds) d = std::min(d, x < p.lo ? p.lo - x : (x >= p.hi ? x - p.hi : 0.0));
    return d;
  };
  auto recall_at = [&](double x) {
    const double d = distance_to_preds(x);
    return (std::max(0.0, x - d - zone.lo) + std::max(0.0, zone.hi - x - d)) / width;
  };
  std::vector<double> breaks;
  for (size_t k = 0; k < preds.size(); ++k) {
    for (double p : {preds[k].lo, preds[k].hi}) {
      breaks.push_back(p);
      breaks.push_back(0.5 * (zone.hi + p));
      breaks.push_back(0.5 * (zone.lo + p));
    }
    if (k + 1 < preds.size()) breaks.push_back(0.5 * (preds[k].hi + preds[k + 1].lo));
  }
  const double recall = integrate_pieces(gt.lo, gt.hi, breaks, recall_at) / (gt.hi - gt.lo);
  return {precision_sum / predicted, recall};
}

}  // namespace

std::vector<Range> ranges_of(const std::vector<int>& binary) {
  std::vector<Range> out;
  const int64_t n = static_cast<int64_t>(binary.size());
  for (int64_t t = 0; t < n;) {
    if (binary[t] == 0) {
      ++t;
      continue;
    }
    int64_t end = t;
    while (end < n && binary[end] != 0) ++end;
    out.push_back({t, end});
    t = end;
  }
  return out;
}

std::vector<int> predictions_above(const std::vector<double>& scores, double threshold) {
  std::vector<int> out(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) out[i] = scores[i] > threshold ? 1 : 0;
  return out;
}

PrecisionRecallF1 point_precision_recall_f1(const std::vector<int>& labels, const std::vector<int>& predictions) {
  check_pair(labels, predictions.size(), "predictions");
  check_binary(predictions, "prediction");
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    tp += labels[i] & predictions[i];
    fp += (1 - labels[i]) & predictions[i];
    fn += labels[i] & (1 - predictions[i]);
  }
  return from_counts(tp, fp, fn);
}

std::vector<int> adjust_predictions(const std::vector<int>& labels, const std::vector<int>& predictions,
                                    double k_percent) {
  check_pair(labels, predictions.size(), "predictions");
  check_binary(predictions, "prediction");
  ADX_CHECK_AS(ValueError, k_percent >= 0 && k_percent <= 100, "PA%K needs K in [0, 100], got {}", k_percent);
  std::vector<int> out = predictions;
  for (const auto& r : ranges_of(labels)) {
    int64_t hits = 0;
    for (int64_t t = r.begin; t < r.end; ++t) hits += predictions[t];
    // Strictly more than K% of the range, as Kim et al.'s reference code does.
    if (static_cast<double>(hits) > k_percent / 100.0 * static_cast<double>(r.length()))
      std::fill(out.begin() + r.begin, out.begin() + r.end, 1);
  }
  return out;
}

PrecisionRecallF1 pa_k_f1(const std::vector<int>& labels, const std::vector<int>& predictions, double k_percent) {
  return point_precision_recall_f1(labels, adjust_predictions(labels, predictions, k_percent));
}

double pa_k_auc(const std::vector<int>& labels, const std::vector<int>& predictions, const std::vector<double>& ks) {
  ADX_CHECK_AS(ValueError, ks.size() >= 2 && std::is_sorted(ks.begin(), ks.end()) && ks.back() > ks.front(),
               "PA%K area needs at least two increasing K values, got {}", ks.size());
  double area = 0.0, prev_f1 = pa_k_f1(labels, predictions, ks[0]).f1;
  for (size_t i = 1; i < ks.size(); ++i) {
    const double f1 = pa_k_f1(labels, predictions, ks[i]).f1;
    area += 0.5 * (f1 + prev_f1) * (ks[i] - ks[i - 1]);
    prev_f1 = f1;
  }
  return area / (ks.back() - ks.front());
}

PrecisionRecallF1 range_precision_recall(const std::vector<int>& labels, const std::vector<int>& predictions,
                                         const RangeOptions& options) {
  check_pair(labels, predictions.size(), "predictions");
  check_binary(predictions, "prediction");
  ADX_CHECK_AS(ValueError, options.alpha >= 0 && options.alpha <= 1, "range recall needs alpha in [0, 1], got {}",
               options.alpha);
  const auto real = ranges_of(labels), predicted = ranges_of(predictions);
  PrecisionRecallF1 r;
  double recall = 0.0;
  for (const auto& range : real) {
    const auto [share, overlaps] = overlap_share(range, predicted, options.bias);
    const double existence = overlaps > 0 ? 1.0 : 0.0;
    recall += options.alpha * existence +
              (1 - options.alpha) * cardinality(overlaps, options.reciprocal_cardinality) * share;
  }
  double precision = 0.0;
  for (const auto& range : predicted) {
    const auto [share, overlaps] = overlap_share(range, real, options.bias);
    precision += cardinality(overlaps, options.reciprocal_cardinality) * share;
  }
  r.recall = real.empty() ? 0.0 : recall / static_cast<double>(real.size());
  r.precision = predicted.empty() ? 0.0 : precision / static_cast<double>(predicted.size());
  r.f1 = harmonic(r.precision, r.recall);
  return r;
}

Affiliation affiliation(const std::vector<int>& labels, const std::vector<int>& predictions) {
  check_pair(labels, predictions.size(), "predictions");
  check_binary(predictions, "prediction");
  const auto real = ranges_of(labels), predicted = ranges_of(predictions);
  ADX_CHECK_AS(ValueError, !real.empty(), "affiliation needs at least one labelled anomaly range");
  const double n = static_cast<double>(labels.size());
  Affiliation out;
  double precision_sum = 0.0;
  int64_t zones_with_predictions = 0;
  for (size_t j = 0; j < real.size(); ++j) {
    // The zone of range j reaches halfway to its neighbours (the whole series at the ends).
    const double lo = j == 0 ? 0.0 : 0.5 * static_cast<double>(real[j - 1].end + real[j].begin);
    const double hi = j + 1 == real.size() ? n : 0.5 * static_cast<double>(real[j].end + real[j + 1].begin);
    std::vector<Interval> cut;
    for (const auto& p : predicted) {
      const double a = std::max(lo, static_cast<double>(p.begin)), b = std::min(hi, static_cast<double>(p.end));
      if (b > a) cut.push_back({a, b});
    }
    const auto [precision, recall] = affiliation_in_zone(
        {lo, hi}, {static_cast<double>(real[j].begin), static_cast<double>(real[j].end)}, cut);
    out.recall += recall;
    if (!std::isnan(precision)) {
      precision_sum += precision;
      ++zones_with_predictions;
    }
  }
  out.recall /= static_cast<double>(real.size());
  out.precision = zones_with_predictions > 0 ? precision_sum / static_cast<double>(zones_with_predictions) : 0.0;
  return out;
}

Vus vus(const std::vector<int>& labels, const std::vector<double>& scores, int64_t max_buffer, int64_t thresholds) {
  check_pair(labels, scores.size(), "scores");
  ADX_CHECK_AS(ValueError, max_buffer >= 0, "VUS needs max_buffer >= 0, got {}", max_buffer);
  ADX_CHECK_AS(ValueError, thresholds >= 2, "VUS needs at least 2 thresholds, got {}", thresholds);
  for (size_t i = 0; i < scores.size(); ++i)
    ADX_CHECK_AS(ValueError, std::isfinite(scores[i]), "score at step {} is not finite ({})", i, scores[i]);
  const auto real = ranges_of(labels);
  ADX_CHECK_AS(ValueError, !real.empty(), "VUS needs at least one labelled anomaly range");
  const int64_t n = static_cast<int64_t>(labels.size());
  const double positives = std::accumulate(labels.begin(), labels.end(), 0.0);

  // Steps by decreasing score; every threshold flags the steps with score >= it.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  // The reference sweeps the scores at positions linspace(0, n - 1, thresholds) of that order.
  std::vector<int64_t> flagged(thresholds);  // steps with score >= each threshold
  std::vector<double> levels(thresholds);
  const double step = static_cast<double>(n - 1) / static_cast<double>(thresholds - 1);
  for (int64_t k = 0; k < thresholds; ++k) {
    // numpy's linspace: k * step, truncated by astype(int), and the last position exactly n - 1.
    int64_t pos = k + 1 == thresholds ? n - 1 : static_cast<int64_t>(static_cast<double>(k) * step);
    levels[k] = scores[order[pos]];
    while (pos + 1 < n && scores[order[pos + 1]] == levels[k]) ++pos;
    flagged[k] = pos + 1;
  }

  // The reference (TheDatumOrg/VUS, RangeAUC_volume_opt), buffer by buffer:
  //  - soft labels: 1 on the ranges, + sqrt(1 - distance / buffer) on buffer/2 steps either side, capped at 1;
  //  - the buffered ranges as segments, merged when their reaches overlap or touch (one step shared);
  //  - at each threshold, TP = the soft labels at flagged steps; P' = (P + 1 on the ranges + the soft labels at
  //    flagged steps around them) / 2, so P' grows as the threshold falls; TPR = min(TP / P', 1) times the
  //    share of segments with a flagged step; FPR = (flagged - TP) / (n - P'); precision = TP / flagged;
  //  - range-AUC-ROC by trapezoids over (0, 0), the thresholds and (1, 1); range-AUC-PR as the sum of
  //    recall steps times the precision at each step's right end.
  Vus out;
  std::vector<double> soft(n), soft_flagged(n + 1), ramp_flagged(n + 1);
  for (int64_t buffer = 0; buffer <= max_buffer; ++buffer) {
    const int64_t half = buffer / 2;
    for (int64_t t = 0; t < n; ++t) soft[t] = labels[t];
    for (const auto& r : real) {
      const int64_t last = r.end - 1;
      for (int64_t t = last + 1; t <= std::min(last + half, n - 1); ++t)
        soft[t] += std::sqrt(1.0 - static_cast<double>(t - last) / static_cast<double>(buffer));
      for (int64_t t = std::max<int64_t>(r.begin - half, 0); t < r.begin; ++t)
        soft[t] += std::sqrt(1.0 - static_cast<double>(r.begin - t) / static_cast<double>(buffer));
    }
    for (auto& v : soft) v = std::min(1.0, v);
    // Segments: [begin - half, last + half] per range, clipped to the series, merged as the reference merges.
    std::vector<double> segment_max;
    for (size_t j = 0; j < real.size();) {
      const int64_t first = std::max<int64_t>(real[j].begin - half, 0);
      int64_t last = real[j].end - 1 + half;
      while (j + 1 < real.size() && last >= real[j + 1].begin - half) last = real[++j].end - 1 + half;
      last = std::min(last, n - 1);
      ++j;
      segment_max.push_back(*std::max_element(scores.begin() + first, scores.begin() + last + 1));
    }
    std::sort(segment_max.begin(), segment_max.end());
    for (int64_t k = 0; k < n; ++k) {
      const int64_t t = order[k];
      soft_flagged[k + 1] = soft_flagged[k] + soft[t];
      ramp_flagged[k + 1] = ramp_flagged[k] + (labels[t] == 0 ? soft[t] : 0.0);
    }

    std::vector<double> tpr{0.0}, fpr{0.0}, precision{1.0};
    for (int64_t k = 0; k < thresholds; ++k) {
      const double tp = soft_flagged[flagged[k]];
      const double predicted = static_cast<double>(flagged[k]);
      const double p_new = 0.5 * (positives + positives + ramp_flagged[flagged[k]]);
      const auto existing = segment_max.end() - std::lower_bound(segment_max.begin(), segment_max.end(), levels[k]);
      const double existence = static_cast<double>(existing) / static_cast<double>(segment_max.size());
      tpr.push_back(std::min(tp / p_new, 1.0) * existence);
      fpr.push_back((predicted - tp) / (static_cast<double>(n) - p_new));
      precision.push_back(tp / predicted);
    }
    tpr.push_back(1.0);
    fpr.push_back(1.0);
    double auc = 0.0, ap = 0.0;
    for (size_t i = 1; i < tpr.size(); ++i) auc += (fpr[i] - fpr[i - 1]) * 0.5 * (tpr[i] + tpr[i - 1]);
    for (size_t i = 1; i + 1 < tpr.size(); ++i) ap += (tpr[i] - tpr[i - 1]) * precision[i];
    out.roc += auc;
    out.pr += ap;
  }
  out.roc /= static_cast<double>(max_buffer + 1);
  out.pr /= static_cast<double>(max_buffer + 1);
  return out;
}

int64_t median_range_length(const std::vector<int>& labels) {
  std::vector<int64_t> lengths;
  for (const auto& range : ranges_of(labels)) lengths.push_back(range.length());
  ADX_CHECK_AS(ValueError, !lengths.empty(), "the median range length needs at least one labelled anomaly range");
  std::sort(lengths.begin(), lengths.end());
  const size_t middle = lengths.size() / 2;
  // numpy's median (the mean of the middle two for an even count), truncated as the reference's int() does.
  return lengths.size() % 2 == 1 ? lengths[middle] : (lengths[middle - 1] + lengths[middle]) / 2;
}

SeriesReport series_report(const std::vector<int>& labels, std::vector<double> scores, double threshold,
                           const SeriesReportOptions& options) {
  check_pair(labels, scores.size(), "scores");
  double lowest = std::numeric_limits<double>::infinity();
  for (double s : scores)
    if (std::isfinite(s)) lowest = std::min(lowest, s);
  ADX_CHECK_AS(ValueError, std::isfinite(lowest), "series_report: no step has a finite score");
  for (auto& s : scores)
    if (std::isnan(s)) s = lowest;
  for (size_t i = 0; i < scores.size(); ++i)
    ADX_CHECK_AS(ValueError, std::isfinite(scores[i]), "score at step {} is infinite", i);

  SeriesReport r;
  r.auroc = roc_auc(labels, scores);
  r.auprc = average_precision(labels, scores);
  if (std::isnan(threshold)) {
    // No threshold (none could be calibrated): the figures at a threshold are unknown, not zero.
    constexpr double unknown = std::numeric_limits<double>::quiet_NaN();
    r.point.precision = r.point.recall = r.point.f1 = unknown;
    r.adjusted = r.range = r.point;
    r.pa_k_auc = unknown;
    r.affiliation.precision = r.affiliation.recall = unknown;
  } else {
    const auto predicted = predictions_above(scores, threshold);
    r.point = point_precision_recall_f1(labels, predicted);
    r.adjusted = pa_k_f1(labels, predicted, 0.0);
    r.pa_k_auc = pa_k_auc(labels, predicted);
    r.range = range_precision_recall(labels, predicted);
    r.affiliation = affiliation(labels, predicted);
  }
  r.vus = vus(labels, scores, options.vus_max_buffer > 0 ? options.vus_max_buffer : median_range_length(labels));
  r.best_point_f1 = best_f1(labels, scores).f1;
  std::vector<double> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  const int64_t tries = std::max<int64_t>(2, options.best_f1_thresholds);
  for (int64_t k = 0; k < tries; ++k) {
    // Quantiles from the median up: thresholds that flag at most half of the steps.
    const double q = 0.5 + 0.5 * static_cast<double>(k) / static_cast<double>(tries);
    const double t = sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
    r.best_adjusted_f1 = std::max(r.best_adjusted_f1, pa_k_f1(labels, predictions_above(scores, t), 0.0).f1);
  }
  return r;
}

std::string markdown_header() {
  return "| detector | AUROC | AUPRC | F1 | PA-F1 | PA%K AUC | range F1 | affil. P | affil. R | VUS-ROC | VUS-PR | "
         "best F1 | best PA-F1 |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|";
}

std::string markdown_row(const std::string& name, const SeriesReport& r) {
  std::string row = "| " + name + " |";
  for (const double v : {r.auroc, r.auprc, r.point.f1, r.adjusted.f1, r.pa_k_auc, r.range.f1, r.affiliation.precision,
                         r.affiliation.recall, r.vus.roc, r.vus.pr, r.best_point_f1, r.best_adjusted_f1})
    row += std::isnan(v) ? std::string(" – |") : fmt::format(" {:.3f} |", v);
  return row;
}

}  // namespace adx::metrics
