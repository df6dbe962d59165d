// The production layer: one fitted detector scored from 8 threads at once, drift that names
// the features that moved, feedback that recalibrates the threshold, rollback, the health
// snapshot as JSON and Prometheus text, the model file's version records, and ensembles.
#include "test_helpers.hpp"

#include <adx/detectors/ensemble/ensemble.hpp>
#include <adx/serve/production.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using adx::Data;
using adx::test::temp_path;

namespace {

std::unique_ptr<adx::Detector> fitted_autoencoder(const torch::Tensor& train, int64_t seed = 7) {
  auto d = adx::make_detector("autoencoder", {{"train.epochs", "30"}, {"train.batch_size", "64"}, {"bottleneck", "3"},
                                              {"runtime.threads", "1"}, {"runtime.seed", std::to_string(seed)}});
  d->fit(Data::tabular(train));
  return d;
}

}  // namespace

TEST_CASE("8 threads scoring one production detector get the scores of one thread", "[production]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(fitted_autoencoder(data.train));
  const auto test = Data::tabular(data.test);
  const auto expected = production.score(test).scores;
  // One item alone may differ from the same item in a batch in the last bits (BLAS blocks by batch
  // size), so single items are compared with single items.
  std::vector<double> expected_single;
  for (int64_t i = 0; i < 25; ++i)
    expected_single.push_back(production.score(Data::tabular(data.test.slice(0, i, i + 1))).scores[0]);
  std::vector<std::vector<double>> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      // Each thread scores the set in its own batch sizes, then item by item for a share of it.
      std::vector<double> mine;
      for (int round = 0; round < 3; ++round) mine = production.score(test).scores;
      for (int64_t i = 0; i < 25; ++i) {
        const auto one = production.score(Data::tabular(data.test.slice(0, i, i + 1))).scores;
        if (one[0] != expected_single[static_cast<size_t>(i)]) mine.clear();
      }
      seen[static_cast<size_t>(t)] = mine;
    });
  for (auto& th : threads) th.join();
  for (const auto& s : seen) REQUIRE(s == expected);
  const auto health = production.health();
  REQUIRE(health.calls == 26 + 8 * (3 + 25));
  REQUIRE(health.items_scored == 275 + 8 * (3 * 250 + 25));
}

TEST_CASE("drift alerts name the features that moved, and the score", "[production]") {
  const auto data = adx::test::easy_tabular(1000);
  auto detector = fitted_autoencoder(data.train);
  REQUIRE(detector->drift_reference().features.size(1) == 16);
  REQUIRE(detector->drift_reference().feature_names[3] == "x3");
  REQUIRE(detector->drift_reference().scores.size() == 100);  // the held-out 10%
  adx::ProductionDetector production(std::move(detector),
                                     adx::ProductionOptions().drift_window(400).drift_min_samples(300));
  torch::manual_seed(9);
  // Normal traffic from the training distribution: not judged before 300 items, then no drift.
  production.score(Data::tabular(data.train.slice(0, 0, 200)));
  REQUIRE_FALSE(production.drift().judged);
  production.score(Data::tabular(data.train.slice(0, 200, 600)));
  auto calm = production.drift();
  REQUIRE(calm.judged);
  REQUIRE(calm.samples == 400);
  INFO("drifting while calm: " << calm.drifting.size());
  REQUIRE(calm.drifting.empty());
  // Features 3 and 11 move by one standard deviation; the rest stay.
  auto moved = data.train.slice(0, 600, 1000).clone();
  for (int64_t f : {3, 11}) moved.select(1, f) += moved.select(1, f).std();
  production.score(Data::tabular(moved));
  const auto drift = production.drift();
  std::vector<std::string> names;
  for (const auto& f : drift.features)
    if (f.drifting) names.push_back(f.name);
  REQUIRE(names == std::vector<std::string>{"x3", "x11"});
  REQUIRE(drift.features[3].psi > 0.25);
  REQUIRE(drift.features[0].ks.p_value > 0.01 / 17);
  // Off-manifold items move the score distribution too.
  production.score(Data::tabular(data.test.slice(0, 200, 250).repeat({8, 1})));
  const auto after = production.drift();
  REQUIRE(after.score.has_value());
  REQUIRE(after.score->drifting);
  REQUIRE(std::find(after.drifting.begin(), after.drifting.end(), "score") != after.drifting.end());
}

TEST_CASE("feedback recalibrates the threshold by best F1, or by the confirmed false-positive rate", "[production]") {
  const auto data = adx::test::easy_tabular();
  auto make = [&] {
    auto d = fitted_autoencoder(data.train);
    // Unbounded: these sections check the recalibration rules; feedback_max_shift has its own test.
    return std::make_unique<adx::ProductionDetector>(
        std::move(d), adx::ProductionOptions().feedback_min_labels(10).feedback_max_shift(0));
  };
  SECTION("labels of both classes: the best-F1 threshold on the labelled items") {
    auto production = make();
    const auto scored = production->score(Data::tabular(data.test));
    std::vector<int> labels;
    std::vector<double> scores;
    adx::FeedbackResult last;
    for (size_t i = 0; i < scored.ids.size(); i += 10) {
      last = production->feedback(scored.ids[i], data.labels[i] == 1);
      labels.push_back(data.labels[i]);
      scores.push_back(scored.scores[i]);
    }
    REQUIRE(last.rule == "best_f1");
    REQUIRE(last.labels == 25);
    REQUIRE(production->threshold() == adx::best_f1_threshold(labels, scores));
  }
  SECTION("normal labels only: the threshold rises until at most 1% of them are flagged") {
    auto detector = fitted_autoencoder(data.train);
    // A threshold set too low: half the normal items get flagged, and operators say they are fine.
    const auto normal = Data::tabular(data.test.slice(0, 0, 200));
    detector->set_threshold(adx::quantile(detector->score(normal).to_vector(), 0.5));
    const double low = detector->threshold();
    // Unbounded: this checks the rate rule itself; feedback_max_shift has its own test.
    adx::ProductionDetector production_low(std::move(detector),
                                           adx::ProductionOptions().feedback_min_labels(10).feedback_max_shift(0));
    auto* production = &production_low;
    const auto scored = production->score(normal);
    adx::FeedbackResult last;
    for (size_t i = 0; i < 9; ++i) last = production->feedback(scored.ids[i], false);
    REQUIRE_FALSE(last.threshold_changed);  // 9 labels: fewer than feedback_min_labels
    REQUIRE(last.rule.empty());
    for (size_t i = 9; i < 200; ++i) last = production->feedback(scored.ids[i], false);
    REQUIRE(last.rule == "false_positive_rate");
    REQUIRE(production->threshold() > low);
    // Every feedback re-checks the rate, so at the end at most 1% of the 200 labelled items are flagged.
    const auto flagged = std::count_if(scored.scores.begin(), scored.scores.end(),
                                       [&](double s) { return s > production->threshold(); });
    REQUIRE(flagged <= 2);
    REQUIRE(flagged >= 1);  // and the threshold rose no further than it had to
    // Saved, the model starts where this deployment is: with the recalibrated threshold.
    production->save(temp_path("recalibrated.adx"));
    REQUIRE(adx::load(temp_path("recalibrated.adx"))->threshold() == production->threshold());
    REQUIRE_THROWS_WITH(production->feedback(123456, true), Catch::Contains("unknown item id 123456"));
  }
}

TEST_CASE("feedback cannot be stuffed: one label per id, and the threshold stays within its bounds", "[production]") {
  const auto data = adx::test::easy_tabular();
  const double shift = 3;  // tighter than the default, so that the rate rule below surely reaches it
  adx::ProductionDetector production(fitted_autoencoder(data.train),
                                     adx::ProductionOptions().feedback_min_labels(5).feedback_max_shift(shift));
  const double t0 = production.threshold();
  const auto model = production.detector();
  const auto& calibration = model->drift_reference().scores;
  REQUIRE(calibration.size() >= 2);
  double mean = 0, squares = 0;
  for (const double v : calibration) mean += v / static_cast<double>(calibration.size());
  for (const double v : calibration) squares += (v - mean) * (v - mean);
  const double spread = std::sqrt(squares / static_cast<double>(calibration.size() - 1));
  const auto scored = production.score(Data::tabular(data.test));

  // The most anomalous item labelled normal 20 times in one request is one label, below the 5 needed.
  const auto top = std::max_element(scored.scores.begin(), scored.scores.end()) - scored.scores.begin();
  const std::vector<std::pair<int64_t, bool>> stuffed(20, {scored.ids[static_cast<size_t>(top)], false});
  auto result = production.feedback(stuffed);
  REQUIRE(result.labels == 1);
  REQUIRE(production.threshold() == t0);

  // One unknown id refuses the whole request: nothing is recorded.
  std::vector<std::pair<int64_t, bool>> with_bad_id{{scored.ids[0], false}, {scored.ids[1], false}, {987654, false}};
  REQUIRE_THROWS_WITH(production.feedback(with_bad_id), Catch::Contains("unknown item id 987654"));
  REQUIRE(production.health().feedback_labels == 1);

  // Every item, anomalies included, labelled normal: the rate rule would lift the threshold above the
  // anomalies; it stops at t0 + feedback_max_shift standard deviations of the calibration scores, and the
  // anomalies stay flagged.
  std::vector<std::pair<int64_t, bool>> all_normal;
  for (const auto id : scored.ids) all_normal.emplace_back(id, false);
  result = production.feedback(all_normal);
  REQUIRE(result.rule == "false_positive_rate");
  REQUIRE(result.labels == static_cast<int64_t>(scored.ids.size()));
  REQUIRE(production.threshold() == Approx(t0 + shift * spread).epsilon(1e-9));
  REQUIRE(std::count_if(scored.scores.begin(), scored.scores.end(), [&](double s) { return s > production.threshold(); }) > 0);

  // Relabelled the other way round (normal items as anomalies and anomalies as normal): best F1 would put
  // the threshold below every item; it stops at t0 - feedback_max_shift standard deviations.
  std::vector<std::pair<int64_t, bool>> inverted;
  for (size_t i = 0; i < scored.ids.size(); ++i) inverted.emplace_back(scored.ids[i], data.labels[i] == 0);
  result = production.feedback(inverted);
  REQUIRE(result.rule == "best_f1");
  REQUIRE(result.labels == static_cast<int64_t>(scored.ids.size()));  // relabelled, not added
  REQUIRE(production.threshold() >= t0 - shift * spread - 1e-12);
  REQUIRE_THROWS_AS(adx::ProductionDetector(fitted_autoencoder(data.train), adx::ProductionOptions().feedback_max_shift(-1)),
                    adx::OptionError);
}

TEST_CASE("deploys and rollbacks while other threads score: every call sees one whole model", "[production]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(fitted_autoencoder(data.train, 1));
  production.deploy(fitted_autoencoder(data.train, 2));
  const auto test = Data::tabular(data.test.slice(0, 0, 8));
  std::atomic<bool> done{false};
  std::atomic<int64_t> calls{0}, replaced{0}, mixed{0};  // Catch's REQUIRE is for the main thread only
  std::vector<std::thread> scorers;
  for (int t = 0; t < 3; ++t)
    scorers.emplace_back([&] {
      while (!done) {
        const auto model = production.detector();  // a snapshot: valid whatever the swaps do
        if (model->type() != "autoencoder") ++mixed;
        const auto scored = production.score(test);
        const bool old = scored.ids.front() < 0;
        for (const auto id : scored.ids) mixed += (id < 0) != old;  // a call is judged by one model
        ++calls, replaced += old;
      }
    });
  for (int k = 0; k < 100; ++k) {
    production.rollback();
    if (k % 10 == 0) production.save(temp_path("swapping.adx"));
  }
  while (calls < 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  done = true;
  for (auto& t : scorers) t.join();
  INFO(calls << " calls, " << replaced << " scored by a model replaced during the call");
  REQUIRE(calls > 0);
  REQUIRE(mixed == 0);
  REQUIRE(adx::load(temp_path("swapping.adx"))->type() == "autoencoder");
  // Monitoring restarted with the last swap and counts only the calls made since.
  REQUIRE(production.health().calls <= calls);
}

TEST_CASE("deploy keeps the previous model and rollback returns to it", "[production]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(fitted_autoencoder(data.train, 1));
  const auto test = Data::tabular(data.test.slice(0, 0, 20));
  const auto first = production.score(test).scores;
  REQUIRE_FALSE(production.has_previous());
  REQUIRE_THROWS_WITH(production.rollback(), Catch::Contains("no previous model"));
  production.deploy(fitted_autoencoder(data.train, 2));
  REQUIRE(production.has_previous());
  const auto second = production.score(test).scores;
  REQUIRE(second != first);
  production.rollback();
  REQUIRE(production.score(test).scores == first);
  REQUIRE(production.health().items_scored == 20);  // monitoring restarts with each model
  // An unfitted or uncalibrated detector never goes into service.
  REQUIRE_THROWS_AS(production.deploy(adx::make_detector("autoencoder")), adx::NotFittedError);
  REQUIRE(production.score(test).scores == first);
}

TEST_CASE("rollback resumes the threshold the model had in service, not its file's", "[production]") {
  const auto data = adx::test::easy_tabular();
  auto detector = fitted_autoencoder(data.train, 1);
  const auto normal = Data::tabular(data.test.slice(0, 0, 200));
  detector->set_threshold(adx::quantile(detector->score(normal).to_vector(), 0.5));  // too low
  const double file_threshold = detector->threshold();
  adx::ProductionDetector production(std::move(detector), adx::ProductionOptions().feedback_min_labels(10));
  const auto scored = production.score(normal);
  std::vector<std::pair<int64_t, bool>> labels;
  for (const auto id : scored.ids) labels.emplace_back(id, false);
  production.feedback(labels);  // operators say all 200 are normal: the threshold rises
  const double learned = production.threshold();
  REQUIRE(learned > file_threshold);
  production.deploy(fitted_autoencoder(data.train, 2));
  REQUIRE(production.threshold() != learned);
  production.rollback();
  REQUIRE(production.threshold() == learned);
  // And back again: the newer model resumes its own.
  const double newer = fitted_autoencoder(data.train, 2)->threshold();
  production.rollback();
  REQUIRE(production.threshold() == Approx(newer));
}

TEST_CASE("health is JSON and Prometheus text; bad input is counted and rethrown", "[production]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(fitted_autoencoder(data.train),
                                     adx::ProductionOptions().latency_budget_ms(1e9).drift_min_samples(100));
  // Every input feature shifted by about one standard deviation: drift that no training run's rounding can hide
  // (the 20% anomalies of the plain test set move the scores' KS p-value close to the Bonferroni level).
  production.score(Data::tabular(data.test + 2.0));
  REQUIRE_THROWS_AS(production.score(Data::tabular(torch::zeros({3, 5}))), adx::ShapeError);
  const auto json = nlohmann::json::parse(production.health().to_json());
  REQUIRE(json["detector"] == "autoencoder");
  REQUIRE(json["items_scored"] == 250);
  REQUIRE(json["calls"] == 2);
  // A wrong shape is the caller's error: rejected, not a model error, and the service is not failing.
  REQUIRE(json["rejected"] == 1);
  REQUIRE(json["errors"] == 0);
  INFO(json["drift"].dump());
  REQUIRE(json["status"] == "drift");  // against the training reference
  REQUIRE(json["drift"]["drifting"].size() >= 8);
  REQUIRE(json["latency_ms"]["count"] == 1);
  REQUIRE(json["drift"]["judged"] == true);
  REQUIRE(json["drift"]["features"].size() == 16);
  REQUIRE(json["version"].get<std::string>().rfind("autoencoder-", 0) == 0);
  const auto text = production.health().to_prometheus();
  REQUIRE(text.find("# TYPE adx_items_scored_total counter\nadx_items_scored_total{detector=\"autoencoder\"") !=
          std::string::npos);
  REQUIRE(text.find("adx_score_errors_total{") != std::string::npos);
  REQUIRE(text.find("adx_score_rejected_total{") != std::string::npos);
  REQUIRE(text.find("adx_latency_ms{detector=\"autoencoder\",version=") != std::string::npos);
  REQUIRE(text.find("feature=\"x15\"") != std::string::npos);
}

TEST_CASE("predict flags an item whose score overflowed, whether to infinity or NaN", "[production]") {
  const auto data = adx::test::easy_tabular();
  auto detector = fitted_autoencoder(data.train);
  auto x = data.test.slice(0, 0, 3).clone();
  x[1].fill_(3e38);
  const auto scores = detector->score(Data::tabular(x)).per_item;
  REQUIRE_FALSE(std::isfinite(scores[1].item<double>()));
  REQUIRE(detector->predict(Data::tabular(x))[1].item<bool>());
}

TEST_CASE("the latency summary's _sum and _count run over every call, its quantiles over the window", "[production]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(fitted_autoencoder(data.train), adx::ProductionOptions().latency_window(1));
  for (int call = 0; call < 3; ++call) production.score(Data::tabular(data.test));
  REQUIRE_THROWS(production.score(Data::tabular(torch::zeros({3, 5}))));  // rejected: no latency recorded
  const auto health = production.health();
  REQUIRE(health.latency.count == 1);  // the window holds the last call only
  // The sum holds all three calls, so it is at least the window's one call and more than zero.
  REQUIRE(health.latency_total_ms >= health.latency.max_ms);
  REQUIRE(health.latency_total_ms > 0);
  const auto text = health.to_prometheus();
  const auto value_of = [&](const std::string& name) {
    const auto at = text.find(name + "{");
    REQUIRE(at != std::string::npos);
    const auto space = text.find("} ", at);
    return std::stod(text.substr(space + 2, text.find('\n', space) - space - 2));
  };
  REQUIRE(value_of("adx_latency_ms_count") == 3);
  REQUIRE(value_of("adx_latency_ms_sum") == Approx(health.latency_total_ms));
}

TEST_CASE("model files record version, creation time, adx version and a training fingerprint", "[production]") {
  const auto data = adx::test::easy_tabular();
  auto d = fitted_autoencoder(data.train);
  const auto& info = d->model_info();
  REQUIRE(info.adx_version == adx::adx_version());
  REQUIRE(info.training_items == 600);
  REQUIRE(info.training_shape == std::vector<int64_t>{600, 16});
  REQUIRE(info.training_hash.size() == 16);
  REQUIRE(info.created_at.size() == 20);  // 2026-11-30T01:16:44Z
  // The same values give the same fingerprint, one changed value another.
  auto again = fitted_autoencoder(data.train.clone());
  REQUIRE(again->model_info().training_hash == info.training_hash);
  auto changed_train = data.train.clone();
  changed_train[5][5] += 1e-3;
  REQUIRE(fitted_autoencoder(changed_train)->model_info().training_hash != info.training_hash);
  d->set_version("line-4/v17");
  d->save(temp_path("versioned.adx"));
  auto loaded = adx::load(temp_path("versioned.adx"));
  REQUIRE(loaded->model_info().version == "line-4/v17");
  REQUIRE(loaded->model_info().training_hash == info.training_hash);
  REQUIRE(loaded->model_info().training_shape == info.training_shape);
  REQUIRE(loaded->drift_reference().scores == d->drift_reference().scores);
  REQUIRE(torch::equal(loaded->drift_reference().features, d->drift_reference().features));
  REQUIRE_THROWS_AS(d->set_version(""), adx::ValueError);
}

TEST_CASE("an ensemble combines fitted members and checks its options", "[production][ensemble]") {
  const auto data = adx::test::easy_tabular();
  std::vector<std::unique_ptr<adx::Detector>> members;
  members.push_back(fitted_autoencoder(data.train, 1));
  members.push_back(fitted_autoencoder(data.train, 2));
  REQUIRE_THROWS_WITH(adx::Ensemble(adx::EnsembleOptions(), std::move(members)), Catch::Contains("twice"));

  std::vector<std::unique_ptr<adx::Detector>> fitted;
  fitted.push_back(fitted_autoencoder(data.train, 1));
  fitted.push_back(adx::make_detector("vae", {{"latent", "3"}, {"train.epochs", "30"}, {"runtime.threads", "1"}}));
  fitted[1]->fit(Data::tabular(data.train));
  const auto ae_scores = fitted[0]->score(Data::tabular(data.test)).per_item;
  adx::Ensemble ensemble(adx::EnsembleOptions().combination(adx::EnsembleCombination::Max), std::move(fitted));
  ensemble.fit(Data::tabular(data.train));
  // The fitted member was kept as it was, not refitted.
  REQUIRE(torch::equal(ensemble.members()[0]->score(Data::tabular(data.test)).per_item, ae_scores));
  const auto z = ensemble.member_scores(Data::tabular(data.test));
  REQUIRE(z.sizes() == torch::IntArrayRef({250, 2}));
  const auto combined = ensemble.score(Data::tabular(data.test)).per_item;
  REQUIRE(torch::allclose(combined, std::get<0>(z.max(1)).to(torch::kFloat32)));
  REQUIRE(adx::metrics::roc_auc(data.labels, ensemble.score(Data::tabular(data.test)).to_vector()) > 0.9);

  // Options: unknown keys, members that are not listed, weights that do not fit.
  REQUIRE_THROWS_WITH(adx::make_detector("ensemble", {{"members", "autoencoder"}, {"vae.latent", "3"}}),
                      Catch::Contains("unknown option 'vae.latent'"));
  REQUIRE_THROWS_WITH(adx::make_detector("ensemble", {{"members", "autoencoder,vae"}, {"combination", "weighted"},
                                                      {"weights", "1"}}),
                      Catch::Contains("needs 2 weights"));
  REQUIRE_THROWS_WITH(adx::make_detector("ensemble", {{"members", "autoencoder,nothing"}}),
                      Catch::Contains("unknown detector 'nothing'"));
  REQUIRE_THROWS_WITH(adx::make_detector("ensemble", {{"members", ","}}), Catch::Contains("at least one detector"));
  REQUIRE(adx::make_detector("ensemble")->options_map().at("members") == "autoencoder,vae");
  auto images_only = adx::make_detector("ensemble", {{"members", "rotation,autoencoder"}});
  REQUIRE(images_only->input_kinds() == std::vector<std::string>{adx::kinds::kImage});
}

TEST_CASE("ensemble normalisation: z-scores and the half-ties ECDF of held-out scores, computed independently",
          "[production][ensemble]") {
  const auto data = adx::test::easy_tabular();
  const auto train = Data::tabular(data.train.slice(0, 0, 500)), held_out = Data::tabular(data.train.slice(0, 500, 600));
  for (const char* normalization : {"zscore", "rank"}) {
    DYNAMIC_SECTION(normalization) {
      std::vector<std::unique_ptr<adx::Detector>> members;
      members.push_back(fitted_autoencoder(data.train, 1));
      const auto raw_held = adx::test::to_doubles(members[0]->score(held_out).per_item);
      const auto raw_test = adx::test::to_doubles(members[0]->score(Data::tabular(data.test)).per_item);
      adx::Ensemble ensemble(adx::from_option_map<adx::EnsembleOptions>({{"normalization", normalization}}),
                             std::move(members));
      ensemble.fit(train, held_out);
      const auto z = adx::test::to_doubles(ensemble.member_scores(Data::tabular(data.test)).select(1, 0));
      const double n = static_cast<double>(raw_held.size());
      double mean = 0, var = 0;
      for (double v : raw_held) mean += v / n;
      for (double v : raw_held) var += (v - mean) * (v - mean) / (n - 1);
      for (size_t i = 0; i < raw_test.size(); ++i) {
        double expected = 0;
        if (std::string(normalization) == "zscore") {
          expected = (raw_test[i] - mean) / std::sqrt(var);
        } else {
          for (double v : raw_held) expected += (v < raw_test[i] ? 1.0 : v == raw_test[i] ? 0.5 : 0.0) / n;
        }
        REQUIRE(z[i] == Approx(expected).epsilon(1e-6).margin(1e-9));
      }
    }
  }
}
