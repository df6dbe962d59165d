#include <adx/metrics/metrics.hpp>
#include <adx/threshold/threshold.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace adx {
namespace {

void check_scores(const std::vector<double>& scores, int64_t needed, const char* what) {
  ADX_CHECK_AS(ValueError, static_cast<int64_t>(scores.size()) >= needed,
               "{} calibration needs at least {} normal scores, got {}", what, needed, scores.size());
  for (size_t i = 0; i < scores.size(); ++i)
    ADX_CHECK_AS(ValueError, std::isfinite(scores[i]), "calibration score at index {} is not finite ({})", i,
                 scores[i]);
}

}  // namespace

MeanStd mean_and_std(const std::vector<double>& values) {
  ADX_CHECK_AS(ValueError, values.size() >= 2, "a standard deviation needs two or more values, got {}", values.size());
  const double n = static_cast<double>(values.size());
  MeanStd moments;
  moments.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double squares = 0.0;
  for (const double v : values) squares += (v - moments.mean) * (v - moments.mean);
  moments.std = std::sqrt(squares / (n - 1.0));
  return moments;
}

int64_t min_calibration_samples(const ThresholdOptions& options) {
  switch (options.policy()) {
    case ThresholdPolicy::MeanStd: return 2;
    case ThresholdPolicy::Percentile: return 10;
    case ThresholdPolicy::Contamination: return 10;
    case ThresholdPolicy::BestF1: return 2;
    case ThresholdPolicy::Pot:
      // At least 10 peaks above the initial level.
      return static_cast<int64_t>(std::ceil(10.0 / (1.0 - options.pot_level())));
  }
  return 2;
}

double quantile(std::vector<double> values, double q) {
  ADX_CHECK_AS(ValueError, !values.empty(), "quantile of an empty set");
  ADX_CHECK_AS(ValueError, q >= 0.0 && q <= 1.0, "quantile level must be in [0, 1], got {}", q);
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

// z_q = t + sigma / gamma * (r^-gamma - 1), r = q n / N_t: the POT quantile above level t.
static double tail_quantile(double t, const GpdFit& fit, double r) {
  if (std::abs(fit.shape) < 1e-9) return t - fit.scale * std::log(r);
  return t + fit.scale / fit.shape * (std::pow(r, -fit.shape) - 1.0);
}

namespace {

// Grimshaw's w(x) = u(x) v(x) - 1 with u = 1 + mean log(1 + x y), v = mean 1 / (1 + x y):
// its roots are the stationary points of the GPD profile likelihood in x = gamma / sigma.
double grimshaw_w(const std::vector<double>& y, double x) {
  double sum_log = 0.0, sum_inv = 0.0;
  for (double v : y) {
    const double t = 1.0 + x * v;
    sum_log += std::log(t);
    sum_inv += 1.0 / t;
  }
  const double n = static_cast<double>(y.size());
  return (1.0 + sum_log / n) * (sum_inv / n) - 1.0;
}

// Every root of w on [lo, hi]: sign changes on a grid (geometric when both ends are
// positive, since the right interval can span many decades), each refined by bisection.
std::vector<double> grimshaw_roots(const std::vector<double>& y, double lo, double hi) {
  std::vector<double> roots;
  if (!(hi > lo)) return roots;
  constexpr int kGrid = 1000;
  const bool geometric = lo > 0;
  auto at = [&](int i) {
    const double f = static_cast<double>(i) / kGrid;
    return geometric ? lo * std::pow(hi / lo, f) : lo + (hi - lo) * f;
  };
  double x0 = at(0), w0 = grimshaw_w(y, x0);
  for (int i = 1; i <= kGrid; ++i) {
    const double x1 = at(i), w1 = grimshaw_w(y, x1);
    if (std::isfinite(w0) && std::isfinite(w1) && (w0 == 0.0 || (w0 < 0) != (w1 < 0))) {
      double a = x0, b = x1, wa = w0;
      for (int it = 0; it < 200 && b - a > 1e-15 * std::max(1.0, std::abs(a)); ++it) {
        const double m = 0.5 * (a + b), wm = grimshaw_w(y, m);
        if ((wm < 0) == (wa < 0)) a = m, wa = wm;
        else b = m;
      }
      roots.push_back(0.5 * (a + b));
    }
    x0 = x1;
    w0 = w1;
  }
  return roots;
}

// Log-likelihood of excesses y under GPD(gamma, sigma); -inf outside the support.
double gpd_loglik(const std::vector<double>& y, double gamma, double sigma) {
  const double n = static_cast<double>(y.size());
  if (!(sigma > 0)) return -std::numeric_limits<double>::infinity();
  if (gamma == 0.0) return -n * std::log(sigma) - std::accumulate(y.begin(), y.end(), 0.0) / sigma;
  double sum_log = 0.0;
  for (double v : y) {
    const double t = 1.0 + gamma / sigma * v;
    if (t <= 0) return -std::numeric_limits<double>::infinity();
    sum_log += std::log(t);
  }
  return -n * std::log(sigma) - (1.0 + 1.0 / gamma) * sum_log;
}

}  // namespace

GpdFit fit_generalized_pareto(const std::vector<double>& y) {
  ADX_CHECK_AS(ValueError, y.size() >= 3, "GPD fit needs at least 3 excesses, got {}", y.size());
  const double ymax = *std::max_element(y.begin(), y.end());
  const double ymin = std::max(*std::min_element(y.begin(), y.end()), 1e-300);
  const double ymean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
  ADX_CHECK_AS(ValueError, ymax > 0, "GPD fit needs positive excesses");
  // Grimshaw (1993): the maximum-likelihood estimate is the exponential fit (x = 0) or a
  // root of w in (-1/ymax, 0) or (0, 2(ymean-ymin)/ymin^2]; the candidate of highest
  // likelihood wins. Only true roots count, so a bounded tail, whose likelihood grows
  // without limit towards x = -1/ymax, falls back to the exponential fit instead of the
  // edge of a search range. Roots within 1e-4/ymax of 0 are the exponential fit itself
  // (w vanishes there to rounding error).
  const double near_zero = 1e-4 / ymax;
  std::vector<double> roots = grimshaw_roots(y, -1.0 / ymax * (1.0 - 1e-9), -near_zero);
  const auto right = grimshaw_roots(y, near_zero, std::max(2 * (ymean - ymin) / (ymin * ymin), 2 * near_zero));
  roots.insert(roots.end(), right.begin(), right.end());
  GpdFit best;
  best.shape = 0.0;
  best.scale = ymean;
  double best_ll = gpd_loglik(y, 0.0, ymean);
  for (const double x : roots) {
    double sum_log = 0.0;
    for (double v : y) sum_log += std::log1p(x * v);
    const double gamma = sum_log / static_cast<double>(y.size());
    const double sigma = gamma / x;
    const double ll = gpd_loglik(y, gamma, sigma);
    if (ll > best_ll) {
      best_ll = ll;
      best.shape = gamma;
      best.scale = sigma;
    }
  }
  return best;
}

double pot_threshold(const std::vector<double>& scores, double risk, double level) {
  ADX_CHECK_AS(ValueError, risk > 0 && risk < 1, "POT risk must be in (0, 1), got {}", risk);
  ADX_CHECK_AS(ValueError, level > 0 && level < 1, "POT level must be in (0, 1), got {}", level);
  const double t = quantile(scores, level);
  std::vector<double> excesses;
  for (double s : scores)
    if (s > t) excesses.push_back(s - t);
  ADX_CHECK_AS(ValueError, excesses.size() >= 3,
               "POT found only {} scores above its initial level {} (quantile {}); use more data", excesses.size(),
               t, level);
  const double n = static_cast<double>(scores.size());
  const double nt = static_cast<double>(excesses.size());
  const double r = risk * n / nt;
  // The risk must lie inside the tail, otherwise the initial level already covers it.
  if (r >= 1.0) return quantile(scores, 1.0 - risk);
  return tail_quantile(t, fit_generalized_pareto(excesses), r);
}

double anomaly_ratio_threshold(const std::vector<double>& train_scores, const std::vector<double>& test_scores,
                               double ratio_percent) {
  ADX_CHECK_AS(ValueError, ratio_percent > 0 && ratio_percent < 100, "anomaly ratio must be in (0, 100) percent, got {}",
               ratio_percent);
  std::vector<double> all = train_scores;
  all.insert(all.end(), test_scores.begin(), test_scores.end());
  check_scores(all, 1, "anomaly_ratio");
  return quantile(std::move(all), 1.0 - ratio_percent / 100.0);
}

Spot::Spot(SpotOptions options) : options_(std::move(options)) {
  ADX_CHECK_AS(OptionError, options_.risk() > 0 && options_.risk() < 1, "SPOT risk must be in (0, 1), got {}",
               options_.risk());
  ADX_CHECK_AS(OptionError, options_.level() > 0 && options_.level() < 1, "SPOT level must be in (0, 1), got {}",
               options_.level());
  ADX_CHECK_AS(OptionError, options_.depth() >= 0, "DSPOT depth must be >= 0, got {}", options_.depth());
}

double Spot::local_mean() const {
  if (window_.empty()) return 0.0;
  return std::accumulate(window_.begin(), window_.end(), 0.0) / static_cast<double>(window_.size());
}

void Spot::refit() {
  const double r = options_.risk() * static_cast<double>(seen_) / static_cast<double>(peaks_.size());
  tail_threshold_ = tail_quantile(level_value_, fit_generalized_pareto(peaks_), r);
}

void Spot::initialize(const std::vector<double>& scores) {
  const auto depth = static_cast<size_t>(options_.depth());
  check_scores(scores, static_cast<int64_t>(depth) + 3, "SPOT");
  // DSPOT: each initial score relative to the mean of the `depth` scores before it.
  std::vector<double> relative;
  double sum = 0.0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (i >= depth) relative.push_back(scores[i] - (depth > 0 ? sum / static_cast<double>(depth) : 0.0));
    sum += scores[i];
    if (depth > 0 && i >= depth) sum -= scores[i - depth];
  }
  window_.assign(scores.end() - static_cast<std::ptrdiff_t>(depth), scores.end());
  window_next_ = 0;
  level_value_ = quantile(relative, options_.level());
  peaks_.clear();
  for (double v : relative)
    if (v > level_value_) peaks_.push_back(v - level_value_);
  ADX_CHECK_AS(ValueError, peaks_.size() >= 3,
               "SPOT found only {} initial scores above its level {} (quantile {}); initialise with more scores",
               peaks_.size(), level_value_, options_.level());
  seen_ = static_cast<int64_t>(relative.size());
  refit();
  initialized_ = true;
}

bool Spot::update(double score) {
  ADX_CHECK_AS(NotFittedError, initialized_, "SPOT: update() called before initialize()");
  ADX_CHECK_AS(ValueError, std::isfinite(score), "SPOT: score {} is not finite", score);
  const double value = score - local_mean();
  if (value > tail_threshold_) return true;  // alarms never teach the model
  ++seen_;
  if (value > level_value_) {
    peaks_.push_back(value - level_value_);
    refit();
  }
  if (!window_.empty()) {
    window_[window_next_] = score;
    window_next_ = (window_next_ + 1) % window_.size();
  }
  return false;
}

double Spot::threshold() const {
  ADX_CHECK_AS(NotFittedError, initialized_, "SPOT: threshold() called before initialize()");
  return tail_threshold_ + local_mean();
}

void ThresholdOptions::check(const std::string& prefix) const {
  // k may be any finite number; check_options refuses NaN and infinity for every field.
  OptionChecks(prefix)
      .in("percentile", percentile(), 0.0, 100.0, "()")
      .in("contamination", contamination(), 0.0, 0.5, "(]")
      .in("risk", risk(), 0.0, 1.0, "()")
      .in("pot_level", pot_level(), 0.0, 1.0, "()");
}

double fit_threshold(const std::vector<double>& scores, const ThresholdOptions& o) {
  check_options(o);
  const char* name = EnumNames<ThresholdPolicy>::table()[static_cast<size_t>(o.policy())].second;
  check_scores(scores, min_calibration_samples(o), name);
  switch (o.policy()) {
    case ThresholdPolicy::MeanStd: {
      const auto moments = mean_and_std(scores);
      return moments.mean + o.k() * moments.std;
    }
    case ThresholdPolicy::Percentile: return quantile(scores, o.percentile() / 100.0);
    case ThresholdPolicy::Contamination: return quantile(scores, 1.0 - o.contamination());
    case ThresholdPolicy::Pot: return pot_threshold(scores, o.risk(), o.pot_level());
    case ThresholdPolicy::BestF1:
      throw OptionError("the best_f1 threshold needs labelled calibration data; call calibrate with labels");
  }
  throw OptionError("unknown threshold policy");
}

double best_f1_threshold(const std::vector<int>& labels, const std::vector<double>& scores) {
  return metrics::best_f1(labels, scores).threshold;
}

void AdaptiveThresholdOptions::check(const std::string& prefix) const {
  const OptionChecks checks(prefix);
  checks.at_least("window", window(), 1)
      .in("percentile", percentile(), 0.0, 100.0, "()")
      .in("smoothing", smoothing(), 0.0, 1.0, "(]")
      .at_least("max_rise", max_rise(), 0.0)
      .at_least("max_fall", max_fall(), 0.0)
      .that(min_samples() >= 1 && min_samples() <= window(), "min_samples", "must be in [1, '{}' = {}], got {}",
            checks.key("window"), window(), min_samples());
}

AdaptiveThreshold::AdaptiveThreshold(double initial, AdaptiveThresholdOptions options)
    : options_(std::move(options)), value_(initial) {
  check_options(options_);
  ADX_CHECK_AS(ValueError, std::isfinite(initial), "adaptive threshold: the initial value must be finite, got {}",
               initial);
  lower_ = initial - options_.max_fall() * std::abs(initial);
  upper_ = initial + options_.max_rise() * std::abs(initial);
  recent_.reserve(static_cast<size_t>(options_.window()));
}

double AdaptiveThreshold::update(double score) {
  ADX_CHECK_AS(ValueError, std::isfinite(score), "adaptive threshold: score {} is not finite", score);
  if (recent_.size() < static_cast<size_t>(options_.window())) {
    recent_.push_back(score);
  } else {
    recent_[next_] = score;
    next_ = (next_ + 1) % recent_.size();
  }
  if (++seen_ >= options_.min_samples()) {
    const double target = quantile(recent_, options_.percentile() / 100.0);
    value_ = std::clamp(value_ + options_.smoothing() * (target - value_), lower_, upper_);
  }
  return value_;
}

}  // namespace adx
