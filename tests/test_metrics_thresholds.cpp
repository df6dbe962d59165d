// Metrics and thresholds against values worked out by hand (see the comments).
#include <adx/core/error.hpp>
#include <adx/core/options.hpp>
#include <adx/metrics/metrics.hpp>
#include <adx/metrics/pixel_metrics.hpp>
#include <adx/threshold/threshold.hpp>

#include <catch2/catch.hpp>

#include <cmath>

using adx::metrics::average_precision;
using adx::metrics::best_f1;
using adx::metrics::precision_recall_f1;
using adx::metrics::roc_auc;

TEST_CASE("AUROC on a small example worked by hand", "[metrics]") {
  // Positives {0.35, 0.8}, negatives {0.1, 0.4}: of the 4 pairs, 3 rank the positive higher.
  REQUIRE(roc_auc({0, 0, 1, 1}, {0.1, 0.4, 0.35, 0.8}) == Approx(0.75));
  // Perfect and reversed rankings.
  REQUIRE(roc_auc({0, 0, 1}, {0.1, 0.2, 0.3}) == Approx(1.0));
  REQUIRE(roc_auc({1, 0, 0}, {0.1, 0.2, 0.3}) == Approx(0.0));
}

TEST_CASE("AUROC counts a tied pair as one half", "[metrics]") {
  // Positives {0.5, 0.9}, negatives {0.5, 0.2}: pairs 0.5~0.5 (1/2), 0.5>0.2, 0.9>0.5, 0.9>0.2 -> 3.5 / 4.
  REQUIRE(roc_auc({0, 1, 0, 1}, {0.5, 0.5, 0.2, 0.9}) == Approx(0.875));
  // Everything tied: chance.
  REQUIRE(roc_auc({0, 1, 0, 1}, {1, 1, 1, 1}) == Approx(0.5));
}

TEST_CASE("average precision as scikit-learn defines it", "[metrics]") {
  // Thresholds 0.8: P=1 R=.5; 0.4: P=.5 R=.5; 0.35: P=2/3 R=1; 0.1: P=.5 R=1.
  // AP = .5*1 + 0*.5 + .5*(2/3) + 0 = 0.8333.
  REQUIRE(average_precision({0, 0, 1, 1}, {0.1, 0.4, 0.35, 0.8}) == Approx(0.5 + 0.5 * 2.0 / 3.0));
  // With a tie: 0.9: P=1 R=.5; 0.5 (one positive, one negative): P=2/3 R=1; 0.2: no recall gain.
  REQUIRE(average_precision({0, 1, 0, 1}, {0.5, 0.5, 0.2, 0.9}) == Approx(0.5 + 0.5 * 2.0 / 3.0));
  // All tied: AP equals the positive rate.
  REQUIRE(average_precision({0, 1, 0, 0}, {3, 3, 3, 3}) == Approx(0.25));
}

TEST_CASE("precision, recall and F1 at a threshold", "[metrics]") {
  // score > 0.3 flags 0.4 (normal), 0.35 and 0.8 (anomalies): TP 2, FP 1, FN 0.
  const auto r = precision_recall_f1({0, 0, 1, 1}, {0.1, 0.4, 0.35, 0.8}, 0.3);
  REQUIRE(r.true_positives == 2);
  REQUIRE(r.false_positives == 1);
  REQUIRE(r.false_negatives == 0);
  REQUIRE(r.precision == Approx(2.0 / 3.0));
  REQUIRE(r.recall == Approx(1.0));
  REQUIRE(r.f1 == Approx(0.8));
  // A score equal to the threshold is not flagged; nothing flagged gives precision 0.
  const auto none = precision_recall_f1({0, 1}, {0.2, 0.5}, 0.5);
  REQUIRE(none.precision == 0.0);
  REQUIRE(none.f1 == 0.0);
}

TEST_CASE("best F1 picks the best step and a threshold that reproduces it", "[metrics]") {
  // F1 per step: 0.8 -> 2/3, 0.4 -> 1/2, 0.35 -> 0.8, 0.1 -> 2/3. Best 0.8 when flagging >= 0.35.
  const std::vector<int> labels{0, 0, 1, 1};
  const std::vector<double> scores{0.1, 0.4, 0.35, 0.8};
  const auto b = best_f1(labels, scores);
  REQUIRE(b.f1 == Approx(0.8));
  REQUIRE(b.precision == Approx(2.0 / 3.0));
  REQUIRE(b.recall == Approx(1.0));
  REQUIRE(b.threshold == Approx(0.225));
  REQUIRE(precision_recall_f1(labels, scores, b.threshold).f1 == Approx(b.f1));
}

TEST_CASE("metrics reject bad input with a clear error", "[metrics][errors]") {
  REQUIRE_THROWS_WITH(roc_auc({1, 1}, {0.1, 0.2}), Catch::Contains("single class"));
  REQUIRE_THROWS_WITH(average_precision({0, 0}, {0.1, 0.2}), Catch::Contains("single class"));
  REQUIRE_THROWS_WITH(roc_auc({0, 1}, {0.1}), Catch::Contains("2 labels but 1 scores"));
  REQUIRE_THROWS_WITH(roc_auc({}, {}), Catch::Contains("empty"));
  REQUIRE_THROWS_WITH(roc_auc({0, 2}, {0.1, 0.2}), Catch::Contains("label 2"));
  REQUIRE_THROWS_WITH(roc_auc({0, 1}, {0.1, NAN}), Catch::Contains("not finite"));
  REQUIRE_THROWS_AS(roc_auc({1, 1}, {0.1, 0.2}), adx::ValueError);
}

TEST_CASE("mean + k std, percentile and contamination thresholds", "[threshold]") {
  // 1..5: mean 3, sample std sqrt(2.5).
  REQUIRE(adx::fit_threshold({1, 2, 3, 4, 5}, adx::ThresholdOptions().policy(adx::ThresholdPolicy::MeanStd).k(2)) ==
          Approx(3 + 2 * std::sqrt(2.5)));
  // 1..11, 90th percentile with linear interpolation: position 9 -> 10.
  std::vector<double> eleven;
  for (int i = 1; i <= 11; ++i) eleven.push_back(i);
  REQUIRE(adx::fit_threshold(eleven, adx::ThresholdOptions().policy(adx::ThresholdPolicy::Percentile).percentile(90)) ==
          Approx(10.0));
  // 95th percentile: position 9.5 -> 10.5.
  REQUIRE(adx::quantile(eleven, 0.95) == Approx(10.5));
  // Contamination 0.1 = quantile 0.9.
  REQUIRE(adx::fit_threshold(eleven,
                             adx::ThresholdOptions().policy(adx::ThresholdPolicy::Contamination).contamination(0.1)) ==
          Approx(10.0));
}

TEST_CASE("threshold calibration with too few samples is an error", "[threshold][errors]") {
  REQUIRE_THROWS_WITH(adx::fit_threshold({1.0}, adx::ThresholdOptions().policy(adx::ThresholdPolicy::MeanStd)),
                      Catch::Contains("at least 2") && Catch::Contains("got 1"));
  REQUIRE_THROWS_WITH(adx::fit_threshold({1, 2, 3}, adx::ThresholdOptions().policy(adx::ThresholdPolicy::Pot)),
                      Catch::Contains("at least 500"));
  REQUIRE_THROWS_AS(adx::fit_threshold({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
                                       adx::ThresholdOptions().policy(adx::ThresholdPolicy::BestF1)),
                    adx::OptionError);
}

TEST_CASE("GPD fit recovers the parameters of exact quantiles", "[threshold][pot]") {
  // y_i = sigma/xi ((1-u_i)^-xi - 1) at evenly spaced u_i is a sample-free stand-in for a GPD draw.
  for (double xi : {0.0, 0.2, -0.2}) {
    const double sigma = 1.5;
    std::vector<double> y;
    const int n = 4000;
    for (int i = 0; i < n; ++i) {
      const double u = (i + 0.5) / n;
      y.push_back(std::abs(xi) < 1e-12 ? -sigma * std::log(1 - u) : sigma / xi * (std::pow(1 - u, -xi) - 1));
    }
    const auto fit = adx::fit_generalized_pareto(y);
    REQUIRE(fit.shape == Approx(xi).margin(0.03));
    REQUIRE(fit.scale == Approx(sigma).epsilon(0.05));
  }
}

TEST_CASE("GPD fit on exponential, uniform and Pareto tails matches Grimshaw's method", "[threshold][pot]") {
  // Exact-quantile samples of n = 4000 points, checked against values found independently:
  //   exponential: the exponential fit, scale = the mean (0.999913 for this sample);
  //   uniform (a bounded tail): w(x) < 0 on all of (-1/ymax, 0) and w has no positive root
  //     (checked with numpy), so no stationary point exists and Grimshaw's method falls back
  //     to the exponential fit, scale = the mean 0.5. (The SPOT reference's L-BFGS search
  //     returns its best non-root point instead, gamma -0.034 and sigma 0.511.)
  //   Pareto, xi 0.5 and sigma 2: the true parameters. (The reference's search range starts
  //     at 2(ymean-ymin)/(ymean ymin) and misses this root; it returns the exponential fit.)
  const int n = 4000;
  std::vector<double> exponential, uniform, pareto;
  for (int i = 0; i < n; ++i) {
    const double q = (i + 0.5) / n;
    exponential.push_back(-std::log(1 - q));
    uniform.push_back(q);
    pareto.push_back(2.0 / 0.5 * (std::pow(1 - q, -0.5) - 1));
  }
  const auto e = adx::fit_generalized_pareto(exponential);
  REQUIRE(e.shape == Approx(0.0).margin(0.01));
  REQUIRE(e.scale == Approx(0.999913).epsilon(0.01));
  const auto u = adx::fit_generalized_pareto(uniform);
  REQUIRE(u.shape == 0.0);
  REQUIRE(u.scale == Approx(0.5).epsilon(1e-9));
  const auto p = adx::fit_generalized_pareto(pareto);
  REQUIRE(p.shape == Approx(0.5).margin(0.02));
  REQUIRE(p.scale == Approx(2.0).epsilon(0.03));
}

TEST_CASE("POT threshold matches the true tail quantile of exponential scores", "[threshold][pot]") {
  // Scores at the exact quantiles of Exp(1): the score exceeded with probability q is -ln q.
  std::vector<double> scores;
  const int n = 20000;
  for (int i = 0; i < n; ++i) scores.push_back(-std::log(1 - (i + 0.5) / n));
  const double t = adx::fit_threshold(scores, adx::ThresholdOptions().policy(adx::ThresholdPolicy::Pot).risk(1e-4));
  REQUIRE(t == Approx(-std::log(1e-4)).epsilon(0.05));
}

struct InnerOpts {
  ADX_OPTIONS_STRUCT;
  ADX_ARG(double, rate) = 0.5;
};
struct OuterOpts {
  ADX_OPTIONS_STRUCT;
  ADX_ARG(int64_t, width) = 8;
  ADX_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>{4, 2};
  ADX_ARG(adx::ThresholdPolicy, policy) = adx::ThresholdPolicy::MeanStd;
  ADX_ARG(bool, flag) = false;
  ADX_ARG(InnerOpts, inner) = InnerOpts();
};

TEST_CASE("options round-trip through key/value maps", "[options]") {
  OuterOpts o;
  o.width(3).layers({7, 5, 3}).policy(adx::ThresholdPolicy::Pot).flag(true);
  o.inner().rate(0.125);
  const auto map = adx::to_option_map(o);
  REQUIRE(map.at("width") == "3");
  REQUIRE(map.at("layers") == "7,5,3");
  REQUIRE(map.at("policy") == "pot");
  REQUIRE(map.at("inner.rate") == "0.125");
  const auto back = adx::from_option_map<OuterOpts>(map);
  REQUIRE(back.width() == 3);
  REQUIRE(back.layers() == std::vector<int64_t>{7, 5, 3});
  REQUIRE(back.policy() == adx::ThresholdPolicy::Pot);
  REQUIRE(back.flag());
  REQUIRE(back.inner().rate() == 0.125);
}

TEST_CASE("bad option keys and values name the problem", "[options][errors]") {
  REQUIRE_THROWS_WITH(adx::from_option_map<OuterOpts>({{"widht", "3"}}),
                      Catch::Contains("widht") && Catch::Contains("valid options") && Catch::Contains("width"));
  REQUIRE_THROWS_WITH(adx::from_option_map<OuterOpts>({{"width", "3x"}}), Catch::Contains("'3x'"));
  REQUIRE_THROWS_WITH(adx::from_option_map<OuterOpts>({{"policy", "median"}}),
                      Catch::Contains("median") && Catch::Contains("mean_std"));
  REQUIRE_THROWS_WITH(adx::from_option_map<OuterOpts>({{"flag", "maybe"}}), Catch::Contains("boolean"));
}

TEST_CASE("range checks name the key with its prefix, the range and the value", "[options][errors]") {
  const adx::OptionChecks c("train.");
  REQUIRE_NOTHROW(c.at_least("epochs", 1, 1).above("lr", 0.5, 0.0).in("rate", 1.0, 0.0, 1.0, "(]"));
  REQUIRE_THROWS_WITH(c.at_least("epochs", 0, 1), "option 'train.epochs' must be >= 1, got 0");
  REQUIRE_THROWS_WITH(c.above("lr", 0.0, 0.0), "option 'train.lr' must be > 0, got 0");
  REQUIRE_THROWS_WITH(c.in("rate", 1.0, 0.0, 1.0, "[)"), "option 'train.rate' must be in [0, 1), got 1");
  REQUIRE_THROWS_WITH(c.in("rate", 0.0, 0.0, 1.0, "(]"), "option 'train.rate' must be in (0, 1], got 0");
  REQUIRE_THROWS_WITH(c.in("rate", -0.25, 0.0, 1.0), "option 'train.rate' must be in [0, 1], got -0.25");
  REQUIRE_THROWS_WITH(c.each_at_least("widths", {}, 1), "option 'train.widths' must list at least 1 value(s), got 0");
  REQUIRE_NOTHROW(c.each_at_least("widths", {}, 1, 0));
  REQUIRE_THROWS_WITH(c.each_at_least("widths", {4, 0, 2}, 1), "option 'train.widths' entries must be >= 1, got 0");
  REQUIRE_THROWS_WITH(c.that(false, "heads", "must divide '{}', got {}", c.key("width"), 3),
                      "option 'train.heads' must divide 'train.width', got 3");
}

namespace {

struct RenamedOpts {
  ADX_OPTIONS_STRUCT;
  ADX_ARG(int64_t, width) = 1;
  ADX_ARG(InnerOpts, inner) = InnerOpts();

 public:
  static const adx::OptionRenames& renamed_options() {
    static const adx::OptionRenames renames{{"rate", "inner.rate"}, {"size", "width"}};
    return renames;
  }
};

}  // namespace

TEST_CASE("renamed keys read as their new names, once", "[options]") {
  const auto o = adx::from_option_map<RenamedOpts>({{"rate", "0.25"}, {"size", "4"}});
  REQUIRE(o.inner().rate() == 0.25);
  REQUIRE(o.width() == 4);
  REQUIRE(adx::to_option_map(o) == adx::OptionMap{{"inner.rate", "0.25"}, {"width", "4"}});
  REQUIRE(adx::from_option_map<RenamedOpts>({{"inner.rate", "0.5"}}).inner().rate() == 0.5);
  REQUIRE_THROWS_WITH(adx::from_option_map<RenamedOpts>({{"size", "4"}, {"width", "5"}}),
                      Catch::Contains("'size' and 'width'") && Catch::Contains("older name"));
  REQUIRE_THROWS_WITH(adx::from_option_map<RenamedOpts>({{"sizes", "4"}}), Catch::Contains("unknown option(s): sizes"));
}

TEST_CASE("regions are 8-connected", "[metrics][pixel]") {
  const std::vector<uint8_t> diagonal{1, 0, 0, 0, 1, 0, 0, 0, 1};
  int32_t regions = 0;
  auto labels = adx::metrics::label_regions(diagonal.data(), 3, 3, &regions);
  REQUIRE(regions == 1);
  REQUIRE(labels == std::vector<int32_t>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  const std::vector<uint8_t> two{1, 1, 0, 0, 0, 0, 0, 0, 1};
  labels = adx::metrics::label_regions(two.data(), 3, 3, &regions);
  REQUIRE(regions == 2);
  REQUIRE(labels[8] == 2);
}

TEST_CASE("PRO curve, AUPRO and pixel AUROC on a mask worked by hand", "[metrics][pixel]") {
  // One 1 x 5 image: region A = pixels 0-1 (size 2), region B = pixel 3, defect-free pixels 2 and 4.
  adx::metrics::MaskStack masks{{1, 1, 0, 1, 0}, 1, 1, 5};
  adx::metrics::MapStack maps{{0.9f, 0.5f, 0.7f, 0.8f, 0.1f}, 1, 1, 5};
  // Lowering the threshold: 0.9 covers half of A (PRO 0.25), 0.8 all of B (0.75), 0.7 a normal pixel
  // (FPR 0.5), 0.5 the rest of A (1.0), 0.1 the last normal pixel (FPR 1).
  const auto curve = adx::metrics::pro_curve(masks, maps);
  REQUIRE(curve.regions == 2);
  REQUIRE(curve.fpr == std::vector<double>{0, 0, 0, 0.5, 0.5, 1.0});
  REQUIRE(curve.pro == std::vector<double>{0, 0.25, 0.75, 0.75, 1.0, 1.0});
  // Up to FPR 0.3 the curve sits at 0.75: area 0.3 * 0.75, normalised by 0.3.
  REQUIRE(adx::metrics::aupro(masks, maps, 0.3) == Approx(0.75));
  // Up to FPR 1: 0.5 * 0.75 + 0.5 * 1.0.
  REQUIRE(adx::metrics::aupro(masks, maps, 1.0) == Approx(0.875));
  // Pixel AUROC: 5 of the 6 (defect, normal) pairs are ordered correctly.
  REQUIRE(adx::metrics::pixel_roc_auc(masks, maps) == Approx(5.0 / 6.0));
  // A perfect map: AUPRO 1.
  adx::metrics::MapStack perfect{{1, 1, 0, 1, 0}, 1, 1, 5};
  REQUIRE(adx::metrics::aupro(masks, perfect) == Approx(1.0));
  // Bad input.
  adx::metrics::MapStack small{{0.1f, 0.2f}, 1, 1, 2};
  REQUIRE_THROWS_WITH(adx::metrics::aupro(masks, small), Catch::Contains("1 x 1 x 5") && Catch::Contains("1 x 1 x 2"));
  adx::metrics::MaskStack clean{{0, 0, 0, 0, 0}, 1, 1, 5};
  REQUIRE_THROWS_WITH(adx::metrics::aupro(clean, maps), Catch::Contains("at least one defect region"));
}
