// Time series: metrics against hand-worked values, streaming thresholds, series
// files, the generator, and every time-series detector (beats chance, save/load).
#include <adx/base.hpp>
#include <adx/data/generators/synthetic_series.hpp>
#include <adx/detectors/anomaly_transformer/anomaly_transformer.hpp>
#include <adx/detectors/forecaster/forecaster.hpp>
#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include <adx/detectors/lstm_autoencoder/lstm_autoencoder.hpp>
#include <adx/detectors/matrix_profile/matrix_profile.hpp>
#include <adx/detectors/stream.hpp>
#include <adx/detectors/tcn_autoencoder/tcn_autoencoder.hpp>
#include <adx/detectors/vae/vae.hpp>
#include <adx/metrics/series_metrics.hpp>
#include <adx/threshold/threshold.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>

#include "test_helpers.hpp"

using namespace adx;
using namespace adx::metrics;
using Catch::Matchers::Contains;
using adx::test::temp_path;
using adx::test::to_doubles;
using adx::test::to_ints;
using adx::test::to_longs;

namespace adx::metrics {
std::ostream& operator<<(std::ostream& out, const Range& r) { return out << "[" << r.begin << ", " << r.end << ")"; }
}  // namespace adx::metrics

namespace {




void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

}  // namespace

// ---- metrics, worked by hand ------------------------------------------------

// labels:      0 1 1 1 0 0 1 1 0 0   ranges [1,4) and [6,8)
// predictions: 0 0 1 0 0 0 0 0 0 1   runs [2,3) and [9,10)
const std::vector<int> kLabels{0, 1, 1, 1, 0, 0, 1, 1, 0, 0};
const std::vector<int> kPredicted{0, 0, 1, 0, 0, 0, 0, 0, 0, 1};

TEST_CASE("series metrics: ranges and point-wise figures", "[series][metrics]") {
  REQUIRE(ranges_of(kLabels) == std::vector<Range>{{1, 4}, {6, 8}});
  REQUIRE(ranges_of({1, 1, 0, 1}) == std::vector<Range>{{0, 2}, {3, 4}});
  // TP = 1 (step 2), FP = 1 (step 9), FN = 4.
  const auto p = point_precision_recall_f1(kLabels, kPredicted);
  REQUIRE(p.precision == Approx(0.5));
  REQUIRE(p.recall == Approx(0.2));
  REQUIRE(p.f1 == Approx(2 * 0.5 * 0.2 / 0.7));
  REQUIRE(predictions_above({0.1, 0.5, 0.7}, 0.5) == std::vector<int>{0, 0, 1});
}

TEST_CASE("series metrics: point adjustment and PA%K", "[series][metrics]") {
  // PA: one hit in [1,4) marks it all; [6,8) has none. TP 3, FP 1, FN 2.
  REQUIRE(adjust_predictions(kLabels, kPredicted) == std::vector<int>{0, 1, 1, 1, 0, 0, 0, 0, 0, 1});
  const auto pa = pa_k_f1(kLabels, kPredicted, 0);
  REQUIRE(pa.precision == Approx(0.75));
  REQUIRE(pa.recall == Approx(0.6));
  REQUIRE(pa.f1 == Approx(2.0 / 3.0));
  // 1 hit of 3 is 33%: adjusted at K = 30, not at K = 50 (strictly more than K% needed).
  REQUIRE(adjust_predictions(kLabels, kPredicted, 30)[1] == 1);
  REQUIRE(adjust_predictions(kLabels, kPredicted, 50) == kPredicted);
  REQUIRE(adjust_predictions(kLabels, kPredicted, 100) == kPredicted);
  // F1 is 2/3 at K = 0 and 2/7 at K = 50 and 100: area = (0.5 (2/3 + 2/7) 50 + 0.5 (4/7) 50) / 100 = 8/21.
  REQUIRE(pa_k_auc(kLabels, kPredicted, {0, 50, 100}) == Approx(8.0 / 21.0));
  REQUIRE_THROWS_AS(adjust_predictions(kLabels, kPredicted, 120), ValueError);
}

TEST_CASE("series metrics: range-based precision and recall (Tatbul et al.)", "[series][metrics]") {
  // Recall: [1,4) is 1/3 covered, [6,8) not at all -> (1/3 + 0) / 2. Precision: [2,3) lies
  // inside a range (1), [9,10) outside (0) -> 1/2.
  auto r = range_precision_recall(kLabels, kPredicted);
  REQUIRE(r.recall == Approx(1.0 / 6.0));
  REQUIRE(r.precision == Approx(0.5));
  REQUIRE(r.f1 == Approx(0.25));
  // alpha = 0.5: [1,4) earns 0.5 * existence 1 + 0.5 * 1/3.
  REQUIRE(range_precision_recall(kLabels, kPredicted, {0.5}).recall == Approx((0.5 + 0.5 / 3.0) / 2.0));

  // Cardinality: one range [0,6) hit by two runs covering 4 of 6 steps.
  const std::vector<int> one_range{1, 1, 1, 1, 1, 1, 0, 0};
  const std::vector<int> two_runs{1, 1, 0, 0, 1, 1, 0, 0};
  REQUIRE(range_precision_recall(one_range, two_runs).recall == Approx(0.5 * 4.0 / 6.0));
  REQUIRE(range_precision_recall(one_range, two_runs, {0.0, RangeBias::Flat, false}).recall == Approx(4.0 / 6.0));
  REQUIRE(range_precision_recall(one_range, two_runs).precision == Approx(1.0));

  // Positional bias on a range of 4 whose first step is found: delta = 4,3,2,1 (front),
  // 1,2,3,4 (back), 1,2,2,1 (middle).
  const std::vector<int> four{1, 1, 1, 1, 0};
  const std::vector<int> first{1, 0, 0, 0, 0};
  REQUIRE(range_precision_recall(four, first, {0.0, RangeBias::Front}).recall == Approx(4.0 / 10.0));
  REQUIRE(range_precision_recall(four, first, {0.0, RangeBias::Back}).recall == Approx(1.0 / 10.0));
  REQUIRE(range_precision_recall(four, first, {0.0, RangeBias::Middle}).recall == Approx(1.0 / 6.0));
}

TEST_CASE("series metrics: affiliation precision and recall (Huet et al.)", "[series][metrics]") {
  // One range [4,6) in a series of 10 (zone [0,10)), one prediction [0,1).
  // Precision: a point y of [0,1) lies 4 - y from the range; a random point of the zone is
  // at least that far with probability (y + y) / 10, so precision = int_0^1 2y/10 dy = 0.1.
  // Recall: x in [4,6) is x - 1 from the prediction; a random point is at least that far
  // with probability (1 + max(0, 11 - 2x)) / 10; the mean over [4,6) is (2 + 2.25) / 10 / 2.
  std::vector<int> labels(10, 0), predicted(10, 0);
  labels[4] = labels[5] = 1;
  predicted[0] = 1;
  auto a = affiliation(labels, predicted);
  REQUIRE(a.precision == Approx(0.1));
  REQUIRE(a.recall == Approx(0.2125));
  // A perfect prediction scores 1 and 1.
  a = affiliation(labels, labels);
  REQUIRE(a.precision == Approx(1.0));
  REQUIRE(a.recall == Approx(1.0));
  // Two ranges, zones [0,5) and [5,10): only the first is predicted (exactly). Precision
  // averages over zones with predictions (1), recall over all ranges ((1 + 0) / 2).
  std::vector<int> two(10, 0), only_first(10, 0);
  two[2] = two[7] = 1;
  only_first[2] = 1;
  a = affiliation(two, only_first);
  REQUIRE(a.precision == Approx(1.0));
  REQUIRE(a.recall == Approx(0.5));
  REQUIRE_THROWS_AS(affiliation(std::vector<int>(5, 0), std::vector<int>(5, 0)), ValueError);
}

TEST_CASE("series metrics: VUS-ROC and VUS-PR (Paparrizos et al.)", "[series][metrics]") {
  // Four steps, the anomaly (step 1) has the second-lowest score. With 4 thresholds
  // (0.9, 0.3, 0.2, 0.1) and no buffer: TPR 0,0,1,1 and FPR 1/3,2/3,2/3,1, so
  // range-AUC-ROC = 1/3 (the point-wise AUROC); precision 0,0,1/3,1/4, and the recall step at the third
  // threshold times the precision there gives AP = 1/3.
  const std::vector<int> labels{0, 1, 0, 0};
  const std::vector<double> scores{0.1, 0.2, 0.9, 0.3};
  auto v = vus(labels, scores, 0, 4);
  REQUIRE(v.roc == Approx(1.0 / 3.0));
  REQUIRE(v.pr == Approx(1.0 / 3.0));
  // Buffer 2 ramps one step either side: r = sqrt(1 - 1/2) on steps 0 and 2. P' = (P + P + the ramp's
  // flagged soft labels) / 2 depends on the threshold: (2 + r) / 2 while step 0 is unflagged, 1 + r after.
  const double r = std::sqrt(0.5), p = (2.0 + r) / 2.0, n = 4.0 - p;
  const double t = r / p;                                      // thresholds 0.9 and 0.3: step 2 (soft r) flagged
  const double f1 = (1.0 - r) / n, f2 = (2.0 - r) / n;         // 1 and 2 flagged, r of them true
  const double f4 = (4.0 - (1.0 + 2.0 * r)) / (4.0 - (1.0 + r));  // all flagged, P' = 1 + r
  const double roc2 = f1 * t / 2.0 + (f2 - f1) * t + (f4 - f2) + (1.0 - f4);  // TPR reaches 1 at 0.2
  const double pr2 = t * r + (1.0 - t) * (1.0 + r) / 3.0;      // precision r at 0.9, (1 + r) / 3 at 0.2
  // Buffers 0 and 1 give the unbuffered values; VUS is the mean over buffers 0..2.
  v = vus(labels, scores, 2, 4);
  REQUIRE(v.roc == Approx((2.0 / 3.0 + roc2) / 3.0));
  REQUIRE(v.pr == Approx((2.0 / 3.0 + pr2) / 3.0));
  REQUIRE(v.roc == Approx(0.4681451864).margin(1e-9));  // the reference's figures for this case
  REQUIRE(v.pr == Approx(0.4359439063).margin(1e-9));
  REQUIRE(median_range_length({1, 0, 1, 1, 0, 1, 1, 1, 1, 0}) == 2);
  REQUIRE(median_range_length({1, 1, 0, 1, 1, 1, 1, 1}) == 3);  // numpy's median 3.5, truncated
}

TEST_CASE("series metrics: VUS equals the authors' reference on 50 random label and score sets",
          "[series][metrics][parity]") {
  // tests/export_vus.py runs TheDatumOrg/VUS's RangeAUC_volume_opt on random labels (1 to 6 ranges, some at
  // the ends or merged by the buffer), scores with and without ties, buffers 0 to 39 and 7 to 250
  // thresholds. Both sides sum in float64 in different orders: 1e-12 relative.
  std::ifstream in(adx::test::reference_fixture("ADX_VUS_REFERENCE"));
  REQUIRE(in.good());
  int cases = 0;
  int64_t n = 0, buffer = 0, thresholds = 0;
  while (in >> n >> buffer >> thresholds) {
    std::vector<int> labels(static_cast<size_t>(n));
    std::vector<double> scores(static_cast<size_t>(n));
    for (auto& l : labels) in >> l;
    for (auto& s : scores) in >> s;
    double roc = 0, pr = 0;
    in >> roc >> pr;
    const auto v = vus(labels, scores, buffer, thresholds);
    INFO("case " << cases << ": n " << n << ", buffer " << buffer << ", thresholds " << thresholds);
    REQUIRE(v.roc == Approx(roc).epsilon(1e-12).margin(1e-14));
    REQUIRE(v.pr == Approx(pr).epsilon(1e-12).margin(1e-14));
    ++cases;
  }
  REQUIRE(cases == 50);
}

TEST_CASE("series metrics: random scores earn a high PA-F1 but a chance-level F1", "[series][metrics]") {
  // 20 anomaly ranges of 50 steps in 10000 (10% anomalous), uniform random scores, and
  // the top 5% flagged: nearly every range gets a hit, so PA marks it all found.
  std::vector<int> labels(10000, 0);
  for (int k = 0; k < 20; ++k)
    for (int t = 0; t < 50; ++t) labels[250 + 490 * k + t] = 1;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> scores(labels.size());
  for (auto& s : scores) s = uniform(rng);
  const auto report = series_report(labels, scores, quantile(scores, 0.95));
  INFO("F1 " << report.point.f1 << ", PA-F1 " << report.adjusted.f1 << ", PA%K AUC " << report.pa_k_auc);
  REQUIRE(report.adjusted.f1 > 0.6);
  REQUIRE(report.point.f1 < 0.12);   // chance: precision 0.1, recall 0.05 -> F1 0.067
  REQUIRE(report.auroc == Approx(0.5).margin(0.05));
  REQUIRE(report.pa_k_auc < 0.25);  // PA%K exposes it: above K = 10% nothing is adjusted
  REQUIRE(report.range.f1 < 0.15);
  REQUIRE_THAT(markdown_row("random", report), Contains("| random |"));
  // Without a threshold (none calibrated) the figures at a threshold are unknown, the others unchanged.
  const auto unthresholded = series_report(labels, scores, std::numeric_limits<double>::quiet_NaN());
  REQUIRE(std::isnan(unthresholded.point.f1));
  REQUIRE(std::isnan(unthresholded.adjusted.f1));
  REQUIRE(std::isnan(unthresholded.affiliation.recall));
  REQUIRE(unthresholded.auroc == report.auroc);
  REQUIRE(unthresholded.vus.roc == report.vus.roc);
  REQUIRE(unthresholded.best_point_f1 == report.best_point_f1);
  const auto row = markdown_row("uncalibrated", unthresholded);
  REQUIRE(std::count(row.begin(), row.end(), '|') == 14);
  REQUIRE_THAT(row, Contains(fmt::format("| {:.3f} | {:.3f} | – | – | – | – | – | – |", report.auroc, report.auprc)));
}

// ---- thresholds -------------------------------------------------------------

TEST_CASE("anomaly-ratio threshold: a percentile of train and test scores together", "[series][threshold]") {
  // 1..10 together, r = 10%: the 90th percentile with linear interpolation = 1 + 0.9 * 9.
  REQUIRE(anomaly_ratio_threshold({1, 2, 3, 4}, {5, 6, 7, 8, 9, 10}, 10.0) == Approx(9.1));
  REQUIRE_THROWS_AS(anomaly_ratio_threshold({1, 2}, {3}, 0.0), ValueError);
}

TEST_CASE("SPOT: the threshold of an exponential tail, alarms, and DSPOT under drift", "[series][threshold]") {
  std::mt19937 rng(3);
  std::exponential_distribution<double> exponential(1.0);
  std::vector<double> init(5000);
  for (auto& v : init) v = exponential(rng);
  Spot spot(SpotOptions().risk(1e-3).level(0.98));
  REQUIRE_THROWS_AS(spot.update(1.0), NotFittedError);
  spot.initialize(init);
  // An exponential tail is a Pareto tail of shape 0: P(X > z) = e^-z = 1e-3 at z = 6.91.
  REQUIRE(spot.threshold() == Approx(-std::log(1e-3)).margin(1.2));
  int alarms = 0;
  for (int i = 0; i < 20000; ++i) alarms += spot.update(exponential(rng));
  REQUIRE(alarms <= 100);  // expected about 20
  REQUIRE(spot.peaks() > 100);
  REQUIRE(spot.update(40.0));

  // A level that climbs by 50 over the stream: SPOT alarms on almost everything, DSPOT
  // follows the local mean.
  Spot plain(SpotOptions().risk(1e-3));
  Spot drifting(SpotOptions().risk(1e-3).depth(20));
  plain.initialize(init);
  drifting.initialize(init);
  int plain_alarms = 0, drifting_alarms = 0;
  for (int i = 0; i < 5000; ++i) {
    const double v = exponential(rng) + 50.0 * i / 5000.0;
    plain_alarms += plain.update(v);
    drifting_alarms += drifting.update(v);
  }
  INFO("SPOT " << plain_alarms << ", DSPOT " << drifting_alarms);
  REQUIRE(plain_alarms > 2500);
  REQUIRE(drifting_alarms < 100);
}

// ---- files ------------------------------------------------------------------

TEST_CASE("series CSV: named columns, date-times, labels, gaps", "[series][io]") {
  double seconds = 0;
  REQUIRE(parse_iso8601("2014-02-14 14:30:00", seconds));
  REQUIRE(seconds == 1392388200.0);
  REQUIRE(parse_iso8601("2014-02-14T16:30:00.5+02:00", seconds));
  REQUIRE(seconds == 1392388200.5);
  REQUIRE(parse_iso8601("1970-01-02", seconds));
  REQUIRE(seconds == 86400.0);
  REQUIRE_FALSE(parse_iso8601("14/02/2014", seconds));

  const auto path = temp_path("series.csv");
  write_text(path,
             "timestamp,value,other,label\n"
             "2014-02-14 14:00:00,1.0,10,0\n"
             "2014-02-14 14:05:00,,20,0\n"
             "2014-02-14 14:20:00,3.0,30,1\n"   // an irregular step: 15 minutes
             "2014-02-14 14:25:00,4.0,NaN,0\n");
  SeriesCsvOptions options;
  options.timestamp_column = "timestamp";
  options.label_column = "label";
  REQUIRE_THROWS_WITH(load_series_csv(path, options), Contains("row 1") && Contains("'value'"));
  options.interpolate_gaps = true;
  const auto s = load_series_csv(path, options);
  REQUIRE(s.columns == std::vector<std::string>{"value", "other"});
  REQUIRE(s.filled_gaps == 2);
  REQUIRE(to_doubles(s.values.select(1, 0)) == std::vector<double>{1, 2, 3, 4});  // linear in rows
  REQUIRE(to_doubles(s.values.select(1, 1)) == std::vector<double>{10, 20, 30, 30});  // nearest at the end
  REQUIRE(to_ints(s.labels) == std::vector<int>{0, 0, 1, 0});
  REQUIRE(to_doubles(s.timestamps)[2] - to_doubles(s.timestamps)[0] == 1200.0);

  write_text(path, "t,v\n1,0.5\n3,0.6\n2,0.7\n");
  SeriesCsvOptions by_t;
  by_t.timestamp_column = "t";
  REQUIRE_THROWS_WITH(load_series_csv(path, by_t), Contains("line 4") && Contains("backward_timestamps"));
  // A clock set back: drop skips rows until time passes the latest again; sort puts rows in time order.
  write_text(path, "t,v,label\n1,0.5,0\n3,0.6,0\n2,0.7,1\n3,0.8,0\n4,0.9,0\n");
  by_t.label_column = "label";
  by_t.backward_timestamps = "drop";
  REQUIRE_THROWS_WITH(load_series_csv(path, by_t), Contains("line 5") && Contains("duplicate_timestamps"));
  by_t.duplicate_timestamps = "first";
  auto dropped = load_series_csv(path, by_t);
  REQUIRE(to_doubles(dropped.timestamps) == std::vector<double>{1, 3, 4});
  REQUIRE(to_doubles(dropped.values.reshape({-1})) == std::vector<double>{0.5, 0.6000000238418579, 0.8999999761581421});
  by_t.backward_timestamps = "sort";
  by_t.duplicate_timestamps = "last";
  auto sorted = load_series_csv(path, by_t);
  REQUIRE(to_doubles(sorted.timestamps) == std::vector<double>{1, 2, 3, 4});
  REQUIRE(sorted.values[2][0].item<float>() == 0.8f);  // of the two rows at t = 3, the later one
  by_t.duplicate_timestamps = "mean";
  sorted = load_series_csv(path, by_t);
  REQUIRE(sorted.values[2][0].item<float>() == Approx(0.7f));
  REQUIRE(to_ints(sorted.labels) == std::vector<int>{0, 1, 0, 0});
  // Repeats with a gap: the mean leaves the gap out; a label is anomalous if any repeat is.
  write_text(path, "t,v,label\n1,1.0,0\n1,,1\n1,3.0,0\n2,4.0,0\n");
  by_t.backward_timestamps = "error";
  const auto merged = load_series_csv(path, by_t);
  REQUIRE(to_doubles(merged.values.reshape({-1})) == std::vector<double>{2, 4});
  REQUIRE(to_ints(merged.labels) == std::vector<int>{1, 0});
  by_t.duplicate_timestamps = "median";
  REQUIRE_THROWS_WITH(load_series_csv(path, by_t), Contains("first, last or mean"));
  by_t.duplicate_timestamps = "error";
  by_t.label_column.clear();
  by_t.timestamp_column = "time";
  REQUIRE_THROWS_WITH(load_series_csv(path, by_t), Contains("no timestamp column 'time'") && Contains("t, v"));
  write_text(path, "t,v\n1,abc\n");
  REQUIRE_THROWS_AS(load_series_csv(path), IoError);

  // NPY: T or T x D; NaN gaps are named or filled the same way.
  const auto npy = temp_path("series.npy");
  save_npy(npy, torch::tensor({1.0f, NAN, 3.0f}));
  REQUIRE_THROWS_WITH(load_series_npy(npy), Contains("row 1"));
  REQUIRE(to_doubles(load_series_npy(npy, true).values.reshape({-1})) == std::vector<double>{1, 2, 3});
}

TEST_CASE("series generator: deterministic, anomalies only in the test part", "[series][generator]") {
  SyntheticSeriesOptions o;
  o.length = 6000;
  o.period = 50;
  o.anomalies_per_kind = 2;
  const auto a = make_synthetic_series(o), b = make_synthetic_series(o);
  REQUIRE(torch::equal(a.values, b.values));
  REQUIRE(a.anomalies.size() == 12);
  REQUIRE(a.labels.slice(0, 0, a.train_length).sum().item<int64_t>() == 0);
  REQUIRE(a.labels.sum().item<int64_t>() > 0);
  // Most anomalies stay inside the normal value range: the largest |z| misses them.
  const auto values = a.values;
  const auto z = ((values - values.slice(0, 0, a.train_length).mean(0)) / values.slice(0, 0, a.train_length).std(0))
                     .abs()
                     .amax(1);
  const auto test = torch::indexing::Slice(a.train_length, torch::indexing::None);
  const double trivial = roc_auc(to_ints(a.labels.index({test})), to_doubles(z.index({test})));
  INFO("max |z| AUROC " << trivial);
  REQUIRE(trivial < 0.7);
  o.seed = 1;
  REQUIRE_FALSE(torch::equal(make_synthetic_series(o).values, a.values));
}

// ---- detectors --------------------------------------------------------------

namespace {

// A noisy two-channel seasonal series; the test half holds spikes, a frozen stretch
// and a stretch where one channel's season flips sign.
struct EasySeries {
  torch::Tensor train, test;
  std::vector<int> labels;
};

EasySeries easy_series() {
  torch::manual_seed(5);
  const int64_t T = 1200;
  auto t = torch::arange(T, torch::kFloat32);
  auto season = torch::sin(t * (2 * M_PI / 24));
  auto x = torch::stack({season, 0.5 * torch::cos(t * (2 * M_PI / 24)) + 0.5 * season}, 1);
  x = x + 0.05 * torch::randn({T, 2});
  EasySeries s;
  s.train = x.slice(0, 0, 800).clone();
  auto test = x.slice(0, 800).clone();
  s.labels.assign(400, 0);
  for (int64_t i : {60, 200, 330}) {
    test[i][0] += 2.0;
    s.labels[i] = 1;
  }
  for (int64_t i = 120; i < 140; ++i) {
    test[i][1] = test[120][1];
    s.labels[i] = 1;
  }
  for (int64_t i = 250; i < 274; ++i) {
    test[i][0] = -test[i][0];
    s.labels[i] = 1;
  }
  s.test = test;
  return s;
}

// Per-step AUROC above `min_auroc`, or, with `per_window`, the AUROC of window scores
// on non-overlapping windows (a window is anomalous when it holds an anomaly).
template <class D>
void check_series_detector(D& detector, double min_auroc, bool per_window = false) {
  const auto s = easy_series();
  detector.fit(Data::series(s.train, Windows{24, 1}));
  const auto test = Data::series(s.test, per_window ? Windows{24, 24} : Windows{24, 1});
  const auto scores = detector.score(test);
  REQUIRE(scores.per_step.size(0) == 400);
  const auto report = series_report(s.labels, to_doubles(scores.per_step), detector.threshold());
  double auroc = report.auroc;
  if (per_window) {
    std::vector<int> window_labels;
    for (int64_t start : to_longs(test.items)) {
      int any = 0;
      for (int64_t t = start; t < start + 24; ++t) any |= s.labels[t];
      window_labels.push_back(any);
    }
    auroc = roc_auc(window_labels, to_doubles(scores.per_item));
  }
  INFO(detector.type() << ": AUROC " << auroc << " (per-step " << report.auroc << "), F1 " << report.point.f1
                       << ", PA-F1 " << report.adjusted.f1);
  REQUIRE(auroc > min_auroc);

  // Save -> load gives the same per-step scores.
  const auto path = temp_path(detector.type() + "_series.adx");
  detector.save(path);
  auto loaded = adx::load(path);
  REQUIRE(loaded->fitted_kind()->name() == kinds::kSeries);
  const auto again = loaded->score(test);
  REQUIRE(torch::allclose(again.per_step.nan_to_num(-1), scores.per_step.nan_to_num(-1), 1e-5, 1e-6));
  REQUIRE(torch::equal(again.per_step.isnan(), scores.per_step.isnan()));
}

}  // namespace

// The paper's criterion (softmax over the window at temperature 50) ranks steps within
// a window: it finds the anomalous windows, scored on non-overlapping windows as the
// reference does, while its per-step ranking across windows is weak (see docs/series.md). Judged on
// 100 test windows, a quarter of them holding a spike, by the median over 3 seeds: on the 16
// windows of easy_series one seed's AUROC ranged from 0.38 to 0.94. The small preset (20 epochs,
// early stopping on the reconstruction) gave 0.82, 0.92 and 0.98 here; the reference's stopping rule
// (both phases) keeps epoch 1 on this series and gave 0.65 to 0.71.
TEST_CASE("anomaly transformer: finds anomalous windows in a seasonal series; save/load", "[series][detectors][slow]") {
  torch::manual_seed(8);
  const int64_t window = 24, train_steps = 1200, test_windows = 100;
  const int64_t steps = train_steps + test_windows * window;
  const auto t = torch::arange(steps, torch::kFloat32);
  const auto season = torch::sin(t * (2 * M_PI / 24));
  auto x = torch::stack({season, 0.5 * torch::cos(t * (2 * M_PI / 24)) + 0.5 * season}, 1) +
           0.05 * torch::randn({steps, 2});
  std::vector<int> window_labels(test_windows, 0);
  for (int64_t w = 0; w < test_windows; w += 4) {
    const int64_t at = train_steps + w * window + (w * 7) % window;
    x[at][w % 8 == 0 ? 0 : 1] += 4.0;
    window_labels[static_cast<size_t>(w)] = 1;
  }
  const auto train = Data::series(x.slice(0, 0, train_steps), Windows{window, 1});
  const auto test = Data::series(x.slice(0, train_steps), Windows{window, window});
  std::vector<std::pair<double, std::unique_ptr<AnomalyTransformer>>> runs;
  for (const int seed : {1, 2, 3}) {
    auto options = AnomalyTransformerOptions::small_preset();
    options.d_model(32).heads(4).layers(2).d_ff(32);
    options.runtime().seed(seed);
    auto detector = std::make_unique<AnomalyTransformer>(options);
    detector->fit(train);
    runs.emplace_back(roc_auc(window_labels, to_doubles(detector->score(test).per_item)), std::move(detector));
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  INFO("window AUROC over 3 seeds " << runs[0].first << ", " << runs[1].first << ", " << runs[2].first);
  REQUIRE(runs[1].first > 0.85);
  const auto scores = runs[1].second->score(test);
  REQUIRE(scores.per_step.size(0) == test_windows * window);
  const auto path = temp_path("anomaly_transformer_series.adx");
  runs[1].second->save(path);
  REQUIRE(torch::equal(adx::load(path)->score(test).per_step, scores.per_step));
}

TEST_CASE("lstm autoencoder: finds anomalies in a seasonal series; save/load", "[series][detectors][slow]") {
  LstmAutoencoder detector(LstmAutoencoderOptions().hidden(24));
  check_series_detector(detector, 0.8);
}

TEST_CASE("tcn autoencoder: finds anomalies in a seasonal series; save/load", "[series][detectors]") {
  TcnAutoencoder detector(TcnAutoencoderOptions().channels(16).dilations({1, 2, 4}));
  check_series_detector(detector, 0.8);
}

TEST_CASE("forecaster: finds anomalies in a seasonal series; save/load", "[series][detectors][slow]") {
  Forecaster detector(ForecasterOptions().hidden(24));
  check_series_detector(detector, 0.8);
}

TEST_CASE("autoencoder on series windows: per-step errors; save/load", "[series][detectors]") {
  auto detector = adx::make_detector("autoencoder", {{"hidden", "32"}, {"bottleneck", "4"}, {"dropout", "0"}});
  check_series_detector(*detector, 0.8);
}

TEST_CASE("vae on series windows: likelihood per window, per step; save/load", "[series][detectors]") {
  auto options = VaeOptions().hidden({32}).latent(4).dropout(0.0);
  options.runtime().seed(2);
  Vae detector(options);
  check_series_detector(detector, 0.75);
}

TEST_CASE("matrix profile: finds discords in a seasonal series; save/load", "[series][detectors]") {
  for (const bool normalize : {false, true}) {
    MatrixProfile detector(MatrixProfileOptions().normalize(normalize));
    check_series_detector(detector, 0.9);
  }
}

TEST_CASE("matrix profile: a streamed series scores as the whole series does (maximum over windows)",
          "[series][detectors][stream]") {
  const auto s = easy_series();
  MatrixProfile detector;
  REQUIRE(detector.step_assembly() == StepAssembly::Max);
  detector.fit(Data::series(s.train, {24, 1}));
  const auto whole = detector.score(Data::series(s.test, {24, 1}));
  // A step's score is the largest distance of the windows covering it.
  const auto windows = whole.per_item;
  REQUIRE(whole.per_step[30].item<float>() == windows.slice(0, 7, 31).max().item<float>());
  SequenceStream stream(detector, {24, 1}, /*chunk_clips=*/7);
  std::vector<torch::Tensor> parts;
  for (int64_t t = 0; t < s.test.size(0); t += 13) parts.push_back(stream.push(s.test.slice(0, t, t + 13)));
  parts.push_back(stream.finish());
  REQUIRE(torch::equal(torch::cat(parts), whole.per_step));
  MatrixProfile mean(MatrixProfileOptions().step_score(StepAssembly::Mean));
  mean.fit(Data::series(s.train, {24, 1}));
  REQUIRE(mean.score(Data::series(s.test, {24, 1})).per_step[30].item<float>() ==
          Approx(windows.slice(0, 7, 31).mean().item<float>()));
}

TEST_CASE("isolation forest on series windows: per-step scores; save/load", "[series][detectors]") {
  IsolationForest detector;
  check_series_detector(detector, 0.8);
}

namespace {

// The z-normalised distance of two windows (W x D) the textbook way: per channel, subtract the mean,
// divide by the population standard deviation (a constant channel stays all zeros), then the Euclidean
// distance over every step and channel.
double brute_force_distance(const torch::Tensor& a, const torch::Tensor& b, bool normalize) {
  const auto x = a.to(torch::kFloat64).contiguous(), y = b.to(torch::kFloat64).contiguous();
  const int64_t W = x.size(0), D = x.size(1);
  auto normalised = [&](const torch::Tensor& w, int64_t c, int64_t t) {
    const double* p = w.data_ptr<double>();
    if (!normalize) return p[t * D + c];
    double mean = 0, var = 0;
    for (int64_t s = 0; s < W; ++s) mean += p[s * D + c] / static_cast<double>(W);
    for (int64_t s = 0; s < W; ++s) var += (p[s * D + c] - mean) * (p[s * D + c] - mean) / static_cast<double>(W);
    const double sd = std::sqrt(var);
    return sd < 1e-7 ? 0.0 : (p[t * D + c] - mean) / sd;
  };
  double sum = 0;
  for (int64_t c = 0; c < D; ++c)
    for (int64_t t = 0; t < W; ++t) sum += std::pow(normalised(x, c, t) - normalised(y, c, t), 2);
  return std::sqrt(sum);
}

}  // namespace

TEST_CASE("matrix profile equals the brute-force nearest-window distance", "[series][detectors]") {
  torch::manual_seed(11);
  const int64_t W = 16;
  // A random walk with a constant stretch (constant windows) and a second channel.
  auto x = torch::randn({300, 2}, torch::kFloat64).cumsum(0);
  x.slice(0, 100, 130).select(1, 0).fill_(3.0);
  const auto history = x.slice(0, 0, 200), recent = x.slice(0, 180);
  for (const bool normalize : {true, false}) {
    MatrixProfileOptions o;
    o.normalize(normalize).block(37);  // blocks that do not divide the training windows
    o.runtime().validation_fraction(0.0);
    MatrixProfile detector(o);
    detector.fit(Data::series(history, {W, 3}));
    const auto test = Data::series(recent, {W, 1});
    const auto scores = detector.score(test).per_item.to(torch::kFloat64);
    const auto train_starts = to_longs(Data::series(history, {W, 3}).items);
    const auto test_starts = to_longs(test.items);
    double worst = 0;
    for (size_t i = 0; i < test_starts.size(); ++i) {
      double best = std::numeric_limits<double>::infinity();
      for (const int64_t j : train_starts)
        best = std::min(best, brute_force_distance(recent.slice(0, test_starts[i], test_starts[i] + W),
                                                   history.slice(0, j, j + W), normalize));
      worst = std::max(worst, std::abs(best - scores[static_cast<int64_t>(i)].item<double>()));
    }
    INFO("normalize " << normalize << ": largest difference " << worst);
    REQUIRE(worst < 1e-4);  // float32 scores of float64 distances
  }
  // Constant windows: two are 0 apart, a constant and a varying one sqrt(W) per channel.
  const auto flat = torch::full({W, 1}, 45.0, torch::kFloat64).unsqueeze(0);
  const auto ramp = torch::arange(W, torch::kFloat64).reshape({1, W, 1});
  const auto rows = matrix_profile_rows(torch::cat({flat, ramp}), true);
  REQUIRE(nearest_rows(rows.slice(0, 0, 1), rows.slice(0, 0, 1), 8).first.item<double>() == 0.0);
  REQUIRE(nearest_rows(rows.slice(0, 0, 1), rows.slice(0, 1, 2), 8).first.item<double>() ==
          Approx(std::sqrt(static_cast<double>(W))));
}

TEST_CASE("matrix profile: the threshold comes from the self-join with an exclusion zone of one window",
          "[series][detectors]") {
  torch::manual_seed(12);
  const int64_t W = 12;
  const auto history = torch::randn({150, 1}, torch::kFloat64).cumsum(0);
  // Stride 2: window starts 0, 2, 4, ...; two windows overlap when their starts are less than W apart.
  const auto train = Data::series(history.to(torch::kFloat32), {W, 2});
  const auto starts = to_longs(train.items);
  std::vector<double> left_out;
  for (const int64_t i : starts) {
    double best = std::numeric_limits<double>::infinity();
    for (const int64_t j : starts)
      if (std::abs(i - j) >= W)
        best = std::min(best, brute_force_distance(history.slice(0, i, i + W), history.slice(0, j, j + W), false));
    left_out.push_back(best);
  }
  const auto rows = matrix_profile_rows(history.unfold(0, W, 1).permute({0, 2, 1}).index_select(0, train.items), false);
  const auto joined = nearest_rows_apart(rows, train.items, W, 5);
  for (size_t k = 0; k < starts.size(); ++k)
    REQUIRE(joined[static_cast<int64_t>(k)].item<double>() == Approx(left_out[k]).epsilon(1e-9).margin(1e-9));
  // Each step takes the largest left-out distance of the windows covering it; the detector's threshold is
  // the policy's threshold of those per-step values, with every window kept in the reference.
  std::vector<double> per_step;
  for (int64_t t = 0; t < history.size(0); ++t) {
    double worst = -1;
    for (size_t k = 0; k < starts.size(); ++k)
      if (starts[k] <= t && t < starts[k] + W) worst = std::max(worst, left_out[k]);
    if (worst >= 0) per_step.push_back(static_cast<double>(static_cast<float>(worst)));
  }
  MatrixProfile detector(MatrixProfileOptions().block(7));
  detector.fit(train);
  REQUIRE(detector.reference_rows().size(0) == static_cast<int64_t>(starts.size()));
  REQUIRE(detector.threshold() == Approx(fit_threshold(per_step, MatrixProfileOptions().threshold())).epsilon(1e-6));
  // A training window is its own nearest window: it scores 0 however the threshold was set.
  REQUIRE(detector.score(Data::series(history.slice(0, 0, W).to(torch::kFloat32), {W, 1})).per_item.item<float>() ==
          0.0f);
  // Too short a series for any window to lie a window away from another: no threshold, a clear message.
  MatrixProfile short_head;
  short_head.fit(Data::series(torch::randn({W + 5}), {W, 1}));
  REQUIRE_THROWS_WITH(short_head.threshold(), Contains("no threshold"));
}

TEST_CASE("matrix profile: a constant series scores 0 everywhere, never NaN", "[series][detectors]") {
  MatrixProfile detector(MatrixProfileOptions().normalize(true));
  detector.fit(Data::series(torch::full({400}, 45.0), {32, 1}));
  const auto scores = detector.score(Data::series(torch::full({100}, 45.0), {32, 1}));
  REQUIRE(torch::equal(scores.per_step, torch::zeros({100})));
  // A varying series against the constant training windows: sqrt(W) for every window.
  const auto ramp = detector.score(Data::series(torch::arange(100, torch::kFloat32), {32, 1}));
  REQUIRE(torch::allclose(ramp.per_item, torch::full({69}, std::sqrt(32.0f))));
  REQUIRE_THROWS_WITH(detector.score(Data::series(torch::rand({100, 2}), {32, 1})), Contains("32 x 1"));
}

TEST_CASE("series scoring in chunks equals scoring at once", "[series][detectors]") {
  const auto s = easy_series();
  auto options = LstmAutoencoderOptions().hidden(8);
  options.train().epochs(2);
  LstmAutoencoder detector(options);
  detector.fit(Data::series(s.train, {24, 1}));
  const auto whole = detector.score(Data::series(s.test, {24, 1}));
  // The same training (same seed) with 7 windows per scoring pass.
  auto chunked_options = options;
  chunked_options.runtime().score_batch_size(7);
  LstmAutoencoder chunked(chunked_options);
  chunked.fit(Data::series(s.train, {24, 1}));
  const auto parts = chunked.score(Data::series(s.test, {24, 1}));
  // A batch of 7 windows multiplies the LSTM's gates at another GEMM shape, which rounds differently over
  // the 24 steps (kernel- and thread-dependent, about 1e-7 relative); a misplaced chunk boundary moves
  // scores by far more than 1e-5.
  REQUIRE(torch::allclose(parts.per_step, whole.per_step, 1e-5, 1e-7));
  REQUIRE(torch::allclose(parts.per_item, whole.per_item, 1e-5, 1e-7));
}

namespace {
// Records the largest batch score_model is handed.
class PassRecordingTransformer : public AnomalyTransformer {
 public:
  using AnomalyTransformer::AnomalyTransformer;
  int64_t largest_pass = 0;

 protected:
  Scores score_model(const Batch& batch) override {
    largest_pass = std::max(largest_pass, batch.x.size(0));
    return AnomalyTransformer::score_model(batch);
  }
};
}  // namespace

TEST_CASE("a detector's bound on items per scoring pass cuts the score batches, scores unchanged",
          "[series][detectors][chunks]") {
  // The Anomaly Transformer bounds each pass by score_chunk (its attention maps grow with window^2);
  // Detector::score_raw applies the bound below runtime.score_batch_size, and per-step scores are
  // assembled across the pass boundaries. Overlapping test windows put a boundary inside many steps.
  const auto s = easy_series();
  auto fitted = [&](int64_t score_chunk) {
    auto options = AnomalyTransformerOptions().d_model(8).heads(2).layers(1).d_ff(8).score_chunk(score_chunk);
    options.train().epochs(1);
    auto detector = std::make_unique<PassRecordingTransformer>(options);
    detector->fit(Data::series(s.train, {24, 4}));
    detector->largest_pass = 0;
    return detector;
  };
  const auto test = Data::series(s.test, {24, 3});
  auto unbounded = fitted(100000);
  const auto whole = unbounded->score(test);
  REQUIRE(unbounded->largest_pass == whole.per_item.size(0));  // every window in one pass
  for (const int64_t chunk : {1, 5}) {
    INFO("score_chunk " << chunk);
    auto bounded = fitted(chunk);
    const auto parts = bounded->score(test);
    REQUIRE(bounded->largest_pass == chunk);
    REQUIRE(parts.per_item.size(0) == whole.per_item.size(0));
    INFO("largest relative difference per step "
         << ((parts.per_step - whole.per_step).abs() / whole.per_step.abs().clamp_min(1e-12)).max().item<double>());
    // One window per pass multiplies at other GEMM shapes, which round differently (kernel-dependent),
    // and the criterion's softmax at temperature 50 enlarges that to a few 1e-5 relative; a misplaced
    // pass boundary moves a step's score by far more.
    REQUIRE(torch::allclose(parts.per_item, whole.per_item, 1e-4, 1e-6));
    REQUIRE(torch::allclose(parts.per_step, whole.per_step, 1e-4, 1e-6));
  }
}

TEST_CASE("anomaly transformer: prior association and minimax gradients as in the reference", "[series][detectors]") {
  torch::manual_seed(0);
  auto options = AnomalyTransformerOptions().d_model(8).heads(2).layers(1).d_ff(8);
  AnomalyTransformerNet net(3, options);
  // Make the learned width a constant: sigma-projection weights 0 and bias b, so
  // sigma = 3^(sigmoid(5b) + 1e-5) - 1 for every step and head.
  const double b = 0.1;
  for (auto& p : net->named_parameters()) {
    if (p.key().find("sigma.weight") != std::string::npos) p.value().data().zero_();
    if (p.key().find("sigma.bias") != std::string::npos) p.value().data().fill_(b);
  }
  const auto x = torch::randn({2, 5, 3});
  const auto out = net->run(x);
  const double sigma = std::pow(3.0, 1.0 / (1.0 + std::exp(-5 * b)) + 1e-5) - 1.0;
  // Row i of the prior is exp(-(i - j)^2 / (2 sigma^2)) normalised over j.
  for (int i = 0; i < 5; ++i) {
    double total = 0;
    std::vector<double> row(5);
    for (int j = 0; j < 5; ++j) total += row[j] = std::exp(-(i - j) * (i - j) / (2 * sigma * sigma));
    for (int j = 0; j < 5; ++j) REQUIRE(out.prior[0][1][1][i][j].item<double>() == Approx(row[j] / total).epsilon(1e-4));
  }
  REQUIRE(torch::allclose(out.series[0].sum(-1), torch::ones({2, 2, 5}), 1e-5));

  // One backward pass of phase 1 + phase 2 gives the gradients of the reference's two
  // separate backward passes (retain_graph) added together.
  net->zero_grad();
  net->minimax_loss(x, 3.0).backward();
  std::vector<torch::Tensor> summed;
  for (auto& p : net->parameters()) summed.push_back(p.grad().clone());
  net->zero_grad();
  const auto o = net->run(x);
  const auto rec = torch::mse_loss(o.reconstruction, x);
  auto sym = [](const torch::Tensor& p, const torch::Tensor& q) {
    return association_kl(p, q).mean() + association_kl(q, p).mean();
  };
  const auto series_loss = sym(o.series[0], o.prior[0].detach());
  const auto prior_loss = sym(o.prior[0], o.series[0].detach());
  (rec - 3.0 * series_loss).backward({}, /*retain_graph=*/true);
  (rec + 3.0 * prior_loss).backward();
  size_t i = 0;
  for (auto& p : net->parameters()) REQUIRE(torch::allclose(p.grad(), summed[i++], 1e-5, 1e-6));
}

TEST_CASE("anomaly transformer: forward pass, criterion and phase losses equal the authors' model",
          "[series][detectors][parity]") {
  // tests/export_anomaly_transformer.py ports thuml/Anomaly-Transformer's model and solver.py's criterion
  // and validation losses, runs them in float64 on random weights (LayerNorms' affine terms randomised too)
  // and writes them under adx's names. adx runs the same weights in float64: 1e-9 relative, the sums' order.
  const auto fixtures = adx::load_state_dict(adx::test::reference_fixture("ADX_ANOMALY_TRANSFORMER_REFERENCE"));
  auto options = AnomalyTransformerOptions().d_model(16).heads(2).layers(2).d_ff(24);
  AnomalyTransformerNet net(3, options);
  net->to(torch::kFloat64);
  REQUIRE(adx::test::copy_reference_parameters(*net, fixtures) == 1 + 2 * 18 + 4);
  torch::NoGradGuard no_grad;
  net->eval();
  const auto x = fixtures.at("x");
  const auto close = [](const torch::Tensor& got, const torch::Tensor& expected) {
    const double worst = ((got - expected).abs() / (expected.abs() + 1e-12)).max().item<double>();
    INFO("largest relative difference " << worst);
    REQUIRE(worst < 1e-9);
  };
  const auto out = net->run(x);
  close(out.reconstruction, fixtures.at("reconstruction"));
  for (int l = 0; l < 2; ++l) {
    INFO("layer " << l);
    close(out.series[static_cast<size_t>(l)], fixtures.at("series." + std::to_string(l)));
    close(out.prior[static_cast<size_t>(l)], fixtures.at("prior." + std::to_string(l)));
  }
  close(net->criterion(x, 50.0), fixtures.at("criterion"));
  const auto [phase1, phase2] = net->phase_losses(x, 3.0);
  close(phase1.reshape({1}), fixtures.at("loss1"));
  close(phase2.reshape({1}), fixtures.at("loss2"));
}

TEST_CASE("anomaly transformer: the reference's learning rates", "[series][detectors]") {
  // solver.py's adjust_learning_rate(optimizer, epoch + 1, lr) after each epoch sets lr * 0.5^epoch for
  // the next: epochs train at lr, lr, lr/2, lr/4, ...
  const auto train = AnomalyTransformerOptions().train();
  const std::vector<double> expected{1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5};
  for (int64_t epoch = 0; epoch < 5; ++epoch) REQUIRE(adx::scheduled_lr(train, epoch) == Approx(expected[epoch]));
}

TEST_CASE("time-series detectors refuse other kinds and too-short windows", "[series][detectors]") {
  LstmAutoencoder lstm;
  REQUIRE_THROWS_WITH(lstm.fit(Data::tabular(torch::rand({50, 3}))), Contains("series"));
  Forecaster forecaster(ForecasterOptions().horizon(5));
  REQUIRE_THROWS_AS(forecaster.fit(Data::series(torch::rand({100, 2}), {5, 1})), OptionError);
  REQUIRE_THROWS_AS(AnomalyTransformer(AnomalyTransformerOptions().d_model(30).heads(4)), OptionError);
}
