// Self-supervised inspection: DRAEM trains on synthetic anomalies and finds real ones,
// reloads to identical scores and maps, and refuses bad input clearly.
#include "test_helpers.hpp"

#include <adx/detectors/draem/draem.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

using adx::Data;

namespace {

// The easy striped images, grown to 32 px (DRAEM halves the image 5 times) and kept in [0, 1].
adx::test::Easy easy_images_32(int64_t n_train, int64_t n_normal_test, int64_t n_anomalies) {
  auto easy = adx::test::easy_images(n_train, n_normal_test, n_anomalies);
  easy.train = adx::test::nearest_upscale(easy.train, 32).clamp(0, 1);
  easy.test = adx::test::nearest_upscale(easy.test, 32).clamp(0, 1);
  return easy;
}

// Small networks that train in seconds.
adx::OptionMap small_draem(int64_t epochs) {
  return {{"image_size", "0"},           {"reconstruction_width", "8"}, {"segmentation_width", "8"},
          {"train.epochs", std::to_string(epochs)}, {"train.batch_size", "16"}, {"train.lr", "2e-3"},
          {"runtime.seed", "5"}};
}

}  // namespace

TEST_CASE("DRAEM finds blobs it never saw, maps them where they are, and reloads to identical scores",
          "[self_supervised][detectors]") {
  const auto easy = easy_images_32(160, 30, 20);
  auto draem = adx::make_detector("draem", small_draem(6));
  draem->fit(Data::images(easy.train));
  const auto scores = draem->score(Data::images(easy.test));
  const double auroc = adx::metrics::roc_auc(easy.labels, scores.to_vector());
  INFO("DRAEM image AUROC " << auroc);
  CHECK(auroc > 0.8);
  REQUIRE(scores.pixel_map.sizes() == torch::IntArrayRef({50, 1, 32, 32}));
  REQUIRE(scores.pixel_map.min().item<double>() >= 0);
  REQUIRE(scores.pixel_map.max().item<double>() <= 1);
  // The map is higher on the blob than off it, over the anomalous images.
  const auto anomalous_maps = scores.pixel_map.slice(0, 30);
  auto blob = torch::zeros_like(anomalous_maps, torch::kBool);
  for (int64_t i = 0; i < 20; ++i) {
    const int64_t r = (i * 5) % 10, c = (i * 3) % 10;  // easy_images' blob, in 16 px units
    blob[i][0].slice(0, 2 * r, 2 * r + 10).slice(1, 2 * c, 2 * c + 10).fill_(true);
  }
  const double on = anomalous_maps.masked_select(blob).mean().item<double>();
  const double off = anomalous_maps.masked_select(~blob).mean().item<double>();
  INFO("mean map on the blobs " << on << ", off them " << off);
  CHECK(on > off);

  const auto path = adx::test::temp_path("draem.adx");
  draem->save(path);
  auto loaded = adx::load(path);
  const auto again = loaded->score(Data::images(easy.test));
  REQUIRE(torch::equal(again.per_item, scores.per_item));
  REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
  REQUIRE(loaded->threshold() == draem->threshold());

  // Equal seeds give equal models.
  auto twin = adx::make_detector("draem", small_draem(1));
  auto twin_again = adx::make_detector("draem", small_draem(1));
  twin->fit(Data::images(easy.train.slice(0, 0, 40)));
  twin_again->fit(Data::images(easy.train.slice(0, 0, 40)));
  REQUIRE(torch::equal(twin->score(Data::images(easy.test)).per_item,
                       twin_again->score(Data::images(easy.test)).per_item));
}

TEST_CASE("DRAEM's training examples carry their anomaly inside the mask only", "[self_supervised]") {
  adx::Draem draem(adx::from_option_map<adx::DraemOptions>({{"image_size", "0"}, {"anomaly_probability", "1"},
                                                            {"rotate_probability", "0"}, {"train.epochs", "1"},
                                                            {"reconstruction_width", "4"}, {"segmentation_width", "4"}}));
  const auto images = torch::full({8, 3, 64, 64}, 0.5);
  draem.fit(Data::images(images));
  auto gen = at::detail::createCPUGenerator(1);
  const auto example = draem.synthesize(images, gen);
  REQUIRE(example.input.sizes() == images.sizes());
  REQUIRE(example.mask.sizes() == torch::IntArrayRef({8, 1, 64, 64}));
  REQUIRE(torch::equal(example.target, images));
  const auto outside = (example.mask == 0).expand_as(images);
  REQUIRE(torch::equal(example.input.masked_select(outside), images.masked_select(outside)));
  REQUIRE(example.mask.sum().item<double>() > 0);
  REQUIRE(example.input.sub(images).abs().sum().item<double>() > 0);
}

TEST_CASE("DRAEM refuses bad options and bad images with clear errors", "[self_supervised][errors]") {
  REQUIRE_THROWS_AS(adx::make_detector("draem", {{"image_size", "100"}}), adx::OptionError);
  REQUIRE_THROWS_AS(adx::make_detector("draem", {{"opacity_max", "1"}}), adx::OptionError);
  REQUIRE_THROWS_AS(adx::make_detector("draem", {{"anomaly_source", "normal_images"}, {"texture_dir", "/tmp"}}),
                    adx::OptionError);
  auto tiny = small_draem(1);
  auto draem = adx::make_detector("draem", tiny);
  REQUIRE_THROWS_WITH(draem->fit(Data::images(torch::full({4, 3, 32, 32}, 255.0))), Catch::Contains("[0, 1]"));
  REQUIRE_THROWS_WITH(draem->fit(Data::images(torch::rand({4, 3, 40, 40}))), Catch::Contains("multiples of 32"));
  tiny["texture_dir"] = adx::test::temp_path("no_such_texture_folder");
  REQUIRE_THROWS_AS(adx::make_detector("draem", tiny)->fit(Data::images(torch::rand({4, 3, 32, 32}))), adx::IoError);
  REQUIRE_THROWS_AS(adx::make_detector("draem", small_draem(1))->score(Data::images(torch::rand({2, 3, 32, 32}))),
                    adx::Error);
}
