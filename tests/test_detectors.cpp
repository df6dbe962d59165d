// Every detector: beats chance on easy data, save -> load gives identical
// scores, seeds make training repeatable, and bad input is a clear error.
#include "test_helpers.hpp"

#include <adx/detectors/deep_svdd/deep_svdd.hpp>
#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include <adx/detectors/rotation/rotation.hpp>
#include <adx/detectors/simclr/simclr.hpp>
#include <adx/detectors/vae/vae.hpp>

#include <catch2/catch.hpp>

using adx::Data;
using adx::test::temp_path;

using adx::test::quick_options;

namespace {

// Small, fast settings shared by the detector tests.
// An ensemble's options: its own, then each member's under "<member>." keys.
adx::OptionMap ensemble_of(const std::vector<std::pair<std::string, adx::OptionMap>>& members, adx::OptionMap own) {
  std::string names;
  for (const auto& [name, options] : members) {
    names += (names.empty() ? "" : ",") + name;
    for (const auto& [key, value] : options) own[name + "." + key] = value;
  }
  own["members"] = names;
  own["runtime.threads"] = "2";
  own["runtime.seed"] = "7";
  return own;
}

struct Case {
  std::string name;
  adx::OptionMap options;
  bool images;
};

std::vector<Case> cases() {
  return {
      {"autoencoder", quick_options(40, {{"bottleneck", "3"}}), false},
      {"denoising_autoencoder", quick_options(40, {{"bottleneck", "3"}, {"noise_level", "0.05"}}), false},
      {"sparse_autoencoder", quick_options(40, {{"bottleneck", "8"}}), false},
      {"vae", quick_options(40, {{"latent", "3"}}), false},
      {"conv_autoencoder", quick_options(15, {{"channels", "8,16"}, {"latent", "8"}}), true},
      {"autoencoder", quick_options(20, {{"bottleneck", "8"}}), true},
      {"deep_svdd", quick_options(30, {{"rep_dim", "8"}, {"pretrain_train.epochs", "20"}, {"train.lr", "0.001"}}), false},
      {"deep_svdd", quick_options(10, {{"rep_dim", "8"}, {"pretrain_train.epochs", "10"}, {"train.lr", "0.001"}}), true},
      {"deep_svdd", quick_options(30, {{"rep_dim", "8"}, {"objective", "soft_boundary"}, {"nu", "0.05"},
                               {"warm_up_epochs", "5"}, {"pretrain_train.epochs", "20"}, {"train.lr", "0.001"}}),
       false},
      {"rotation", quick_options(4, {{"channels", "8,16"}}), true},
      {"simclr", quick_options(30, {{"rep_dim", "16"}, {"hidden", "32,32"}}), false},
      {"simclr", quick_options(15, {{"rep_dim", "16"}, {"channels", "8,16"}}), true},
      {"ganomaly", quick_options(20, {{"latent", "16"}, {"width", "16"}}), true},
      {"skip_ganomaly", quick_options(10, {{"width", "8"}}), true},
      {"anogan", quick_options(20, {{"latent", "16"}, {"width", "16"}, {"search_steps", "20"}}), true},
      {"f_anogan", quick_options(20, {{"latent", "16"}, {"width", "16"}, {"encoder_train.epochs", "20"}}), true},
      {"rotation", quick_options(4, {{"channels", "8,16"}, {"transformations", "geom"}, {"transforms_per_image", "4"}}), true},
      {"ensemble",
       ensemble_of({{"autoencoder", quick_options(40, {{"bottleneck", "3"}})}, {"vae", quick_options(40, {{"latent", "3"}})}}, {}),
       false},
      {"ensemble",
       ensemble_of({{"conv_autoencoder", quick_options(15, {{"channels", "8,16"}, {"latent", "8"}})},
                    {"deep_svdd", quick_options(10, {{"rep_dim", "8"}, {"pretrain_train.epochs", "10"}, {"train.lr", "0.001"}})}},
                   {{"normalization", "rank"}, {"combination", "weighted"}, {"weights", "1,2"}}),
       true},
  };
}

Data as_data(const torch::Tensor& x, bool images) { return images ? Data::images(x) : Data::tabular(x); }

}  // namespace

TEST_CASE("every detector beats chance clearly and reloads to identical scores", "[detectors]") {
  const auto all = cases();
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& c = all[i];
    // The case number keeps sections of the same detector apart.
    DYNAMIC_SECTION(c.name << (c.images ? " on images" : " on tabular data") << " #" << i) {
      const bool oriented = c.name == "rotation";
      const auto data = oriented ? adx::test::easy_oriented_images()
                        : c.images ? adx::test::easy_images()
                                   : adx::test::easy_tabular();
      auto detector = adx::make_detector(c.name, c.options);
      detector->fit(as_data(data.train, c.images));
      REQUIRE(detector->fitted());
      REQUIRE(detector->calibrated());  // calibrated on the held-out 10%
      const auto scores = detector->score(as_data(data.test, c.images));
      const double auroc = adx::metrics::roc_auc(data.labels, scores.to_vector());
      INFO(c.name << " AUROC " << auroc);
      REQUIRE(auroc > 0.9);

      const auto path = temp_path(c.name + ".adx");
      detector->save(path);
      auto loaded = adx::load(path);
      REQUIRE(loaded->type() == c.name);
      REQUIRE(loaded->threshold() == detector->threshold());
      const auto again = loaded->score(as_data(data.test, c.images));
      REQUIRE(torch::equal(again.per_item, scores.per_item));
      REQUIRE(torch::equal(loaded->predict(as_data(data.test, c.images)),
                           detector->predict(as_data(data.test, c.images))));
    }
  }
}

TEST_CASE("VAE offers four scores, each useful where it should be", "[detectors][vae]") {
  const auto data = adx::test::easy_tabular();
  adx::Vae model(adx::from_option_map<adx::VaeOptions>(quick_options(40, {{"latent", "3"}})));
  model.fit(Data::tabular(data.train));
  auto auroc_of = [&](const torch::Tensor& test, const std::vector<int>& labels, adx::VaeScore criterion) {
    return adx::metrics::roc_auc(labels, model.score_with(Data::tabular(test), criterion).to_vector());
  };
  // Off-manifold anomalies: the likelihood scores see them.
  REQUIRE(auroc_of(data.test, data.labels, adx::VaeScore::ReconstructionProbability) > 0.95);
  REQUIRE(auroc_of(data.test, data.labels, adx::VaeScore::Elbo) > 0.95);
  // On-manifold but extreme items (normal codes scaled by 4): the latent scores see them.
  torch::manual_seed(5);
  const auto normal = data.test.slice(0, 0, 200);
  const auto extreme = 4.0 * data.train.slice(0, 0, 50);
  const auto test = torch::cat({normal, extreme});
  REQUIRE(auroc_of(test, data.labels, adx::VaeScore::Kl) > 0.9);
  REQUIRE(auroc_of(test, data.labels, adx::VaeScore::LatentMahalanobis) > 0.9);
  // Monte Carlo scores are repeatable.
  REQUIRE(torch::equal(model.score(Data::tabular(data.test)).per_item, model.score(Data::tabular(data.test)).per_item));
}

TEST_CASE("the same seed gives the same model; another seed a different one", "[detectors][seed]") {
  const auto data = adx::test::easy_tabular(300, 50, 10);
  auto fit_scores = [&](const char* seed) {
    auto d = adx::make_detector("autoencoder", quick_options(5, {{"runtime.seed", seed}}));
    d->fit(Data::tabular(data.train));
    return d->score(Data::tabular(data.test)).per_item;
  };
  const auto a = fit_scores("11"), b = fit_scores("11"), c = fit_scores("12");
  REQUIRE(torch::equal(a, b));
  REQUIRE_FALSE(torch::equal(a, c));
}

TEST_CASE("thresholds: predict flags above the calibrated threshold", "[detectors][threshold]") {
  const auto data = adx::test::easy_tabular();
  auto d = adx::make_detector("autoencoder", quick_options(30, {{"bottleneck", "3"}, {"threshold.policy", "mean_std"},
                                                        {"threshold.k", "3"}}));
  d->fit(Data::tabular(data.train));
  const auto flags = d->predict(Data::tabular(data.test));
  const auto s = d->score(Data::tabular(data.test)).per_item;
  REQUIRE(torch::equal(flags, s > d->threshold()));
  // Most anomalies flagged, few normal items.
  const auto f = flags.to(torch::kInt32);
  REQUIRE(f.slice(0, 200).sum().item<int>() > 40);
  REQUIRE(f.slice(0, 0, 200).sum().item<int>() < 20);
  // Calibration on labelled data maximises F1.
  d->calibrate(Data::tabular(data.test), data.labels);
  const auto best = adx::metrics::best_f1(data.labels, d->score(Data::tabular(data.test)).to_vector());
  REQUIRE(adx::metrics::precision_recall_f1(data.labels, d->score(Data::tabular(data.test)).to_vector(),
                                            d->threshold()).f1 == Approx(best.f1));
  d->set_threshold(1e9);
  REQUIRE(d->predict(Data::tabular(data.test)).sum().item<int>() == 0);
}

TEST_CASE("early stopping restores the best epoch and the progress callback sees every epoch", "[train]") {
  const auto data = adx::test::easy_tabular(300, 10, 5);
  auto d = adx::make_detector("autoencoder", quick_options(200, {{"train.patience", "3"}, {"train.lr", "0.05"}}));
  std::vector<adx::EpochReport> reports;
  d->set_progress([&](const adx::EpochReport& r) { reports.push_back(r); });
  d->fit(Data::tabular(data.train));
  REQUIRE(!reports.empty());
  REQUIRE(reports.size() < 200);  // stopped early
  REQUIRE(reports.back().last);
  double best = 1e30;
  for (const auto& r : reports) best = std::min(best, r.val_loss);
  // The last three epochs did not improve on the best one.
  for (size_t i = reports.size() - 3; i < reports.size(); ++i) REQUIRE_FALSE(reports[i].improved);
  REQUIRE(best < reports.front().val_loss);
}

TEST_CASE("bad input is an adx::Error that names the problem", "[detectors][errors]") {
  const auto data = adx::test::easy_tabular(200, 10, 5);
  auto d = adx::make_detector("autoencoder", quick_options(2));

  REQUIRE_THROWS_AS(d->score(Data::tabular(data.test)), adx::NotFittedError);
  REQUIRE_THROWS_WITH(d->predict(Data::tabular(data.test)), Catch::Contains("before fit"));
  REQUIRE_THROWS_WITH(d->save(temp_path("unfitted.adx")), Catch::Contains("before fit"));
  REQUIRE_THROWS_WITH(d->fit(Data::tabular(torch::empty({0, 16}))), Catch::Contains("empty"));
  auto nan = data.train.clone();
  nan[5][2] = NAN;
  REQUIRE_THROWS_WITH(d->fit(Data::tabular(nan)), Catch::Contains("non-finite") && Catch::Contains("item 5"));
  auto inf = data.train.clone();
  inf[0][0] = INFINITY;
  REQUIRE_THROWS_AS(d->fit(Data::tabular(inf)), adx::ValueError);

  d->fit(Data::tabular(data.train));
  REQUIRE_THROWS_WITH(d->score(Data::tabular(torch::ones({4, 10}))),
                      Catch::Contains("[16]") && Catch::Contains("[10]"));
  REQUIRE_THROWS_WITH(d->score(Data::images(torch::ones({4, 1, 4, 4}))), Catch::Contains("fitted on tabular"));
  auto bad_score = data.test.clone();
  bad_score[1][1] = NAN;
  REQUIRE_THROWS_AS(d->score(Data::tabular(bad_score)), adx::ValueError);
  REQUIRE_THROWS_WITH(d->calibrate(Data::tabular(data.test.slice(0, 0, 3))),
                      Catch::Contains("at least 10") && Catch::Contains("got 3"));

  REQUIRE_THROWS_WITH(adx::make_detector("patchcorr"),
                      Catch::Contains("unknown detector 'patchcorr'") && Catch::Contains("autoencoder"));
  REQUIRE_THROWS_WITH(adx::make_detector("autoencoder", {{"epochs", "3"}}),
                      Catch::Contains("unknown option") && Catch::Contains("train.epochs"));
  REQUIRE_THROWS_WITH(adx::make_detector("denoising_autoencoder", {{"noise", "none"}}),
                      Catch::Contains("option 'noise' must be gaussian, masking or dropout"));
  REQUIRE_THROWS_WITH(adx::make_detector("autoencoder", {{"runtime.device", "tpu"}})->fit(Data::tabular(data.train)),
                      Catch::Contains("tpu"));

  REQUIRE_THROWS_WITH(adx::make_detector("deep_svdd", {{"bias", "true"}}),
                      Catch::Contains("bias-free") && Catch::Contains("collapses"));

  auto conv = adx::make_detector("conv_autoencoder", quick_options(1));
  REQUIRE_THROWS_WITH(conv->fit(Data::tabular(data.train)),
                      Catch::Contains("conv_autoencoder accepts image data") && Catch::Contains("tabular"));

  // Diverging training stops with an error instead of leaving NaN weights behind.
  auto diverging = adx::make_detector("autoencoder", quick_options(2, {{"preprocess", "none"}}));
  REQUIRE_THROWS_AS(diverging->fit(Data::tabular(data.train * 1e30)), adx::TrainingError);
  REQUIRE_FALSE(diverging->fitted());
}

TEST_CASE("corrupt and foreign model files are rejected by adx::load", "[io][errors]") {
  const auto data = adx::test::easy_tabular(200, 10, 5);
  auto d = adx::make_detector("autoencoder", quick_options(1));
  d->fit(Data::tabular(data.train));
  const auto path = temp_path("ae_for_corruption.adx");
  d->save(path);
  adx::ModelFile file = adx::read_model_file(path);

  auto foreign = file;
  foreign.type = "unheard_of";
  adx::write_model_file(temp_path("foreign.adx"), foreign);
  REQUIRE_THROWS_WITH(adx::load(temp_path("foreign.adx")), Catch::Contains("unknown detector 'unheard_of'"));

  auto missing = file;
  missing.tensors.erase("model.encoder.0.weight");
  adx::write_model_file(temp_path("missing.adx"), missing);
  REQUIRE_THROWS_WITH(adx::load(temp_path("missing.adx")), Catch::Contains("model.encoder.0.weight"));

  auto reshaped = file;
  reshaped.options["hidden"] = "32,8";
  adx::write_model_file(temp_path("reshaped.adx"), reshaped);
  REQUIRE_THROWS_WITH(adx::load(temp_path("reshaped.adx")), Catch::Contains("shape"));

  REQUIRE_THROWS_AS(adx::load(temp_path("does_not_exist.adx")), adx::IoError);
}

TEST_CASE("models load onto a requested device and refuse an absent one", "[io][device]") {
  const auto data = adx::test::easy_tabular(200, 10, 5);
  auto d = adx::make_detector("vae", quick_options(2));
  d->fit(Data::tabular(data.train));
  d->save(temp_path("vae_device.adx"));
  auto cpu = adx::load(temp_path("vae_device.adx"), "cpu");
  REQUIRE(cpu->device().is_cpu());
  if (!adx::cuda_available()) {
    REQUIRE_THROWS_WITH(adx::load(temp_path("vae_device.adx"), "cuda"), Catch::Contains("no CUDA device"));
  } else {
    auto gpu = adx::load(temp_path("vae_device.adx"), "cuda");
    REQUIRE(gpu->device().is_cuda());
    const auto a = cpu->score(Data::tabular(data.test)).per_item;
    const auto b = gpu->score(Data::tabular(data.test)).per_item;
    REQUIRE(torch::allclose(a, b, 1e-3, 1e-3));
  }
}

TEST_CASE("the registry lists every built-in detector", "[registry]") {
  const auto names = adx::detector_names();
  for (const char* n :
       {"autoencoder", "denoising_autoencoder", "sparse_autoencoder", "conv_autoencoder", "vae", "deep_svdd", "rotation", "ganomaly", "simclr",
        "skip_ganomaly", "anogan", "f_anogan"})
    REQUIRE(std::find(names.begin(), names.end(), n) != names.end());
}

TEST_CASE("AdamW, cosine schedule and gradient clipping train a working model", "[train]") {
  const auto data = adx::test::easy_tabular();
  auto d = adx::make_detector("autoencoder", quick_options(40, {{"bottleneck", "3"}, {"train.optimizer", "adamw"},
                                                        {"train.lr_schedule", "cosine"}, {"train.grad_clip", "1.0"},
                                                        {"train.weight_decay", "0.01"}}));
  d->fit(Data::tabular(data.train));
  REQUIRE(adx::metrics::roc_auc(data.labels, d->score(Data::tabular(data.test)).to_vector()) > 0.9);
}

TEST_CASE("denoising autoencoder trains with masking and dropout noise", "[detectors]") {
  const auto data = adx::test::easy_tabular();
  for (const char* noise : {"masking", "dropout"}) {
    auto d = adx::make_detector("denoising_autoencoder",
                                quick_options(40, {{"bottleneck", "3"}, {"noise", noise}, {"noise_level", "0.1"}}));
    d->fit(Data::tabular(data.train));
    INFO(noise);
    REQUIRE(adx::metrics::roc_auc(data.labels, d->score(Data::tabular(data.test)).to_vector()) > 0.9);
  }
}

TEST_CASE("image detectors reject a wrong image size", "[detectors][errors]") {
  const auto data = adx::test::easy_images(100, 10, 5);
  auto d = adx::make_detector("conv_autoencoder", quick_options(1, {{"channels", "4"}, {"latent", "4"}}));
  d->fit(Data::images(data.train));
  REQUIRE_THROWS_WITH(d->score(Data::images(torch::rand({3, 1, 20, 16}))),
                      Catch::Contains("[1 x 16 x 16]") && Catch::Contains("[1 x 20 x 16]"));
  REQUIRE_THROWS_WITH(d->score(Data::images(torch::rand({3, 3, 16, 16}))), Catch::Contains("[3 x 16 x 16]"));
}

TEST_CASE("Deep SVDD's center avoids zero entries and soft boundary sets a radius", "[detectors][deep_svdd]") {
  const auto data = adx::test::easy_tabular();
  adx::DeepSvdd soft(adx::from_option_map<adx::DeepSvddOptions>(
      quick_options(20, {{"rep_dim", "8"}, {"objective", "soft_boundary"}, {"nu", "0.1"}, {"warm_up_epochs", "2"},
                 {"pretrain", "false"}, {"train.lr", "0.001"}})));
  soft.fit(Data::tabular(data.train));
  REQUIRE(soft.radius() > 0.0);
  // About nu of the training items lie outside the sphere (positive soft-boundary score).
  const auto train_scores = soft.score(Data::tabular(data.train)).per_item;
  const double outside = (train_scores > 0).to(torch::kFloat64).mean().item<double>();
  REQUIRE(outside < 0.3);
  adx::ModelFile file;
  soft.save(temp_path("svdd_soft.adx"));
  file = adx::read_model_file(temp_path("svdd_soft.adx"));
  const auto c = file.tensors.at("model.center");
  REQUIRE((c.abs() >= 0.1 - 1e-6).all().item<bool>());
  REQUIRE(file.tensors.at("model.radius").item<double>() == Approx(soft.radius()));
  // No parameter of the network is a bias.
  for (const auto& kv : file.tensors) REQUIRE(kv.first.find("bias") == std::string::npos);
}

TEST_CASE("geometric transformations: the GEOM set and a shift worked by hand", "[detectors][rotation]") {
  REQUIRE(adx::make_transforms(adx::TransformSet::Rotations, 16).size() == 4);
  const auto geom = adx::make_transforms(adx::TransformSet::Geom, 16);
  REQUIRE(geom.size() == 72);
  // A row [0 1 2 3] shifted right by one with scipy's reflect (half-sample) padding becomes [0 0 1 2].
  const auto row = torch::arange(4, torch::kFloat32).reshape({1, 1, 1, 4});
  const auto shifted = adx::GeometricTransform{false, 1, 0, 0}.apply(row);
  REQUIRE(torch::equal(shifted, torch::tensor({0.0f, 0.0f, 1.0f, 2.0f}).reshape({1, 1, 1, 4})));
  // Four quarter turns are the identity; a flip reverses columns.
  const auto img = torch::rand({2, 1, 5, 5});
  REQUIRE(torch::equal(adx::GeometricTransform{false, 0, 0, 2}.apply(adx::GeometricTransform{false, 0, 0, 2}.apply(img)), img));
  REQUIRE(torch::equal(adx::GeometricTransform{true, 0, 0, 0}.apply(img), img.flip(3)));
  auto d = adx::make_detector("rotation", quick_options(1));
  REQUIRE_THROWS_WITH(d->fit(Data::images(torch::rand({20, 1, 16, 12}))), Catch::Contains("square"));
  REQUIRE_THROWS_WITH(d->fit(Data::tabular(torch::rand({20, 16}))), Catch::Contains("accepts image data"));
}

TEST_CASE("GANomaly pads to a power of two and rejects bad sizes", "[detectors][ganomaly]") {
  REQUIRE_THROWS_WITH(adx::make_detector("ganomaly", {{"image_size", "30"}}), Catch::Contains("power of two"));
  auto d = adx::make_detector("ganomaly", quick_options(1, {{"image_size", "16"}, {"latent", "4"}, {"width", "4"}}));
  REQUIRE_THROWS_WITH(d->fit(Data::images(torch::rand({8, 1, 20, 20}))), Catch::Contains("cannot hold 20x20"));
  // 28 x 28 inputs train at 32 x 32.
  auto e = adx::make_detector("ganomaly", quick_options(1, {{"latent", "4"}, {"width", "4"}}));
  e->fit(Data::images(torch::rand({16, 1, 28, 28})));
  REQUIRE(e->score(Data::images(torch::rand({3, 1, 28, 28}))).per_item.size(0) == 3);
}

TEST_CASE("a diverging GAN stops with an error that names the loss", "[detectors][ganomaly][errors]") {
  auto d = adx::make_detector("ganomaly", quick_options(2, {{"latent", "4"}, {"width", "4"}, {"preprocess", "none"}}));
  REQUIRE_THROWS_WITH(d->fit(Data::images(torch::full({16, 1, 16, 16}, 1e38f))),
                      Catch::Contains("loss became") && Catch::Contains("diverged"));
  REQUIRE_FALSE(d->fitted());
}

TEST_CASE("NT-Xent is low for matching views and high for unrelated ones", "[detectors][simclr]") {
  torch::manual_seed(3);
  const auto a = torch::randn({8, 16});
  // Identical views: each row's partner is its most similar item; the loss is near its minimum.
  const double same = adx::nt_xent(a, a, 0.1).item<double>();
  const double unrelated = adx::nt_xent(a, torch::randn({8, 16}), 0.1).item<double>();
  REQUIRE(same < 0.1);
  REQUIRE(unrelated > 1.0);
  // Hand-checkable case: two items, orthogonal unit vectors, views identical, temperature 1.
  // Row 0 of the 4 x 4 similarity (self masked) is [-, 0, 1, 0]: loss = -log(e / (e + 2)).
  const auto e2 = torch::eye(2);
  REQUIRE(adx::nt_xent(e2, e2, 1.0).item<double>() == Approx(-std::log(std::exp(1.0) / (std::exp(1.0) + 2.0))));
}

TEST_CASE("SimCLR's svdd scorer flags items far out along the normal manifold", "[detectors][simclr]") {
  // Off-manifold noise is what the augmentations teach the encoder to ignore, so the
  // center distance is tested on on-manifold extremes (the kNN scorer covers the rest).
  const auto data = adx::test::easy_tabular();
  auto d = adx::make_detector("simclr", quick_options(30, {{"rep_dim", "16"}, {"hidden", "32,32"}, {"scorer", "svdd"}}));
  d->fit(Data::tabular(data.train));
  const auto test = torch::cat({data.test.slice(0, 0, 200), 4.0 * data.train.slice(0, 0, 50)});
  const double auroc = adx::metrics::roc_auc(data.labels, d->score(Data::tabular(test)).to_vector());
  INFO("svdd scorer AUROC " << auroc);
  REQUIRE(auroc > 0.9);
}

TEST_CASE("GAN detectors refuse tabular data and bad options", "[detectors][gan][errors]") {
  for (const char* name : {"ganomaly", "skip_ganomaly", "anogan", "f_anogan"}) {
    INFO(name);
    auto d = adx::make_detector(name, quick_options(1, {{"latent", "4"}, {"width", "4"}}));
    REQUIRE_THROWS_WITH(d->fit(Data::tabular(torch::rand({20, 16}))), Catch::Contains("accepts image data"));
    REQUIRE_THROWS_WITH(adx::make_detector(name, {{"image_size", "24"}}), Catch::Contains("power of two"));
  }
  REQUIRE_THROWS_WITH(adx::make_detector("anogan", {{"lambda", "1.5"}}), Catch::Contains("option 'lambda' must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(adx::make_detector("f_anogan", {{"critic_steps", "0"}}), Catch::Contains("critic_steps"));
}

TEST_CASE("AnoGAN's latent search lowers the loss and scores each image on its own", "[detectors][anogan]") {
  const auto data = adx::test::easy_images(200, 20, 10);
  auto fit = [&](const char* steps) {
    auto d = adx::make_detector("anogan", quick_options(5, {{"latent", "8"}, {"width", "8"}, {"search_steps", steps},
                                                    {"search_batch_size", "7"}}));
    d->fit(Data::images(data.train));
    return d;
  };
  const auto none = fit("0")->score(Data::images(data.test)).per_item;
  auto searched = fit("15");
  const auto scores = searched->score(Data::images(data.test)).per_item;
  // Same seed, same GAN: the search can only improve on the best starting candidate.
  REQUIRE((scores <= none + 1e-3).all().item<bool>());
  REQUIRE(scores.mean().item<double>() < none.mean().item<double>());
  // An image scored alone gets the score it got inside a batch of 7.
  const auto alone = searched->score(Data::images(data.test.slice(0, 3, 4))).per_item;
  REQUIRE(alone.item<double>() == Approx(scores[3].item<double>()).epsilon(1e-3));
}

TEST_CASE("the trainer steps a WGAN generator once per critic_steps batches", "[train]") {
  auto w = torch::zeros({1}, torch::requires_grad());
  int critic = 0, generator = 0;
  adx::TrainStep a, b;
  a.name = "critic";
  a.parameters = {w};
  a.loss = [&](const adx::Batch&) { ++critic; return (w - 1).pow(2).sum(); };
  b.name = "generator";
  b.parameters = {w};
  b.every = 5;
  b.loss = [&](const adx::Batch&) { ++generator; return (w + 1).pow(2).sum(); };
  torch::nn::Linear holder(1, 1);
  // 100 items, batch 10: 10 batches per epoch, 3 epochs -> 30 critic and 6 generator steps.
  adx::train_steps(*holder, Data::tabular(torch::rand({100, 1})), Data(), adx::TrainOptions().epochs(3).batch_size(10),
                   {a, b}, nullptr);
  REQUIRE(critic == 30);
  REQUIRE(generator == 6);
}

TEST_CASE("scores do not depend on how many items are scored at once", "[detectors][chunks]") {
  // Same seed, same training; one scores 1 or 7 items per pass, the other the default 2048.
  const std::vector<std::pair<std::string, bool>> picks{
      {"autoencoder", false}, {"vae", false}, {"deep_svdd", true}, {"simclr", false}, {"anogan", true}};
  for (const auto& [name, images] : picks) {
    Case c;
    for (const auto& candidate : cases())
      if (candidate.name == name && candidate.images == images) c = candidate;
    const auto data = images ? adx::test::easy_images() : adx::test::easy_tabular();
    auto whole = adx::make_detector(name, c.options);
    whole->fit(as_data(data.train, images));
    const auto a = whole->score(as_data(data.test, images)).per_item;
    for (const char* chunk : {"1", "7"}) {
      auto options = c.options;
      options["runtime.score_batch_size"] = chunk;
      auto chunked = adx::make_detector(name, options);
      chunked->fit(as_data(data.train, images));
      INFO(name << " scoring " << chunk << " at a time");
      const auto b = chunked->score(as_data(data.test, images)).per_item;
      REQUIRE(torch::allclose(a, b, 1e-4, 1e-5));
    }
  }
}

// ---- Isolation Forest ----------------------------------------------------------------------

TEST_CASE("isolation forest: c(n), the average path length, worked by hand", "[detectors][isolation_forest]") {
  REQUIRE(adx::isolation_average_path_length(0) == 0.0);
  REQUIRE(adx::isolation_average_path_length(1) == 0.0);
  REQUIRE(adx::isolation_average_path_length(2) == 1.0);
  // c(3) = 2 (ln 2 + 0.5772157) - 2 * 2 / 3 = 2.5407257 - 1.3333333
  REQUIRE(adx::isolation_average_path_length(3) == Approx(1.2073924).epsilon(1e-7));
  // c(4) = 2 (ln 3 + 0.5772157) - 2 * 3 / 4 = 3.3516559 - 1.5
  REQUIRE(adx::isolation_average_path_length(4) == Approx(1.8516559).epsilon(1e-7));
  // c(256) = 2 (ln 255 + 0.5772157) - 2 * 255 / 256 = 12.2369584 - 1.9921875
  REQUIRE(adx::isolation_average_path_length(256) == Approx(10.2447709).epsilon(1e-7));
}

TEST_CASE("isolation forest: path lengths and scores of hand-built trees", "[detectors][isolation_forest]") {
  // Tree 1: x0 <= 0.5 ? leaf(1 item) : (x1 <= 2 ? leaf(2 items) : leaf(1 item)).
  // Tree 2: a single leaf that held all 4 items (a constant sample): every path is c(4).
  adx::IsolationForestModel forest;
  forest.feature = {0, -1, 1, -1, -1, -1};
  forest.split = {0.5, 0, 2.0, 0, 0, 0};
  forest.left = {1, -1, 3, -1, -1, -1};
  forest.right = {2, -1, 4, -1, -1, -1};
  forest.size = {4, 1, 3, 2, 1, 4};
  forest.roots = {0, 5};
  forest.samples_per_tree = 4;
  forest.features = 2;
  const auto rows = torch::tensor({0.2, 9.0, 0.9, 1.0, 0.9, 3.0, 0.5, 2.0}, torch::kFloat64).reshape({4, 2});
  const double c4 = 1.8516559071392855;
  // Tree 1: depth 1 + c(1) = 1; depth 2 + c(2) = 3; depth 2 + c(1) = 2; a value equal to the split goes
  // left: 0.5 <= 0.5, depth 1.
  const auto lengths = adx::isolation_path_lengths(forest, rows);
  const std::vector<double> tree_one{1.0, 3.0, 2.0, 1.0};
  for (int64_t i = 0; i < 4; ++i) {
    const double expected = (tree_one[static_cast<size_t>(i)] + c4) / 2;
    REQUIRE(lengths[i].item<double>() == Approx(expected).epsilon(1e-12));
    REQUIRE(adx::isolation_scores(forest, rows)[i].item<double>() ==
            Approx(std::pow(2.0, -expected / c4)).epsilon(1e-12));
  }
  // The shallow path scores highest; one tree alone gives 2^(-1 / c(4)) = 0.6877437.
  forest.roots = {0};
  REQUIRE(adx::isolation_scores(forest, rows)[0].item<double>() == Approx(0.6877437).epsilon(1e-6));
  REQUIRE_THROWS_AS(adx::isolation_scores(forest, torch::zeros({2, 3}, torch::kFloat64)), adx::ShapeError);
}

TEST_CASE("isolation forest: detects outliers, grows the same forest for a seed, reloads", "[detectors][isolation_forest]") {
  torch::manual_seed(3);
  const auto train = torch::randn({500, 8});
  const auto test = torch::cat({torch::randn({200, 8}), 10.0 * torch::rand({40, 8}) - 5.0});
  std::vector<int> labels(200, 0);
  labels.resize(240, 1);
  auto detector = adx::make_detector("isolation_forest", {{"runtime.seed", "4"}, {"runtime.threads", "2"}});
  detector->fit(Data::tabular(train));
  REQUIRE(detector->calibrated());
  const auto scores = detector->score(Data::tabular(test));
  const double auroc = adx::metrics::roc_auc(labels, scores.to_vector());
  INFO("AUROC " << auroc);
  REQUIRE(auroc > 0.9);
  REQUIRE(scores.per_item.min().item<double>() > 0.0);
  REQUIRE(scores.per_item.max().item<double>() <= 1.0);
  // The trees are limited to ceil(log2 256) = 8 levels and each grew on 256 items.
  const auto& forest = dynamic_cast<adx::IsolationForest&>(*detector).forest();
  REQUIRE(forest.roots.size() == 100);
  REQUIRE(forest.samples_per_tree == 256);
  REQUIRE(forest.size[static_cast<size_t>(forest.roots[0])] == 256);

  // The same seed grows the same forest, whatever the thread count.
  auto again = adx::make_detector("isolation_forest", {{"runtime.seed", "4"}, {"runtime.threads", "1"}});
  again->fit(Data::tabular(train));
  REQUIRE(torch::equal(again->score(Data::tabular(test)).per_item, scores.per_item));
  auto other = adx::make_detector("isolation_forest", {{"runtime.seed", "5"}});
  other->fit(Data::tabular(train));
  REQUIRE_FALSE(torch::equal(other->score(Data::tabular(test)).per_item, scores.per_item));

  const auto path = temp_path("isolation_forest.adx");
  detector->save(path);
  auto loaded = adx::load(path);
  REQUIRE(torch::equal(loaded->score(Data::tabular(test)).per_item, scores.per_item));
  REQUIRE(loaded->threshold() == detector->threshold());

  // A node whose child points back up would loop forever: the file is refused.
  auto file = adx::read_model_file(path);
  file.tensors["isolation_forest.left"][0] = 0;
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("isolation forest node 0 is invalid"));
}

TEST_CASE("isolation forest: constant data and all-zero rows score 0.5, never NaN", "[detectors][isolation_forest]") {
  // No feature varies: every tree is one leaf of 256 items, every path c(256), every score 2^-1.
  adx::IsolationForest forest;
  forest.fit(Data::tabular(torch::full({300, 4}, 7.0)));
  const auto scores = forest.score(Data::tabular(torch::cat({torch::full({2, 4}, 7.0), torch::zeros({1, 4})})));
  REQUIRE(torch::allclose(scores.per_item, torch::full({3}, 0.5f)));
  // Sparse binary rows with an all-zero one among them.
  auto rows = (torch::rand({200, 30}) < 0.05).to(torch::kFloat32);
  rows[0].zero_();
  adx::IsolationForest sparse;
  sparse.fit(Data::tabular(rows));
  REQUIRE(sparse.score(Data::tabular(rows)).per_item.isfinite().all().item<bool>());
  REQUIRE_THROWS_WITH(adx::IsolationForest(adx::IsolationForestOptions().max_samples(1)).fit(Data::tabular(rows)),
                      Catch::Contains("max_samples' must be >= 2, got 1"));
}
