#pragma once
// A fitted detector as a deployment runs it: scoring from many threads at once, a threshold
// that can follow recent scores within bounds, input and score drift against the training
// reference (PSI and the KS test, naming the drifting features), latency against a budget,
// an anomaly-rate alert, operator feedback that recalibrates the threshold, a health
// snapshot (JSON, Prometheus text), and a previous model kept for rollback.
#include <adx/detectors/detector.hpp>
#include <adx/serve/monitoring.hpp>
#include <adx/threshold/threshold.hpp>

#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace adx {

struct ProductionOptions {
  ADX_OPTIONS_STRUCT;
  /// Let the threshold follow recent scores (see adaptive.*); off keeps the calibrated one.
  ADX_ARG(bool, adapt_threshold) = false;
  /// Window, percentile, smoothing and bounds of the adaptive threshold.
  ADX_ARG(AdaptiveThresholdOptions, adaptive) = AdaptiveThresholdOptions();
  /// Scoring calls the latency percentiles are taken over.
  ADX_ARG(int64_t, latency_window) = 1000;
  /// Per-call latency budget in milliseconds (0 = none); slower calls are counted.
  ADX_ARG(double, latency_budget_ms) = 0.0;
  /// Items the anomaly rate is taken over.
  ADX_ARG(int64_t, rate_window) = 1000;
  /// Alert when more than this share of the window is flagged.
  ADX_ARG(double, max_anomaly_rate) = 0.05;
  /// Seconds between two anomaly-rate alerts.
  ADX_ARG(double, alert_cooldown_s) = 300.0;
  /// Recent items (their drift features and scores) kept for the drift tests.
  ADX_ARG(int64_t, drift_window) = 1000;
  /// Items needed before drift is judged.
  ADX_ARG(int64_t, drift_min_samples) = 200;
  /// Family-wise significance of the KS tests (Bonferroni over the features and the score).
  ADX_ARG(double, drift_significance) = 0.01;
  /// A PSI above this is drift whatever the KS test says (0.25: the usual "significant shift").
  ADX_ARG(double, psi_alert) = 0.25;
  /// Labelled items needed before feedback moves the threshold.
  ADX_ARG(int64_t, feedback_min_labels) = 20;
  /// With labels of normal items only: the threshold rises until at most this share of them is flagged.
  ADX_ARG(double, target_false_positive_rate) = 0.01;
  /// Scored items remembered (by id) for feedback, and labels kept for recalibration.
  ADX_ARG(int64_t, remembered_items) = 100000;
  /// Feedback moves the threshold at most this many standard deviations of the model's calibration
  /// scores (its normal held-out scores) away from the model file's threshold (0 = unbounded), so a
  /// burst of wrong labels cannot silence the detector or make it flag everything. Legitimate
  /// recalibrations can move it more than 3 of them (the tests saw one), hence 10.
  ADX_ARG(double, feedback_max_shift) = 10.0;

 public:
  void check(const std::string& prefix) const;
};

/// What one scoring call returns.
struct ScoredItems {
  std::vector<int64_t> ids;     ///< one per item, for feedback (-1: the model was replaced during the call)
  std::vector<double> scores;   ///< per item
  std::vector<bool> flags;      ///< score > threshold
  double threshold = 0.0;       ///< the threshold the flags were judged with
  at::Tensor maps;              ///< image detectors with maps: N x 1 x H x W (else undefined)
};

struct FeatureDrift {
  std::string name;
  double psi = 0.0;
  KsResult ks;
  bool drifting = false;
};

struct DriftReport {
  int64_t samples = 0;                     ///< recent items the tests used
  bool judged = false;                     ///< samples >= drift_min_samples and a reference exists
  std::vector<FeatureDrift> features;      ///< one per drift feature (empty without a feature reference)
  std::optional<FeatureDrift> score;       ///< the scores against the calibration scores
  std::vector<std::string> drifting;       ///< names of the drifting features ("score" for the scores)
};

struct FeedbackResult {
  bool threshold_changed = false;
  double threshold = 0.0;
  int64_t labels = 0;         ///< labelled items so far
  std::string rule;           ///< "best_f1", "false_positive_rate" or "" (not enough labels yet)
};

struct HealthSnapshot {
  std::string detector, version, created_at, adx_version;
  double uptime_s = 0.0;
  int64_t items_scored = 0, items_flagged = 0, calls = 0;
  int64_t errors = 0;    ///< calls the model failed on (not the caller's bad input)
  int64_t rejected = 0;  ///< calls refused as bad input (wrong shape, NaN, malformed request)
  int64_t nonfinite_scores = 0;  ///< items whose score was NaN or infinite; each is flagged
  double threshold = 0.0, initial_threshold = 0.0;
  double anomaly_rate = 0.0;  ///< over the rate window
  int64_t rate_alerts = 0;
  LatencySummary latency;       ///< over the latency window
  double latency_total_ms = 0;  ///< summed over every successful model call since the model went into service
  DriftReport drift;
  int64_t feedback_labels = 0;
  bool has_previous_model = false;

  /// "failing" when every call that reached the model failed, "drift" when features drift, else "ok".
  std::string status() const;
  std::string to_json() const;
  /// Prometheus text exposition format (version 0.0.4), metric names prefixed "adx_".
  std::string to_prometheus() const;
};

class ProductionDetector {
 public:
  /// Takes a fitted and calibrated detector.
  explicit ProductionDetector(std::unique_ptr<Detector> detector, ProductionOptions options = ProductionOptions());
  /// Loads a model file (see adx::load).
  static std::unique_ptr<ProductionDetector> from_file(const std::string& path,
                                                       ProductionOptions options = ProductionOptions(),
                                                       const std::string& device = "");

  /// Scores a batch; safe to call from many threads at once. Errors (bad input) are counted and rethrown.
  ScoredItems score(const Data& data);
  /// Records an operator's label for a scored item; enough labels recalibrate the threshold:
  /// both classes present -> the best-F1 threshold on the labelled items; normal items only ->
  /// raised, if needed, to the (1 - target_false_positive_rate) quantile of their scores. The move is
  /// clamped to feedback_max_shift. Labelling an id again replaces its label.
  FeedbackResult feedback(int64_t id, bool is_anomaly);
  /// Many labels, (id, is_anomaly), recalibrating once: O(n log n) in the labels kept. Every id is
  /// checked before any label is recorded, so a bad id leaves the state as it was.
  FeedbackResult feedback(const std::vector<std::pair<int64_t, bool>>& labels);
  /// Input and score drift of the recent items against the training reference.
  DriftReport drift() const;
  HealthSnapshot health() const;
  /// Counts a scoring request refused as the caller's error (a server's malformed request): it shows
  /// as a rejected call in the health snapshot, not as a model error.
  void count_rejected_call();
  double threshold() const;

  /// Puts `next` (fitted and calibrated, of the same input kind) in service and keeps the current model
  /// for rollback(); monitoring restarts for the new model.
  void deploy(std::unique_ptr<Detector> next);
  void deploy_file(const std::string& path, const std::string& device = "");
  /// Writes the model in service with the threshold now in force (adapted or recalibrated by feedback),
  /// so that the next start begins where this one is. Scoring goes on while it writes.
  void save(const std::string& path);
  /// Returns to the model before the last deploy(), with the threshold that was in force when it left
  /// service (as feedback or adaptation had moved it); an error when there is none.
  void rollback();
  bool has_previous() const;
  /// The model in service: a snapshot that stays valid whatever deploy() or rollback() do meanwhile.
  std::shared_ptr<const Detector> detector() const;

  /// Seconds since an arbitrary start; replaceable for tests (cooldowns, uptime).
  void set_clock(std::function<double()> clock);

 private:
  // Monitoring restarts for the model in service, its threshold `resume` when given (NaN: its own).
  void reset_monitoring(double resume = std::numeric_limits<double>::quiet_NaN());
  double now() const;

  ProductionOptions options_;
  // The model in service and its monitoring state, behind one mutex held only briefly: a scoring call
  // takes a snapshot (the model, its generation, the threshold), scores without the lock, and records
  // its results only if no deploy() or rollback() changed the generation meanwhile.
  mutable std::mutex state_mutex_;
  std::mutex save_mutex_;  // one save at a time
  std::shared_ptr<Detector> current_, previous_;
  uint64_t generation_ = 0;
  std::function<double()> clock_;
  double started_ = 0.0;
  double threshold_ = 0.0, initial_threshold_ = 0.0;
  double previous_threshold_ = 0.0;  ///< in force when the previous model left service
  double feedback_low_ = 0.0, feedback_high_ = 0.0;  ///< where feedback may move the threshold
  std::unique_ptr<AdaptiveThreshold> adaptive_;
  LatencyWindow latency_;
  double latency_total_ms_ = 0.0;
  AnomalyRateAlert rate_alert_;
  int64_t next_id_ = 0, items_scored_ = 0, items_flagged_ = 0, nonfinite_scores_ = 0, calls_ = 0, errors_ = 0,
          rejected_ = 0;
  std::deque<std::vector<float>> recent_features_;
  std::deque<double> recent_scores_;
  std::unordered_map<int64_t, double> remembered_;  ///< id -> score
  std::deque<int64_t> remembered_order_;
  std::unordered_map<int64_t, std::pair<int, double>> labelled_;  ///< id -> (is_anomaly, score)
  std::deque<int64_t> labelled_order_;                            ///< ids in the order first labelled
};

}  // namespace adx
