// Industrial inspection: the MVTec-layout loader and synthetic generator,
// memory-bank algorithms against brute force, PaDiM and PatchCore on
// synthetic defects (image and pixel level), persistence and bad input.
#include "test_helpers.hpp"

#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include <adx/metrics/pixel_tensors.hpp>
#include <adx/data/generators/synthetic_industrial.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using adx::Data;

namespace {

// A small synthetic data set, written once per test run.
const std::string& synthetic_root() {
  static const std::string root = [] {
    const auto dir = adx::test::temp_path("synthetic_industrial");
    fs::remove_all(dir);
    adx::SyntheticOptions o;
    o.image_size = 64;
    o.train_images = 24;
    o.good_test_images = 8;
    o.defects_per_type = 3;
    adx::write_synthetic_industrial(dir, o);
    return dir;
  }();
  return root;
}

// SPADE's image AUROC with `options` on defects that change the image as a whole (a bright square over
// a tenth of it), the easy images grown to 64 px.
double spade_large_defect_auroc(const adx::OptionMap& options) {
  const auto easy = adx::test::easy_images(120, 30, 20);
  auto grow = [](const torch::Tensor& x) { return adx::test::nearest_upscale(x, 64).clamp(0, 1); };
  auto spade = adx::make_detector("spade", options);
  spade->fit(Data::images(grow(easy.train)));
  return adx::metrics::roc_auc(easy.labels, spade->score(Data::images(grow(easy.test))).to_vector());
}

}  // namespace

TEST_CASE("the synthetic data set has MVTec layout and masks that match their defects", "[industrial][data]") {
  const auto category = adx::load_mvtec_category(synthetic_root() + "/washer", {64, 0});
  REQUIRE(category.train.sizes() == torch::IntArrayRef({24, 3, 64, 64}));
  REQUIRE(category.test.size(0) == 8 + 5 * 3);
  REQUIRE(category.test_masks.size(1) == 1);
  for (size_t i = 0; i < category.test_labels.size(); ++i) {
    const double area = category.test_masks[i].sum().item<double>();
    INFO(category.test_paths[i]);
    if (category.test_labels[i] == 0) REQUIRE(area == 0);
    else REQUIRE(area > 0);
  }
  // Every category generated; resize + centre crop give the requested size.
  for (const char* name : {"weave", "grain", "tiles", "washer", "plate"})
    REQUIRE(fs::is_directory(synthetic_root() + "/" + name + "/ground_truth/crack"));
  const auto cropped = adx::load_mvtec_category(synthetic_root() + "/tiles", {48, 32});
  REQUIRE(cropped.test.sizes() == torch::IntArrayRef({23, 3, 32, 32}));
  REQUIRE(cropped.test_masks.sizes() == torch::IntArrayRef({23, 1, 32, 32}));
}

TEST_CASE("bad image folders are clear errors naming the file", "[industrial][data][errors]") {
  const auto root = adx::test::temp_path("broken_mvtec");
  fs::remove_all(root);
  fs::create_directories(root + "/train/good");
  REQUIRE_THROWS_WITH(adx::load_mvtec_category(root), Catch::Contains("train/good holds no training images"));
  std::ofstream(root + "/train/good/broken.png") << "not a png";
  REQUIRE_THROWS_WITH(adx::load_mvtec_category(root), Catch::Contains("broken.png"));
  fs::remove(root + "/train/good/broken.png");
  adx::write_png(root + "/train/good/ok.png", torch::rand({3, 16, 16}));
  fs::create_directories(root + "/test/spot");
  fs::create_directories(root + "/ground_truth/spot");
  adx::write_png(root + "/test/spot/a.png", torch::rand({3, 16, 16}));
  adx::write_png(root + "/ground_truth/spot/a_mask.png", torch::ones({1, 8, 8}));
  REQUIRE_THROWS_WITH(adx::load_mvtec_category(root), Catch::Contains("a_mask.png is 8x8 but its image") &&
                                                          Catch::Contains("is 16x16"));
  REQUIRE_THROWS_WITH(adx::read_image(root + "/missing.png"), Catch::Contains("missing.png does not exist"));
  REQUIRE_THROWS_WITH(adx::load_mvtec_category(root + "/nope"), Catch::Contains("does not exist"));
}

TEST_CASE("greedy coreset equals the plain k-center loop; nearest neighbours equal brute force",
          "[industrial][coreset]") {
  torch::manual_seed(4);
  const auto points = torch::randn({500, 12});
  const auto coreset = adx::greedy_coreset(points, 40, 17);
  // The plain O(N k) algorithm, as anomalib writes it.
  auto nearest = (points - points[17]).norm(2, 1);
  std::vector<int64_t> expected;
  for (int i = 0; i < 40; ++i) {
    const int64_t next = nearest.argmax().item<int64_t>();
    expected.push_back(next);
    nearest = torch::minimum(nearest, (points - points[next]).norm(2, 1));
  }
  REQUIRE(coreset.indices == expected);
  REQUIRE(coreset.coverage_radius == Approx(nearest.max().item<double>()).epsilon(1e-5));

  const auto queries = torch::randn({300, 12});
  torch::Tensor distance, index;
  adx::nearest_neighbours(queries, points, &distance, &index, /*block_elements=*/5000);  // forces many blocks
  // Brute force in float64: the same rows but at float32 near-ties, distances within float32 rounding.
  const auto brute = torch::cdist(queries.to(torch::kFloat64), points.to(torch::kFloat64)).min(1);
  adx::test::require_same_nearest(queries, points, index, distance, std::get<1>(brute), 1e-5);
  // scikit-learn: johnson_lindenstrauss_min_dim(204800, eps=0.9) = 301, (1000, eps=0.9) = 170.
  REQUIRE(adx::johnson_lindenstrauss_dim(204800, 0.9) == 301);
  REQUIRE(adx::johnson_lindenstrauss_dim(1000, 0.9) == 170);
}

TEST_CASE("PaDiM, PatchCore and SPADE find synthetic defects and reload to identical maps", "[industrial][detectors]") {
  const auto category = adx::load_mvtec_category(synthetic_root() + "/washer", {64, 0});
  const adx::OptionMap common{{"backbone", "resnet18"}, {"runtime.threads", "2"}, {"runtime.seed", "3"}};
  for (const char* name : {"padim", "patchcore", "spade"}) {
    DYNAMIC_SECTION(name) {
      auto options = common;
      if (std::string(name) == "patchcore") options["layers"] = "layer1,layer2";
      auto detector = adx::make_detector(name, options);
      detector->fit(Data::images(category.train));
      const auto scores = detector->score(Data::images(category.test));
      REQUIRE(scores.pixel_map.sizes() == torch::IntArrayRef({category.test.size(0), 1, 64, 64}));
      const double image_auroc = adx::metrics::roc_auc(category.test_labels, scores.to_vector());
      const double pixel_auroc =
          adx::metrics::pixel_roc_auc(adx::metrics::mask_stack(category.test_masks), adx::metrics::map_stack(scores.pixel_map));
      INFO(name << " image AUROC " << image_auroc << ", pixel AUROC " << pixel_auroc);
      REQUIRE(pixel_auroc > 0.8);
      if (std::string(name) != "spade") {
        REQUIRE(image_auroc > 0.8);
      } else {
        // SPADE's image score compares globally pooled features; the last layer's mean little without
        // ImageNet weights. With an earlier layer pooled and defects that change the image as a whole (a
        // bright square over a tenth of it) it must separate clearly.
        auto spade_options = options;
        spade_options["image_layer"] = "layer2";
        const double easy_auroc = spade_large_defect_auroc(spade_options);
        INFO("spade image AUROC on large defects " << easy_auroc);
        REQUIRE(easy_auroc > 0.9);
      }
      const auto path = adx::test::temp_path(std::string(name) + ".adx");
      detector->save(path);
      auto loaded = adx::load(path);
      const auto again = loaded->score(Data::images(category.test));
      REQUIRE(torch::equal(again.per_item, scores.per_item));
      REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
    }
  }
}

TEST_CASE("the default configurations find defects: PatchCore on Wide-ResNet-50-2 layers 2 + 3, SPADE's layer-4 "
          "image score", "[industrial][detectors]") {
  const auto category = adx::load_mvtec_category(synthetic_root() + "/washer", {64, 0});
  const adx::OptionMap common{{"runtime.threads", "2"}, {"runtime.seed", "3"}};
  SECTION("patchcore") {
    auto detector = adx::make_detector("patchcore", common);
    REQUIRE(detector->options_map().at("backbone") == "wide_resnet50_2");
    REQUIRE(detector->options_map().at("layers") == "layer2,layer3");
    detector->fit(Data::images(category.train));
    const auto scores = detector->score(Data::images(category.test));
    const double image_auroc = adx::metrics::roc_auc(category.test_labels, scores.to_vector());
    const double pixel_auroc =
        adx::metrics::pixel_roc_auc(adx::metrics::mask_stack(category.test_masks), adx::metrics::map_stack(scores.pixel_map));
    INFO("image AUROC " << image_auroc << ", pixel AUROC " << pixel_auroc);
    REQUIRE(image_auroc > 0.8);
    REQUIRE(pixel_auroc > 0.8);
  }
  SECTION("spade") {
    // The default image score pools layer 4, which carries little with a random backbone: on defects that
    // change the image as a whole it must still beat chance clearly (0.79 here; layer 2 reaches 0.9, above).
    REQUIRE(adx::make_detector("spade", common)->options_map().at("image_layer") == "layer4");
    const double auroc = spade_large_defect_auroc(common);
    INFO("spade default image AUROC on large defects " << auroc);
    REQUIRE(auroc > 0.75);
  }
}

TEST_CASE("the real-time preset fills in the options left at their defaults; channels-last and bfloat16 "
          "convolutions score as float32 does, up to rounding, and reload to identical scores",
          "[industrial][detectors]") {
  adx::Patchcore preset(adx::PatchcoreOptions().preset(adx::PatchcorePreset::Realtime));
  REQUIRE(preset.options().backbone() == "resnet18");
  REQUIRE(preset.options().coreset_ratio() == 0.01);
  REQUIRE(preset.options().channels_last());
  adx::Patchcore mine(adx::PatchcoreOptions().preset(adx::PatchcorePreset::Realtime).coreset_ratio(0.05));
  REQUIRE(mine.options().coreset_ratio() == 0.05);
  REQUIRE_THROWS_AS(adx::make_detector("patchcore", {{"preset", "fast"}}), adx::OptionError);
  // Model files written before the preset was an enum hold "" for the paper's settings.
  REQUIRE(adx::make_detector("patchcore", {{"preset", ""}})->options_map().at("preset") == "paper");
  REQUIRE_THROWS_AS(adx::make_detector("padim", {{"precision", "float16"}}), adx::OptionError);

  const auto category = adx::load_mvtec_category(synthetic_root() + "/washer", {64, 0});
  const adx::OptionMap common{{"backbone", "resnet18"}, {"layers", "layer1,layer2"}, {"runtime.threads", "2"},
                              {"runtime.seed", "3"}};
  auto reference = adx::make_detector("patchcore", common);
  reference->fit(Data::images(category.train));
  const auto expected = reference->score(Data::images(category.test));
  for (const std::string variant : {"channels_last", "bfloat16"}) {
    DYNAMIC_SECTION(variant) {
      auto options = common;
      if (variant == "channels_last") options["channels_last"] = "true";
      if (variant == "bfloat16") options["precision"] = "bfloat16";
      if (variant == "bfloat16" && !adx::cpu_has_bfloat16()) {
        // No AVX-512 BF16 here: a clear error rather than slow emulated bfloat16.
        REQUIRE_THROWS_AS(adx::make_detector("patchcore", options)->fit(Data::images(category.train)), adx::OptionError);
        return;
      }
      auto detector = adx::make_detector("patchcore", options);
      detector->fit(Data::images(category.train));
      const auto scores = detector->score(Data::images(category.test));
      // bfloat16 keeps 8 bits of mantissa: features err by about 1%, and a nearest-patch distance, a small
      // difference of two features, by up to about 10% (8.6% here).
      const double tolerance = variant == "bfloat16" ? 0.2 : 1e-4;
      INFO(variant << " largest relative difference "
                   << ((scores.per_item - expected.per_item).abs() / expected.per_item.abs()).max().item<double>());
      REQUIRE(torch::allclose(scores.per_item, expected.per_item, tolerance, 0));
      REQUIRE(adx::metrics::roc_auc(category.test_labels, scores.to_vector()) > 0.8);
      const auto path = adx::test::temp_path("patchcore_" + variant + ".adx");
      detector->save(path);
      auto loaded = adx::load(path);
      const auto again = loaded->score(Data::images(category.test));
      REQUIRE(torch::equal(again.per_item, scores.per_item));
      REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
    }
  }
}

TEST_CASE("PaDiM, PatchCore and SPADE keep every training image and set the threshold on left-out scores",
          "[industrial][detectors]") {
  const auto category = adx::load_mvtec_category(synthetic_root() + "/grain", {64, 0});
  const int64_t n = 10;
  const auto train = category.train.slice(0, 0, n);
  const adx::OptionMap common{{"backbone", "resnet18"},  {"runtime.threads", "2"},        {"runtime.seed", "3"},
                              {"threshold.policy", "percentile"}, {"threshold.percentile", "50"}};
  for (const char* name : {"padim", "patchcore", "spade"}) {
    DYNAMIC_SECTION(name) {
      auto options = common;
      if (std::string(name) == "patchcore") options["layers"] = "layer1,layer2", options["coreset_ratio"] = "1";
      auto detector = adx::make_detector(name, options);
      detector->fit(Data::images(train));
      REQUIRE(detector->calibrated());
      if (auto* patchcore = dynamic_cast<adx::Patchcore*>(detector.get())) {
        // Every image's patches are in memory: none was held out.
        const auto one = adx::make_detector(name, options);
        one->fit(Data::images(train.slice(0, 0, 1)));
        REQUIRE(patchcore->memory_bank().size(0) == n * dynamic_cast<adx::Patchcore*>(one.get())->memory_bank().size(0));
      }
      // What each training image scores under a detector fitted on the other n - 1.
      std::vector<double> refit;
      for (int64_t i = 0; i < n; ++i) {
        auto others = adx::make_detector(name, options);
        others->fit(Data::images(torch::cat({train.slice(0, 0, i), train.slice(0, i + 1, n)})));
        refit.push_back(others->score(Data::images(train.slice(0, i, i + 1))).to_vector()[0]);
      }
      const double expected = adx::fit_threshold(refit, adx::ThresholdOptions().percentile(50));
      INFO(name << ": threshold " << detector->threshold() << ", from refits " << expected);
      if (std::string(name) == "padim") {
        // The closed form keeps the normaliser n - 1 (see padim_left_out_distances): every left-out score,
        // and so the median, lies within a factor sqrt((n - 1) / (n - 2)) above the refit's.
        REQUIRE(detector->threshold() >= expected * (1 - 1e-4));
        REQUIRE(detector->threshold() <= expected * std::sqrt((n - 1.0) / (n - 2.0)) * (1 + 1e-4));
      } else {
        REQUIRE(detector->threshold() == Approx(expected).epsilon(1e-4));
      }
      // Explicit validation data still calibrates instead.
      auto validated = adx::make_detector(name, options);
      validated->fit(Data::images(train), Data::images(category.train.slice(0, n, 2 * n)));
      REQUIRE(validated->threshold() ==
              Approx(adx::fit_threshold(validated->score(Data::images(category.train.slice(0, n, 2 * n))).to_vector(),
                                        adx::ThresholdOptions().percentile(50)))
                  .epsilon(1e-6));
    }
  }
}

TEST_CASE("heatmap overlays are written as PNGs of the image size", "[industrial][data]") {
  const auto path = adx::test::temp_path("overlay.png");
  adx::write_heatmap_overlay(path, torch::rand({3, 20, 30}), torch::rand({20, 30}), 0.0, 1.0);
  const auto back = adx::read_image(path);
  REQUIRE(back.sizes() == torch::IntArrayRef({3, 20, 30}));
  REQUIRE_THROWS_WITH(adx::write_heatmap_overlay(path, torch::rand({3, 20, 30}), torch::rand({10, 30}), 0, 1),
                      Catch::Contains("3 x H x W image and an H x W map"));
}
