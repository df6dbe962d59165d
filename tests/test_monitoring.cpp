// Monitoring of a deployed detector, against values worked by hand: the adaptive
// threshold (a step change, its bounds, the EMA), latency percentiles, the
// anomaly-rate alert's cooldown and the population stability index.
#include <adx/core/error.hpp>
#include <adx/serve/monitoring.hpp>
#include <adx/threshold/threshold.hpp>

#include <catch2/catch.hpp>

#include <cmath>

TEST_CASE("the adaptive threshold follows a step change and stops at its bounds", "[monitoring]") {
  // By default it never falls below the calibrated value.
  REQUIRE(adx::AdaptiveThreshold(2.0).lower_bound() == 2.0);
  REQUIRE(adx::AdaptiveThreshold(2.0).upper_bound() == 3.0);
  // Window 4, median, half-way steps, bounds [0.5, 1.5] around the initial 1.0.
  adx::AdaptiveThreshold t(
      1.0, adx::AdaptiveThresholdOptions().window(4).percentile(50).smoothing(0.5).min_samples(2).max_fall(0.5));
  REQUIRE(t.lower_bound() == 0.5);
  REQUIRE(t.upper_bound() == 1.5);
  REQUIRE(t.update(1.0) == 1.0);  // fewer than min_samples: unchanged
  REQUIRE(t.update(1.0) == 1.0);  // median of {1, 1}
  REQUIRE(t.update(3.0) == 1.0);  // median of {1, 1, 3}
  REQUIRE(t.update(3.0) == 1.5);  // median of {1, 1, 3, 3} = 2: 1 + 0.5 (2 - 1)
  REQUIRE(t.update(3.0) == 1.5);  // median 3: 2.25, held at the upper bound
  // The scores fall to 0: the window forgets the 3s one by one.
  REQUIRE(t.update(0.0) == 1.5);   // {3, 0, 3, 3}: median 3
  REQUIRE(t.update(0.0) == 1.5);   // {3, 0, 0, 3}: median 1.5
  REQUIRE(t.update(0.0) == 0.75);  // {3, 0, 0, 0}: median 0, half-way from 1.5
  REQUIRE(t.update(0.0) == 0.5);   // 0.375, held at the lower bound
}

TEST_CASE("the adaptive threshold is an EMA of the target", "[monitoring]") {
  // Window 1: the target is the last score; v_k = 2 - (2 - 1) * 0.75^k.
  adx::AdaptiveThreshold t(1.0, adx::AdaptiveThresholdOptions().window(1).min_samples(1).smoothing(0.25).max_rise(5));
  double v = 0;
  for (int k = 1; k <= 3; ++k) v = t.update(2.0);
  REQUIRE(v == Approx(2.0 - std::pow(0.75, 3)).epsilon(1e-12));
  REQUIRE_THROWS_AS(adx::AdaptiveThreshold(1.0, adx::AdaptiveThresholdOptions().smoothing(0)), adx::OptionError);
  REQUIRE_THROWS_AS(adx::AdaptiveThreshold(1.0, adx::AdaptiveThresholdOptions().window(10).min_samples(20)),
                    adx::OptionError);
  REQUIRE_THROWS_AS(adx::AdaptiveThreshold(std::nan("")), adx::ValueError);
  REQUIRE_THROWS_AS(t.update(std::nan("")), adx::ValueError);
}

TEST_CASE("latency percentiles over a sliding window, and budget violations", "[monitoring]") {
  adx::LatencyWindow latency(5, 10.0);
  REQUIRE(latency.summary().count == 0);
  for (double ms : {1.0, 2.0, 3.0, 4.0, 100.0, 5.0}) latency.record(ms);
  const auto s = latency.summary();
  // The window holds {2, 3, 4, 100, 5}; sorted 2 3 4 5 100.
  REQUIRE(s.count == 5);
  REQUIRE(s.mean_ms == Approx(22.8));
  REQUIRE(s.p50_ms == Approx(4.0));
  REQUIRE(s.p95_ms == Approx(5.0 + 0.8 * 95.0));   // position 0.95 * 4 = 3.8
  REQUIRE(s.p99_ms == Approx(5.0 + 0.96 * 95.0));  // position 3.96
  REQUIRE(s.max_ms == 100.0);
  REQUIRE(s.over_budget == 1);
  REQUIRE_THROWS_AS(latency.record(-1.0), adx::ValueError);
  REQUIRE_THROWS_AS(adx::LatencyWindow(0), adx::OptionError);
}

TEST_CASE("the anomaly-rate alert fires on a full window above the rate, then waits out its cooldown",
          "[monitoring]") {
  adx::AnomalyRateAlert alert(4, 0.5, 10.0);
  REQUIRE_FALSE(alert.update(true, 0));   // the window is not full yet
  REQUIRE_FALSE(alert.update(true, 1));
  REQUIRE_FALSE(alert.update(true, 2));
  REQUIRE(alert.update(false, 3));        // 3 of 4 flagged: 0.75 > 0.5
  for (int t = 4; t < 13; ++t) REQUIRE_FALSE(alert.update(true, t));  // within 10 s of the alert
  REQUIRE(alert.update(true, 13));        // 10 s later
  REQUIRE(alert.alerts() == 2);
  for (int t = 14; t < 18; ++t) alert.update(false, t);
  REQUIRE(alert.rate() == 0.0);
  REQUIRE_FALSE(alert.update(true, 40));  // 1 of 4: below the rate, however long since the last alert
  REQUIRE_THROWS_AS(adx::AnomalyRateAlert(4, 1.0, 0), adx::OptionError);
}

TEST_CASE("the population stability index by hand", "[monitoring]") {
  const std::vector<double> reference{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  // Two bins split at the reference median 5.5: the reference has shares 0.5 and 0.5.
  REQUIRE(adx::population_stability_index(reference, reference, 2) == 0.0);
  // 3 of 10 current values lie below 5.5.
  const std::vector<double> current{1, 2, 3, 7, 8, 9, 10, 11, 12, 13};
  const double expected = (0.3 - 0.5) * std::log(0.3 / 0.5) + (0.7 - 0.5) * std::log(0.7 / 0.5);
  REQUIRE(adx::population_stability_index(reference, current, 2) == Approx(expected).epsilon(1e-12));
  // All below: the empty bin's share is floored at 1e-4 and the index stays finite.
  const std::vector<double> low{1, 2, 3};
  const double floored = (1.0 - 0.5) * std::log(1.0 / 0.5) + (1e-4 - 0.5) * std::log(1e-4 / 0.5);
  REQUIRE(adx::population_stability_index(reference, low, 2) == Approx(floored).epsilon(1e-12));
  // A value on an edge goes to the bin on its right: 5.5 with 1 2 3 -> shares 3/4 and 1/4.
  const std::vector<double> edge{1, 2, 3, 5.5};
  const double on_edge = (0.75 - 0.5) * std::log(0.75 / 0.5) + (0.25 - 0.5) * std::log(0.25 / 0.5);
  REQUIRE(adx::population_stability_index(reference, edge, 2) == Approx(on_edge).epsilon(1e-12));
  REQUIRE_THROWS_AS(adx::population_stability_index({}, current), adx::ValueError);
  REQUIRE_THROWS_AS(adx::population_stability_index(reference, {1.0, std::nan("")}), adx::ValueError);
  REQUIRE_THROWS_AS(adx::population_stability_index(reference, current, 1), adx::OptionError);
}

TEST_CASE("the two-sample KS test matches hand values and scipy", "[monitoring]") {
  // {1,2,3} against {4,5,6}: D = 1, reached only by the 2 of C(6,3) = 20 orderings that keep the
  // samples apart, so p = 2/20.
  auto apart = adx::ks_two_sample({1, 2, 3}, {4, 5, 6});
  REQUIRE(apart.exact);
  REQUIRE(apart.statistic == 1.0);
  REQUIRE(apart.p_value == Approx(0.1).epsilon(1e-12));
  // Ties step both CDFs at once: at x = 2, F_a = 3/4 and F_b = 1/5, so D = 0.55.
  auto tied = adx::ks_two_sample({1, 2, 2, 3}, {2, 3, 3, 4, 5});
  REQUIRE(tied.statistic == Approx(0.55).epsilon(1e-12));
  REQUIRE(tied.p_value == Approx(0.4285714285714286).epsilon(1e-9));  // scipy ks_2samp(method="exact")
  // A fixed case against scipy 1.10.1 ks_2samp(a, b, method="exact").
  const std::vector<double> a{0.61, 0.29, 0.06, 0.59,  -1.73, -0.74, 0.51, -0.56, 0.39, 1.64, 0.05, -0.06, 0.64,
                              -0.82, 0.37, 1.77, 1.09, -1.28, 2.36,  1.31, 1.05,  -0.32, -0.4, 1.06, -2.47};
  const std::vector<double> b{2.2,  1.79, 2.12, 1.14, 2.15, 2.06, 0.78, 0.59, 0.8,  1.12,
                              0.74, 1.5,  1.14, 1.22, 0.95, 1.4,  1.0,  0.72, 1.63, 0.69};
  auto fixed = adx::ks_two_sample(a, b);
  REQUIRE(fixed.exact);
  REQUIRE(fixed.statistic == Approx(0.67).epsilon(1e-12));
  REQUIRE(fixed.p_value == Approx(3.0099578535888613e-05).epsilon(1e-8));
  // Large samples use the asymptotic distribution; scipy's exact p-value on this pair is 0.30839.
  std::vector<double> x, y;
  for (int i = 1; i <= 1500; ++i) x.push_back(std::fmod(i * 0.618034, 1.0));
  for (int j = 1; j <= 1200; ++j) y.push_back(std::pow(std::fmod(j * 0.41421356, 1.0), 1.1));
  auto large = adx::ks_two_sample(x, y);
  REQUIRE_FALSE(large.exact);
  REQUIRE(large.statistic == Approx(0.03716666666666667).epsilon(1e-12));
  REQUIRE(large.p_value == Approx(0.30838725511698484).epsilon(0.01));
  // The exact path agrees with scipy's exact value when asked for it.
  REQUIRE(adx::ks_two_sample(x, y, 2e6).p_value == Approx(0.30838725511698484).epsilon(1e-6));
  REQUIRE_THROWS_AS(adx::ks_two_sample({}, {1.0}), adx::ValueError);
  REQUIRE_THROWS_AS(adx::ks_two_sample({1.0, std::nan("")}, {1.0}), adx::ValueError);
}
