// texture_energy: the filter bank's construction, a planted defect found and mapped, the model file, the
// left-out scale against refitting without each image, and images too small or too few.
#include <adx/adx.hpp>

#include "test_helpers.hpp"

#include <catch2/catch.hpp>

using adx::Data;
using adx::test::striped;
using adx::test::with_blocks;

namespace {

double model_scale(const adx::Detector& detector, int64_t window_size) {
  return detector.to_model_file().tensors.at("model.scale")[window_size].item<double>();
}

}  // namespace

TEST_CASE("texture_energy's filter bank: 10 filters per scale, zero-mean derivatives, a unit Gaussian",
          "[industrial][texture_energy]") {
  const auto bank = adx::texture_filter_bank({1, 2}).to(torch::kFloat64);
  REQUIRE(bank.sizes() == torch::IntArrayRef({20, 1, 13, 13}));  // 3 x the largest sigma either side
  const auto sums = bank.flatten(1).sum(1);
  for (int64_t f = 0; f < 20; ++f) CHECK(sums[f].item<double>() == Approx(f % 10 == 9 ? 1.0 : 0.0).margin(1e-6));
  // A ramp of slope 1 along the first orientation: the first derivative at sigma 2 answers -1 (the sign of
  // -u / sigma^2), the second derivative and the Laplacian 0.
  const auto ramp = torch::arange(13, torch::kFloat64).reshape({1, 1, 1, 13}).expand({1, 1, 13, 13});
  const auto responses = (bank * ramp).flatten(1).sum(1);
  CHECK(responses[10].item<double>() == Approx(-1.0).margin(0.02));
  CHECK(responses[11].item<double>() == Approx(0.0).margin(1e-6));
  CHECK(responses[18].item<double>() == Approx(0.0).margin(1e-6));
}

TEST_CASE("texture_energy finds a planted block, maps it where it is, and reloads to identical maps",
          "[industrial][texture_energy][detectors]") {
  const auto train = striped(40, 64, 1);
  const auto test = with_blocks(striped(12, 64, 2), 6);
  std::vector<int> labels(12, 0);
  std::fill(labels.begin() + 6, labels.end(), 1);
  auto detector = adx::make_detector("texture_energy", {{"runtime.threads", "2"}});
  detector->fit(Data::images(train));
  REQUIRE(detector->calibrated());
  const auto scores = detector->score(Data::images(test));
  REQUIRE(scores.pixel_map.sizes() == torch::IntArrayRef({12, 1, 64, 64}));
  REQUIRE(torch::isfinite(scores.pixel_map).all().item<bool>());
  CHECK(adx::metrics::roc_auc(labels, scores.to_vector()) == 1.0);
  // The hottest pixel lies on the block or within the larger window's half-stride of it.
  for (int64_t i = 6; i < 12; ++i) {
    const int64_t at = scores.pixel_map[i].argmax().item<int64_t>(), slack = 8;
    CHECK(at / 64 >= 24 - slack);
    CHECK(at / 64 < 40 + slack);
    CHECK(at % 64 >= 24 - slack);
    CHECK(at % 64 < 40 + slack);
  }
  // The threshold, set on 40 left-out training images, lies among the clean images' scores (3 of these 6
  // lie above it: see the "good flagged" column of the texture benchmark for the rate on real images) and
  // far below the blocks'.
  INFO("threshold " << detector->threshold() << ", scores " << scores.per_item);
  const auto flagged = detector->predict(Data::images(test));
  CHECK(flagged.slice(0, 6).all().item<bool>());
  CHECK(flagged.slice(0, 0, 6).sum().item<int64_t>() < 6);
  CHECK(scores.per_item.slice(0, 6).min().item<double>() > 100 * detector->threshold());

  const auto path = adx::test::temp_path("texture_energy.adx");
  detector->save(path);
  auto loaded = adx::load(path);
  const auto again = loaded->score(Data::images(test));
  REQUIRE(torch::equal(again.per_item, scores.per_item));
  REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
  REQUIRE(loaded->threshold() == detector->threshold());
  // A file whose scale is 0 (or whose kept windows are missing) is refused, not scored into NaN.
  auto file = adx::read_model_file(path);
  file.tensors.at("model.scale").zero_();
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("scales must be positive"));
  file = detector->to_model_file();
  REQUIRE(file.tensors.erase("texture_energy.training_windows.1") == 1);
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("texture_energy.training_windows.1"));
}

TEST_CASE("texture_energy's scale is the median of each image's largest score with that image refitted out",
          "[industrial][texture_energy]") {
  // One window size and the Gaussian alone, so an image's score is its largest window score over the
  // scale. Fitting without image i and scoring image i gives that largest score times the refitted
  // model's scale.
  const auto train = striped(5, 32, 3);
  const adx::OptionMap options{{"windows", "16"}, {"sigmas", "1,2"}, {"scoring", "gaussian"}};
  auto detector = adx::make_detector("texture_energy", options);
  detector->fit(Data::images(train));
  std::vector<double> largest;
  for (int64_t i = 0; i < 5; ++i) {
    const auto others = torch::cat({train.slice(0, 0, i), train.slice(0, i + 1)});
    auto refitted = adx::make_detector("texture_energy", options);
    refitted->fit(Data::images(others));
    largest.push_back(refitted->score(Data::images(train.slice(0, i, i + 1))).per_item.item<double>() *
                      model_scale(*refitted, 0));
  }
  std::sort(largest.begin(), largest.end());
  CHECK(model_scale(*detector, 0) == Approx(largest[2]).epsilon(1e-4));
}

TEST_CASE("texture_energy's nearest-window scale leaves each image's own windows out; a training image scores 0",
          "[industrial][texture_energy]") {
  const auto train = striped(5, 32, 7);
  auto detector = adx::make_detector("texture_energy", {{"windows", "16"}, {"sigmas", "1,2"}, {"scoring", "nearest"}});
  detector->fit(Data::images(train));
  const auto file = detector->to_model_file();
  REQUIRE(file.tensors.count("texture_energy.training_windows.0") == 1);
  REQUIRE(file.tensors.count("texture_energy.training_windows.1") == 0);
  // A 5 x 5 grid of windows per image, of which the model keeps rows and columns 0, 2 and 4: 9 per image.
  const auto kept = file.tensors.at("texture_energy.training_windows.0").to(torch::kFloat64);
  REQUIRE(kept.sizes() == torch::IntArrayRef({45, 20}));
  // Every window of each image, whitened as the model whitens: (energies - mean) L. A kept window is the
  // same row in both.
  const auto mean = file.tensors.at("model.mean")[0], whitening = file.tensors.at("model.whitening")[0];
  const auto bank = adx::texture_filter_bank({1, 2});
  const auto padded = torch::nn::functional::pad(
      train, torch::nn::functional::PadFuncOptions({6, 6, 6, 6}).mode(torch::kReflect));
  auto responses = torch::conv2d(padded, bank);
  const auto gaussians = (torch::arange(20) % 10 == 9).reshape({1, -1, 1, 1});
  responses = torch::where(gaussians, responses, responses.abs());
  const auto all = (torch::avg_pool2d(responses, 16, 4).flatten(2).transpose(1, 2).to(torch::kFloat64) - mean)
                       .matmul(whitening);  // 5 x 25 x 20
  CHECK(torch::allclose(all.reshape({5, 5, 5, 20}).slice(1, 0, 5, 2).slice(2, 0, 5, 2).reshape({45, 20}), kept,
                        1e-4, 1e-4));
  // By brute force: each window's nearest squared distance to the other images' kept windows, the largest
  // per image, and the median (the third of five) over the images.
  std::vector<double> largest;
  for (int64_t i = 0; i < 5; ++i) {
    const auto others = torch::cat({kept.slice(0, 0, i * 9), kept.slice(0, (i + 1) * 9)});
    largest.push_back(torch::cdist(all[i], others).square().amin(1).max().item<double>());
  }
  std::sort(largest.begin(), largest.end());
  CHECK(file.tensors.at("model.nearest_scale")[0].item<double>() == Approx(largest[2]).epsilon(1e-5));
  // With a cap, a seeded random subset of the kept windows: the same subset again for the same seed.
  auto capped_windows = [&](const char* seed) {
    auto capped = adx::make_detector(
        "texture_energy", {{"windows", "16"}, {"sigmas", "1,2"}, {"scoring", "nearest"}, {"nearest_windows", "10"},
                           {"runtime.seed", seed}});
    capped->fit(Data::images(train));
    return capped->to_model_file().tensors.at("texture_energy.training_windows.0");
  };
  const auto capped = capped_windows("1");
  REQUIRE(capped.sizes() == torch::IntArrayRef({10, 20}));
  CHECK(torch::equal(capped, capped_windows("1")));
  CHECK(torch::cdist(capped.to(torch::kFloat64), kept).amin(1).max().item<double>() < 1e-6);  // rows of `kept`
  // A training image's kept windows score 0; its others no more than the left-out search found.
  const auto own = detector->score(Data::images(train.slice(0, 1, 2)));
  CHECK(own.pixel_map.min().item<double>() == 0.0);
  CHECK(own.per_item.item<double>() <= largest.back() / largest[2] + 1e-6);
}

TEST_CASE("texture_energy: small images cut the windows; images under the filters' reach and a single image "
          "are refused",
          "[industrial][texture_energy][errors]") {
  // 20 px images: the 32 px window is cut to 20 and the model still finds the blocks (radius 12 < 20).
  const auto train = striped(30, 20, 4);
  const auto test = with_blocks(striped(8, 20, 5), 4);
  auto detector = adx::make_detector("texture_energy");
  detector->fit(Data::images(train));
  const auto scores = detector->score(Data::images(test)).per_item;
  CHECK(scores.slice(0, 4).min().item<double>() > scores.slice(0, 0, 4).max().item<double>());
  // 12 px: a sigma-4 filter reaches 12 px either side, more than reflect padding can give.
  auto small = adx::make_detector("texture_energy");
  REQUIRE_THROWS_WITH(small->fit(Data::images(striped(10, 12, 6))),
                      Catch::Contains("12 x 12") && Catch::Contains("radius 12"));
  auto alone = adx::make_detector("texture_energy");
  REQUIRE_THROWS_WITH(alone->fit(Data::images(striped(1, 32, 6))), Catch::Contains("at least 2 training images"));
  REQUIRE_THROWS_WITH(adx::make_detector("texture_energy", {{"windows", "2"}}), Catch::Contains("'windows'"));
}
