#include <adx/data/drift_features.hpp>
#include <adx/detectors/registry.hpp>
#include <adx/serve/production.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace adx {

void ProductionOptions::check(const std::string& prefix) const {
  // check_options has already refused NaN and infinity in every floating-point field.
  const OptionChecks checks(prefix);
  checks.at_least("latency_window", latency_window(), 1)
      .at_least("rate_window", rate_window(), 1)
      .at_least("drift_window", drift_window(), 1)
      .at_least("drift_min_samples", drift_min_samples(), 1)
      .at_least("feedback_min_labels", feedback_min_labels(), 1)
      .at_least("remembered_items", remembered_items(), 1)
      .that(drift_min_samples() <= drift_window(), "drift_min_samples", "({}) must not exceed '{}' ({})",
            drift_min_samples(), checks.key("drift_window"), drift_window())
      .in("drift_significance", drift_significance(), 0.0, 1.0, "()")
      .in("target_false_positive_rate", target_false_positive_rate(), 0.0, 1.0, "()")
      .above("psi_alert", psi_alert(), 0.0)
      .that(std::isfinite(feedback_max_shift()) && feedback_max_shift() >= 0, "feedback_max_shift",
            "must be finite and >= 0, got {}", feedback_max_shift());
}

namespace {

void check_servable(const Detector* detector) {
  ADX_CHECK_AS(ValueError, detector != nullptr, "a production detector needs a detector, got none");
  ADX_CHECK_AS(NotFittedError, detector->fitted(), "{}: a production detector needs a fitted detector",
               detector->type());
  ADX_CHECK_AS(NotFittedError, detector->calibrated(),
               "{}: a production detector needs a calibrated threshold; call calibrate() or set_threshold()",
               detector->type());
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ProductionDetector::ProductionDetector(std::unique_ptr<Detector> detector, ProductionOptions options)
    : options_(std::move(options)),
      latency_(1),
      rate_alert_(1, 0.5, 0.0) {
  check_options(options_);
  check_servable(detector.get());
  current_ = std::shared_ptr<Detector>(std::move(detector));
  started_ = now();
  reset_monitoring();
}

std::unique_ptr<ProductionDetector> ProductionDetector::from_file(const std::string& path, ProductionOptions options,
                                                                  const std::string& device) {
  return std::make_unique<ProductionDetector>(load(path, device), std::move(options));
}

void ProductionDetector::set_clock(std::function<double()> clock) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  clock_ = std::move(clock);
}

double ProductionDetector::now() const { return clock_ ? clock_() : steady_seconds(); }

void ProductionDetector::reset_monitoring(double resume) {
  threshold_ = initial_threshold_ = current_->threshold();
  // Feedback's bounds: the file's threshold +- feedback_max_shift standard deviations of the calibration
  // scores (of |threshold| when the file keeps fewer than two).
  const auto& calibration = current_->drift_reference().scores;
  double spread = std::abs(threshold_);
  if (calibration.size() >= 2) spread = mean_and_std(calibration).std;
  const bool bounded = options_.feedback_max_shift() > 0 && spread > 0 && std::isfinite(spread);
  feedback_low_ = bounded ? threshold_ - options_.feedback_max_shift() * spread : -std::numeric_limits<double>::infinity();
  feedback_high_ = bounded ? threshold_ + options_.feedback_max_shift() * spread : std::numeric_limits<double>::infinity();
  // The feedback bounds stay centred on the model's own threshold; a resumed one starts inside them.
  if (std::isfinite(resume)) threshold_ = std::clamp(resume, feedback_low_, feedback_high_);
  adaptive_ = options_.adapt_threshold() ? std::make_unique<AdaptiveThreshold>(threshold_, options_.adaptive())
                                         : nullptr;
  latency_ = LatencyWindow(options_.latency_window(), options_.latency_budget_ms());
  rate_alert_ = AnomalyRateAlert(options_.rate_window(), options_.max_anomaly_rate(), options_.alert_cooldown_s());
  items_scored_ = items_flagged_ = nonfinite_scores_ = calls_ = errors_ = rejected_ = 0;
  latency_total_ms_ = 0.0;
  recent_features_.clear();
  recent_scores_.clear();
  remembered_.clear();
  remembered_order_.clear();
  labelled_.clear();
  labelled_order_.clear();
}

ScoredItems ProductionDetector::score(const Data& data) {
  const auto start = std::chrono::steady_clock::now();
  Scores scores;
  DriftFeatures features;
  std::shared_ptr<Detector> model;
  uint64_t generation = 0;
  double threshold_at_start = 0.0;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    model = current_;
    generation = generation_;
    threshold_at_start = threshold_;
  }
  {
    try {
      scores = model->score(data);
      if (model->drift_reference().features.defined()) features = drift_features(data);
    } catch (const ShapeError&) {
      count_rejected_call();  // the caller's input, not the model, was wrong
      throw;
    } catch (const ValueError&) {
      count_rejected_call();
      throw;
    } catch (...) {
      std::lock_guard<std::mutex> lock(state_mutex_);
      ++calls_;
      ++errors_;
      throw;
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const auto per_item = scores.per_item.to(torch::kFloat64).contiguous();
  const auto judged = judged_scores(scores);

  ScoredItems out;
  out.maps = scores.pixel_map;
  std::lock_guard<std::mutex> lock(state_mutex_);
  if (generation != generation_) {
    // A deploy or rollback landed while this call scored: its scores are the old model's, judged by
    // the old model's threshold, and kept out of the new model's monitoring and feedback.
    out.threshold = threshold_at_start;
    for (int64_t i = 0; i < per_item.numel(); ++i) {
      const double s = per_item.data_ptr<double>()[i];
      out.ids.push_back(-1);  // no feedback for a model out of service
      out.scores.push_back(s);
      out.flags.push_back(is_flagged(s, out.threshold));
    }
    return out;
  }
  ++calls_;
  latency_.record(ms);
  latency_total_ms_ += ms;
  out.threshold = threshold_;  // one threshold for the whole call; an adaptive one moves after it
  const double time = now();
  for (int64_t i = 0; i < per_item.numel(); ++i) {
    const double s = per_item.data_ptr<double>()[i];
    const int64_t id = next_id_++;
    out.ids.push_back(id);
    out.scores.push_back(s);
    out.flags.push_back(is_flagged(s, out.threshold));
    nonfinite_scores_ += !std::isfinite(s);
    ++items_scored_;
    items_flagged_ += out.flags.back();
    rate_alert_.update(out.flags.back(), time);
    remembered_[id] = s;
    remembered_order_.push_back(id);
    if (static_cast<int64_t>(remembered_order_.size()) > options_.remembered_items()) {
      remembered_.erase(remembered_order_.front());
      remembered_order_.pop_front();
    }
  }
  for (const double s : judged) {
    if (!std::isfinite(s)) continue;  // counted above; never fed to the adaptive threshold or drift
    if (adaptive_) threshold_ = adaptive_->update(s);
    recent_scores_.push_back(s);
    if (static_cast<int64_t>(recent_scores_.size()) > options_.drift_window()) recent_scores_.pop_front();
  }
  if (features.values.defined()) {
    const auto rows = features.values.contiguous();
    const int64_t width = rows.size(1);
    for (int64_t r = 0; r < rows.size(0); ++r) {
      const float* row = rows.data_ptr<float>() + r * width;
      recent_features_.emplace_back(row, row + width);
      if (static_cast<int64_t>(recent_features_.size()) > options_.drift_window()) recent_features_.pop_front();
    }
  }
  return out;
}

FeedbackResult ProductionDetector::feedback(int64_t id, bool is_anomaly) { return feedback({{id, is_anomaly}}); }

FeedbackResult ProductionDetector::feedback(const std::vector<std::pair<int64_t, bool>>& items) {
  ADX_CHECK_AS(ValueError, !items.empty(), "feedback needs at least one labelled item");
  std::lock_guard<std::mutex> lock(state_mutex_);
  for (const auto& [id, is_anomaly] : items) {
    auto it = remembered_.find(id);
    ADX_CHECK_AS(ValueError, it != remembered_.end(),
                 "feedback for unknown item id {}: it was never scored by this model, or is older than the last {} "
                 "scored items",
                 id, options_.remembered_items());
    ADX_CHECK_AS(ValueError, std::isfinite(it->second),
                 "feedback for item {}: its score was {}, which cannot place a threshold", id, it->second);
  }
  for (const auto& [id, is_anomaly] : items) {
    // Labelling an id again replaces its label, so repeating an id cannot outweigh other items.
    const auto [entry, added] = labelled_.insert_or_assign(id, std::make_pair(is_anomaly ? 1 : 0, remembered_.at(id)));
    (void)entry;
    if (!added) continue;
    labelled_order_.push_back(id);
    if (static_cast<int64_t>(labelled_order_.size()) > options_.remembered_items()) {
      labelled_.erase(labelled_order_.front());
      labelled_order_.pop_front();
    }
  }
  FeedbackResult result;
  result.labels = static_cast<int64_t>(labelled_.size());
  result.threshold = threshold_;
  if (result.labels < options_.feedback_min_labels()) return result;

  std::vector<int> labels;
  std::vector<double> scores, normal_scores;
  labels.reserve(labelled_.size());
  scores.reserve(labelled_.size());
  for (const int64_t id : labelled_order_) {
    const auto& [label, score] = labelled_.at(id);
    labels.push_back(label);
    scores.push_back(score);
    if (!label) normal_scores.push_back(score);
  }
  const auto anomalies = std::count(labels.begin(), labels.end(), 1);
  double next = threshold_;
  if (anomalies > 0 && anomalies < result.labels) {
    result.rule = "best_f1";
    next = best_f1_threshold(labels, scores);
  } else if (anomalies == 0) {
    result.rule = "false_positive_rate";
    const auto flagged = std::count_if(normal_scores.begin(), normal_scores.end(), [&](double s) { return s > threshold_; });
    const double rate = static_cast<double>(flagged) / static_cast<double>(normal_scores.size());
    if (rate > options_.target_false_positive_rate())
      next = std::max(threshold_, quantile(normal_scores, 1.0 - options_.target_false_positive_rate()));
  }
  next = std::clamp(next, feedback_low_, feedback_high_);
  if (next != threshold_ && std::isfinite(next)) {
    threshold_ = initial_threshold_ = next;
    if (adaptive_) adaptive_ = std::make_unique<AdaptiveThreshold>(threshold_, options_.adaptive());
    result.threshold_changed = true;
  }
  result.threshold = threshold_;
  return result;
}

DriftReport ProductionDetector::drift() const {
  std::deque<std::vector<float>> features;
  std::vector<double> scores;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    features = recent_features_;
    scores.assign(recent_scores_.begin(), recent_scores_.end());
  }
  const auto model = detector();
  const auto& reference = model->drift_reference();
  DriftReport report;
  report.samples = static_cast<int64_t>(std::max(features.size(), scores.size()));
  const bool have_features = reference.features.defined() && !features.empty() &&
                             static_cast<int64_t>(features.front().size()) == reference.features.size(1);
  const bool have_scores = !reference.scores.empty() && !scores.empty();
  report.judged = report.samples >= options_.drift_min_samples() && (have_features || have_scores);
  if (!report.judged) return report;

  const size_t tests = (have_features ? static_cast<size_t>(reference.features.size(1)) : 0) + (have_scores ? 1 : 0);
  const double alpha = options_.drift_significance() / static_cast<double>(tests);  // Bonferroni
  auto judge = [&](const std::string& name, const std::vector<double>& ref, const std::vector<double>& cur) {
    FeatureDrift d;
    d.name = name;
    d.psi = population_stability_index(ref, cur);
    d.ks = ks_two_sample(ref, cur, /*exact_limit=*/0);  // asymptotic: every feature, every call, cheaply
    d.drifting = d.ks.p_value < alpha || d.psi > options_.psi_alert();
    if (d.drifting) report.drifting.push_back(name);
    return d;
  };
  if (have_features && static_cast<int64_t>(features.size()) >= options_.drift_min_samples()) {
    const auto ref = reference.features.to(torch::kFloat64).contiguous();
    const int64_t rows = ref.size(0), width = ref.size(1);
    for (int64_t j = 0; j < width; ++j) {
      std::vector<double> r(static_cast<size_t>(rows)), c;
      for (int64_t i = 0; i < rows; ++i) r[static_cast<size_t>(i)] = ref.data_ptr<double>()[i * width + j];
      c.reserve(features.size());
      for (const auto& row : features) c.push_back(row[static_cast<size_t>(j)]);
      report.features.push_back(judge(reference.feature_names[static_cast<size_t>(j)], r, c));
    }
  }
  if (have_scores && static_cast<int64_t>(scores.size()) >= options_.drift_min_samples())
    report.score = judge("score", reference.scores, scores);
  return report;
}

void ProductionDetector::count_rejected_call() {
  std::lock_guard<std::mutex> lock(state_mutex_);
  ++calls_;
  ++rejected_;
}

double ProductionDetector::threshold() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return threshold_;
}

HealthSnapshot ProductionDetector::health() const {
  HealthSnapshot h;
  h.drift = drift();
  std::lock_guard<std::mutex> lock(state_mutex_);
  const auto& info = current_->model_info();
  h.detector = current_->type();
  h.version = info.version;
  h.created_at = info.created_at;
  h.adx_version = info.adx_version;
  h.uptime_s = now() - started_;
  h.items_scored = items_scored_;
  h.items_flagged = items_flagged_;
  h.nonfinite_scores = nonfinite_scores_;
  h.calls = calls_;
  h.errors = errors_;
  h.rejected = rejected_;
  h.threshold = threshold_;
  h.initial_threshold = initial_threshold_;
  h.anomaly_rate = rate_alert_.rate();
  h.rate_alerts = rate_alert_.alerts();
  h.latency = latency_.summary();
  h.latency_total_ms = latency_total_ms_;
  h.feedback_labels = static_cast<int64_t>(labelled_.size());
  h.has_previous_model = previous_ != nullptr;
  return h;
}

void ProductionDetector::deploy(std::unique_ptr<Detector> next) {
  check_servable(next.get());
  std::shared_ptr<Detector> incoming(std::move(next));
  std::lock_guard<std::mutex> lock(state_mutex_);
  previous_ = std::move(current_);
  previous_threshold_ = threshold_;
  current_ = std::move(incoming);
  ++generation_;
  reset_monitoring();
}

void ProductionDetector::deploy_file(const std::string& path, const std::string& device) { deploy(load(path, device)); }

void ProductionDetector::save(const std::string& path) {
  std::lock_guard<std::mutex> saving(save_mutex_);
  std::shared_ptr<Detector> model;
  double threshold = 0.0;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    model = current_;
    threshold = threshold_;
  }
  // Scoring goes on meanwhile: it reads the model's weights, never its stored threshold.
  model->set_threshold(threshold);
  model->save(path);
}

void ProductionDetector::rollback() {
  std::lock_guard<std::mutex> lock(state_mutex_);
  ADX_CHECK_AS(ValueError, previous_ != nullptr, "rollback: no previous model to return to (nothing was deployed after the first)");
  std::swap(current_, previous_);  // a second rollback returns to the newer model
  const double resume = previous_threshold_;
  previous_threshold_ = threshold_;
  ++generation_;
  reset_monitoring(resume);
}

bool ProductionDetector::has_previous() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return previous_ != nullptr;
}

std::shared_ptr<const Detector> ProductionDetector::detector() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return current_;
}

// --- health as JSON and Prometheus text ----------------------------------------------------

namespace {

nlohmann::json drift_json(const FeatureDrift& d) {
  return {{"name", d.name}, {"psi", d.psi}, {"ks_statistic", d.ks.statistic}, {"ks_p_value", d.ks.p_value},
          {"drifting", d.drifting}};
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string HealthSnapshot::to_json() const {
  nlohmann::json j;
  j["detector"] = detector;
  j["version"] = version;
  j["created_at"] = created_at;
  j["adx_version"] = adx_version;
  j["uptime_s"] = uptime_s;
  j["items_scored"] = items_scored;
  j["items_flagged"] = items_flagged;
  j["nonfinite_scores"] = nonfinite_scores;
  j["calls"] = calls;
  j["errors"] = errors;
  j["threshold"] = threshold;
  j["initial_threshold"] = initial_threshold;
  j["anomaly_rate"] = anomaly_rate;
  j["rate_alerts"] = rate_alerts;
  j["latency_ms"] = {{"count", latency.count}, {"mean", latency.mean_ms}, {"p50", latency.p50_ms},
                     {"p95", latency.p95_ms},  {"p99", latency.p99_ms},   {"max", latency.max_ms},
                     {"over_budget", latency.over_budget}};
  nlohmann::json drift_j = {{"samples", drift.samples}, {"judged", drift.judged}, {"drifting", drift.drifting}};
  drift_j["features"] = nlohmann::json::array();
  for (const auto& f : drift.features) drift_j["features"].push_back(drift_json(f));
  drift_j["score"] = drift.score ? drift_json(*drift.score) : nlohmann::json(nullptr);
  j["drift"] = drift_j;
  j["feedback_labels"] = feedback_labels;
  j["has_previous_model"] = has_previous_model;
  j["rejected"] = rejected;
  j["status"] = status();
  return j.dump();
}

std::string HealthSnapshot::status() const {
  const int64_t model_calls = calls - rejected;
  if (errors > 0 && errors == model_calls) return "failing";
  return drift.drifting.empty() ? "ok" : "drift";
}

std::string HealthSnapshot::to_prometheus() const {
  const std::string labels = fmt::format("detector=\"{}\",version=\"{}\"", escape_label(detector), escape_label(version));
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value, const std::string& extra = "") {
    out += fmt::format("# HELP adx_{} {}\n# TYPE adx_{} {}\n", name, help, name, type);
    out += fmt::format("adx_{}{{{}{}}} {}\n", name, labels, extra, value);
  };
  metric("items_scored_total", "counter", "Items scored by the model in service.", static_cast<double>(items_scored));
  metric("items_flagged_total", "counter", "Items flagged as anomalous.", static_cast<double>(items_flagged));
  metric("nonfinite_scores_total", "counter", "Items whose score was not finite (flagged as anomalous).",
         static_cast<double>(nonfinite_scores));
  metric("score_calls_total", "counter", "Scoring calls.", static_cast<double>(calls));
  metric("score_errors_total", "counter", "Scoring calls the model failed on.", static_cast<double>(errors));
  metric("score_rejected_total", "counter", "Scoring calls refused as bad input (the caller's error).",
         static_cast<double>(rejected));
  metric("threshold", "gauge", "Threshold in use.", threshold);
  metric("anomaly_rate", "gauge", "Share of flagged items over the rate window.", anomaly_rate);
  metric("anomaly_rate_alerts_total", "counter", "Anomaly-rate alerts raised.", static_cast<double>(rate_alerts));
  metric("latency_over_budget_total", "counter", "Scoring calls slower than the budget.",
         static_cast<double>(latency.over_budget));
  // A summary: quantiles over the latency window; _sum and _count over every call since the model went
  // into service, so that rate(_sum) / rate(_count) gives the mean latency over any interval.
  out += "# HELP adx_latency_ms Scoring latency in milliseconds (quantiles over the latency window).\n"
         "# TYPE adx_latency_ms summary\n";
  for (const auto& [q, v] : {std::pair<const char*, double>{"0.5", latency.p50_ms}, {"0.95", latency.p95_ms},
                             {"0.99", latency.p99_ms}})
    out += fmt::format("adx_latency_ms{{{},quantile=\"{}\"}} {}\n", labels, q, v);
  out += fmt::format("adx_latency_ms_sum{{{}}} {}\n", labels, latency_total_ms);
  out += fmt::format("adx_latency_ms_count{{{}}} {}\n", labels, calls - rejected - errors);
  metric("drifting_features", "gauge", "Features (and the score) drifting against the training reference.",
         static_cast<double>(drift.drifting.size()));
  if (!drift.features.empty() || drift.score) {
    out += "# HELP adx_drift_psi Population stability index against the training reference.\n# TYPE adx_drift_psi gauge\n";
    std::string ks = "# HELP adx_drift_ks_p_value KS test p-value against the training reference.\n"
                     "# TYPE adx_drift_ks_p_value gauge\n";
    auto add = [&](const FeatureDrift& d) {
      out += fmt::format("adx_drift_psi{{{},feature=\"{}\"}} {}\n", labels, escape_label(d.name), d.psi);
      ks += fmt::format("adx_drift_ks_p_value{{{},feature=\"{}\"}} {}\n", labels, escape_label(d.name), d.ks.p_value);
    };
    for (const auto& f : drift.features) add(f);
    if (drift.score) add(*drift.score);
    out += ks;
  }
  metric("feedback_labels", "gauge", "Operator labels received for the model in service.",
         static_cast<double>(feedback_labels));
  metric("uptime_seconds", "gauge", "Seconds since the production detector started.", uptime_s);
  return out;
}

}  // namespace adx
