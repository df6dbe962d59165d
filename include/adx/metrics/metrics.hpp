#pragma once
// Detection metrics on per-item scores (higher = more anomalous) and binary
// labels (1 = anomaly). Exact, with ties handled the way scikit-learn handles
// them: tied scores form one threshold step. Light header: no LibTorch.
#include <cstdint>
#include <vector>

namespace adx::metrics {

/// Area under the ROC curve (trapezoidal over distinct thresholds), as sklearn.roc_auc_score.
double roc_auc(const std::vector<int>& labels, const std::vector<double>& scores);

/// Average precision, sum over thresholds of (R_n - R_{n-1}) * P_n, as sklearn.average_precision_score.
double average_precision(const std::vector<int>& labels, const std::vector<double>& scores);

struct PrecisionRecallF1 {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
  int64_t true_positives = 0;
  int64_t false_positives = 0;
  int64_t false_negatives = 0;
};

/// Precision, recall and F1 when items with score > threshold are called anomalous.
/// Precision is 0 when nothing is flagged (sklearn's zero_division=0).
PrecisionRecallF1 precision_recall_f1(const std::vector<int>& labels, const std::vector<double>& scores,
                                      double threshold);

struct BestF1 {
  double f1 = 0.0;
  double precision = 0.0;
  double recall = 0.0;
  double threshold = 0.0;  ///< flag items with score > threshold to reach this F1
};

/// Share of the anomalies among the k highest scores: |top-k ∩ anomalies| / number of anomalies
/// (ties at the k-th score broken by index order).
double recall_at_k(const std::vector<int>& labels, const std::vector<double>& scores, int64_t k);

/// Min-max normalisation of per-step scores within each sequence, as video papers report frame
/// scores (each test video scaled to [0, 1]): `lengths` splits `scores` into consecutive sequences.
/// NaN (a step never scored) stays NaN; a sequence with one distinct value becomes 0.
std::vector<double> min_max_per_sequence(const std::vector<double>& scores, const std::vector<int64_t>& lengths);

/// Best F1 over every distinct threshold (the points of sklearn's precision_recall_curve).
BestF1 best_f1(const std::vector<int>& labels, const std::vector<double>& scores);

}  // namespace adx::metrics
