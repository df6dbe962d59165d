// CUDA: every detector family trains and scores on `cuda`, and a model fitted
// on the CPU scores the same on the GPU. Without a usable CUDA device the
// program exits with 77, which ctest reports as skipped (SKIP_RETURN_CODE).
#define CATCH_CONFIG_RUNNER
#include "test_helpers.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using adx::Data;

namespace {

struct Case {
  std::string detector;
  adx::OptionMap options;
  bool images;
};

std::vector<Case> cases() {
  const adx::OptionMap quick{{"train.epochs", "10"}, {"train.batch_size", "64"}, {"runtime.seed", "3"}};
  auto with = [&](adx::OptionMap extra) {
    auto o = quick;
    for (auto& [k, v] : extra) o[k] = v;
    return o;
  };
  return {
      {"autoencoder", with({{"bottleneck", "3"}}), false},
      {"vae", with({{"latent", "3"}}), false},
      {"deep_svdd", with({{"rep_dim", "8"}, {"pretrain_train.epochs", "5"}}), true},
      {"conv_autoencoder", with({{"channels", "8,16"}, {"latent", "8"}}), true},
      {"ganomaly", with({{"latent", "16"}, {"width", "16"}}), true},
      {"rotation", with({{"channels", "8,16"}, {"train.epochs", "4"}}), true},
      {"patchcore", {{"backbone", "resnet18"}, {"layers", "layer1,layer2"}}, true},
      {"padim", {{"backbone", "resnet18"}, {"layers", "layer1,layer2"}}, true},
  };
}

}  // namespace

TEST_CASE("every family fits and scores on CUDA, and CPU models score the same there", "[cuda]") {
  const auto tabular = adx::test::easy_tabular(400, 100, 40);
  const auto images = adx::test::easy_images_at(32, 200, 60, 30);
  for (const auto& c : cases()) {
    INFO(c.detector);
    const auto& easy = c.images ? images : tabular;
    const auto data = [&](const torch::Tensor& x) { return c.images ? Data::images(x) : Data::tabular(x); };
    auto options = c.options;
    options["runtime.device"] = "cuda";
    auto gpu = adx::make_detector(c.detector, options);
    gpu->fit(data(easy.train));
    const auto scores = gpu->score(data(easy.test));
    const double auroc = adx::metrics::roc_auc(easy.labels, scores.to_vector());
    INFO("AUROC on CUDA " << auroc);
    REQUIRE(auroc > 0.8);
    adx::test::require_identical_reload(*gpu, easy.test, scores);

    auto cpu = adx::make_detector(c.detector, c.options);
    cpu->fit(data(easy.train));
    const auto path = adx::test::temp_path("cuda_" + c.detector + ".adx");
    cpu->save(path);
    const auto on_gpu = adx::load(path, "cuda")->score(data(easy.test)).per_item;
    REQUIRE(torch::allclose(on_gpu, cpu->score(data(easy.test)).per_item, 1e-3, 1e-5));
  }
}

int main(int argc, char* argv[]) {
  if (!adx::cuda_available()) {
    std::cout << "no usable CUDA device: the CUDA tests are skipped\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
