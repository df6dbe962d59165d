// The image baselines the industrial example prints beside the detectors: PCA reconstruction of
// patches and the nearest training patch, checked against a direct computation and on a planted defect.
#include "test_helpers.hpp"

#include "common/image_baselines.hpp"

#include <catch2/catch.hpp>

using adx::test::striped;

TEST_CASE("the image baselines score a planted defect above clean images and map it where it is",
          "[industrial][baselines]") {
  const auto train = striped(40, 64, 1);
  const auto test = adx::test::with_blocks(striped(6, 64, 2), 3);  // rows and columns 24 to 39
  // How far from the block the hottest pixel may lie: half a patch.
  constexpr int64_t slack = 4;
  for (const auto& scores :
       {adx::examples::pca_patch_baseline(train, test), adx::examples::nearest_patch_baseline(train, test)}) {
    REQUIRE(scores.per_image.sizes() == torch::IntArrayRef({6}));
    REQUIRE(scores.pixel_map.sizes() == torch::IntArrayRef({6, 1, 64, 64}));
    CHECK(scores.per_image.slice(0, 3).min().item<double>() > scores.per_image.slice(0, 0, 3).max().item<double>());
    for (int64_t i = 3; i < 6; ++i) {
      const int64_t at = scores.pixel_map[i].argmax().item<int64_t>();
      CHECK(at / 64 >= 24 - slack);
      CHECK(at / 64 < 40 + slack);
      CHECK(at % 64 >= 24 - slack);
      CHECK(at % 64 < 40 + slack);
    }
    CHECK(torch::isfinite(scores.pixel_map).all().item<bool>());
  }
}

TEST_CASE("the nearest-patch baseline's image score is the largest nearest distance, computed directly",
          "[industrial][baselines]") {
  const auto train = striped(5, 16, 3), test = striped(3, 16, 4);
  const auto scores = adx::examples::nearest_patch_baseline(train, test);
  // Halve by 2 x 2 means, cut every 8 x 8 patch at stride 4, and search every training patch by hand.
  auto patches = [](const torch::Tensor& images) {
    const auto half = torch::avg_pool2d(images.to(torch::kFloat64), 2);
    std::vector<torch::Tensor> rows;
    for (int64_t n = 0; n < half.size(0); ++n)
      for (int64_t y = 0; y + 8 <= half.size(2); y += 4)
        for (int64_t x = 0; x + 8 <= half.size(3); x += 4)
          rows.push_back(half.index({n, 0, torch::indexing::Slice(y, y + 8), torch::indexing::Slice(x, x + 8)}).reshape({-1}));
    return torch::stack(rows);
  };
  const auto reference = patches(train), queries = patches(test);
  const int64_t per_image = queries.size(0) / 3;
  for (int64_t i = 0; i < 3; ++i) {
    double worst = 0;
    for (int64_t q = i * per_image; q < (i + 1) * per_image; ++q)
      worst = std::max(worst, (reference - queries[q]).pow(2).sum(1).min().sqrt().item<double>());
    CHECK(scores.per_image[i].item<double>() == Approx(worst).epsilon(1e-4));
  }
  // A training image is its own nearest neighbour everywhere.
  CHECK(adx::examples::nearest_patch_baseline(train, train.slice(0, 0, 1)).per_image.item<double>() < 1e-2);
}

TEST_CASE("PCA on patches keeps the components asked for and reconstructs the training span exactly",
          "[industrial][baselines]") {
  // Rows in a 2-dimensional subspace of R^5: 2 components explain all of the variance.
  torch::manual_seed(5);
  const auto basis = torch::randn({2, 5}, torch::kFloat64);
  const auto rows = torch::randn({200, 2}, torch::kFloat64).matmul(basis) + 3.0;
  const auto model = adx::examples::fit_pca(rows, 0.999, /*standardise=*/false);
  CHECK(model.components.size(0) == 2);
  CHECK(adx::examples::pca_residual(model, rows).max().item<double>() < 1e-10);
  // A row off the subspace keeps exactly its part orthogonal to it.
  const auto off = torch::randn({1, 5}, torch::kFloat64);
  const auto q = std::get<0>(torch::linalg::qr(basis.t(), "reduced"));  // 5 x 2 orthonormal basis of the span
  const auto centred = off - rows.mean(0);
  const auto orthogonal = centred - centred.matmul(q).matmul(q.t());
  CHECK(adx::examples::pca_residual(model, off).item<double>() ==
        Approx(orthogonal.pow(2).sum().item<double>()).epsilon(1e-9));
}
