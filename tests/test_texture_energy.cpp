// texture_energy: the filter bank's construction, a planted defect found and mapped, the model file, the
// left-out scale against refitting without each image, and images too small or too few.
#include <adx/adx.hpp>

#include "test_helpers.hpp"

#include <catch2/catch.hpp>

using adx::Data;
using adx::test::striped;

namespace {

/// Stripes with a bright 16 x 16 block in the middle of the last `defective` images.
torch::Tensor with_blocks(torch::Tensor images, int64_t defective) {
  using torch::indexing::Slice;
  const int64_t n = images.size(0), size = images.size(2), at = size / 2 - 8;
  images.index_put_({Slice(n - defective), Slice(), Slice(at, at + 16), Slice(at, at + 16)}, 1.0);
  return images;
}

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
  // Clean images sit below the threshold set on left-out training images; the blocks far above it.
  const auto flagged = detector->predict(Data::images(test));
  CHECK(flagged.slice(0, 6).all().item<bool>());
  CHECK(flagged.slice(0, 0, 6).sum().item<int64_t>() <= 1);

  const auto path = adx::test::temp_path("texture_energy.adx");
  detector->save(path);
  auto loaded = adx::load(path);
  const auto again = loaded->score(Data::images(test));
  REQUIRE(torch::equal(again.per_item, scores.per_item));
  REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
  REQUIRE(loaded->threshold() == detector->threshold());
}

TEST_CASE("texture_energy's scale is the median of each image's largest score with that image refitted out",
          "[industrial][texture_energy]") {
  // One window size, so an image's score is its largest window score over the scale. Fitting without
  // image i and scoring image i gives that largest score times the refitted model's scale.
  const auto train = striped(5, 32, 3);
  const adx::OptionMap options{{"windows", "16"}, {"sigmas", "1,2"}};
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
