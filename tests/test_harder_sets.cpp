// Harder test sets: anomalies that a trivial rule (largest value, distance to the mean,
// Mahalanobis, PCA residual with the best number of components) cannot separate. Each
// detector must beat the best trivial rule clearly on the set that suits it.
#include "test_helpers.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using adx::Data;

namespace {

adx::OptionMap harder_options(int epochs, adx::OptionMap extra = {}) {
  const char* seed = std::getenv("ADX_HARDER_SEED");  // lets a person check the margins over seeds
  return adx::test::quick_options(epochs, std::move(extra), seed ? seed : "7");
}

struct HarderCase {
  std::string name;
  adx::OptionMap options;
};

// Every case must reach the best trivial rule's AUROC + `margin`.
void beats_trivial_rule(const adx::test::Easy& data, const std::vector<HarderCase>& cases, bool images,
                        double margin = 0.1) {
  const double trivial = adx::test::trivial_rule_auroc(data.train, data.test, data.labels);
  for (size_t i = 0; i < cases.size(); ++i) {
    DYNAMIC_SECTION(cases[i].name << " #" << i) {
      auto detector = adx::make_detector(cases[i].name, cases[i].options);
      const auto as_data = [&](const torch::Tensor& x) { return images ? Data::images(x) : Data::tabular(x); };
      detector->fit(as_data(data.train));
      const double auroc = adx::metrics::roc_auc(data.labels, detector->score(as_data(data.test)).to_vector());
      INFO(cases[i].name << " #" << i << ": AUROC " << auroc << ", best trivial rule " << trivial);
      if (std::getenv("ADX_HARDER_SEED")) WARN("AUROC " << auroc << ", best trivial rule " << trivial);
      REQUIRE(auroc > trivial + margin);
    }
  }
}

}  // namespace

TEST_CASE("off a curved surface: reconstruction and one-class detectors beat every linear rule",
          "[detectors][harder]") {
  // A model of a 2-D surface needs its shape exactly: no dropout here.
  beats_trivial_rule(adx::test::curved_surface_tabular(),
                     {{"autoencoder", harder_options(100, {{"bottleneck", "2"}, {"dropout", "0"}})},
                      {"denoising_autoencoder", harder_options(100, {{"bottleneck", "2"}, {"noise_level", "0.05"}, {"dropout", "0"}})},
                      {"vae", harder_options(60, {{"latent", "2"}})},
                      {"deep_svdd", harder_options(40, {{"rep_dim", "8"}, {"pretrain_train.epochs", "30"}, {"train.lr", "0.001"}})}},
                     false);
}

TEST_CASE("in the empty middle of a ring: detectors of where data are dense see what no linear rule does",
          "[detectors][harder]") {
  beats_trivial_rule(adx::test::ring_gap_tabular(),
                     {{"autoencoder", harder_options(60, {{"bottleneck", "2"}})},
                      {"sparse_autoencoder", harder_options(60, {})},
                      {"vae", harder_options(60, {{"latent", "2"}})},
                      {"deep_svdd", harder_options(40, {{"rep_dim", "8"}, {"pretrain_train.epochs", "30"}, {"train.lr", "0.001"}})},
                      {"simclr", harder_options(40, {{"rep_dim", "16"}, {"hidden", "32,32"}})}},
                     false);
}

TEST_CASE("a glyph turned by 180 degrees: patch memory and rotation prediction see what pixel moments cannot",
          "[detectors][harder][images]") {
  const auto data = adx::test::turned_glyph_images();
  SECTION("patchcore") {
    // 100 training images at 2x: the backbone's features have a stride of 4 and more.
    auto grown = data;
    grown.train = adx::test::nearest_upscale(data.train.slice(0, 0, 100), 2 * data.train.size(2));
    grown.test = adx::test::nearest_upscale(data.test, 2 * data.test.size(2));
    beats_trivial_rule(grown,
                       {{"patchcore", {{"backbone", "resnet18"}, {"layers", "layer1,layer2"}, {"runtime.threads", "2"},
                                       {"runtime.seed", "3"}}}},
                       true);
  }
  SECTION("rotation") {
    beats_trivial_rule(data, {{"rotation", harder_options(20, {{"channels", "8,16"}})}}, true);
  }
}
