// Synthetic anomalies (DRAEM's Perlin masks and blend, CutPaste's patch, NSA's Poisson blend)
// against values worked by hand and values from DRAEM's reference function (rand_perlin_2d_np,
// run in numpy with the angles fixed).
#include "test_helpers.hpp"

#include <adx/data/synthesis/poisson_blend.hpp>
#include <adx/data/synthesis/synthesis.hpp>
#include <adx/io/state_dict.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

TEST_CASE("Perlin noise matches a hand-worked value and DRAEM's reference function", "[data][synthesis]") {
  // One cell over 4 x 4 pixels; corner gradients (1, 0) at the top corners and (0, 1) at the others
  // (angles 0 and pi/2). At pixel (1, 2): offsets fy = 0.25, fx = 0.5; dot products n00 = 0.25,
  // n10 = -0.75, n01 = n11 = -0.5; fade(0.25) = 0.103515625, fade(0.5) = 0.5; along y: 0.146484375
  // and -0.5; along x: -0.1767578125; times sqrt(2) = -0.24997.
  const double pi = std::acos(-1.0);
  const auto angles = torch::tensor({{0.0, pi / 2}, {0.0, pi / 2}}, torch::kFloat64);
  REQUIRE(adx::perlin_noise(angles, 4, 4)[1][2].item<double>() == Approx(-0.2499732956929006).epsilon(1e-6));

  // 4 x 8 pixels, 1 x 2 cells, the reference's output for these angles.
  const auto reference = torch::tensor(
      {{0.0, -0.004183389691003082, -0.2106072128174594, -0.250026097655071, 0.0, 0.18263648878002262,
        -0.00639580444055797, -0.19035642460866486},
       {0.3745654996454651, 0.3220580648593032, 0.029581202116102493, -0.11169064766814184, 0.06596127224676798,
        0.17004701941641268, -0.1300897666300922, -0.3865081335285411},
       {0.5688603732838267, 0.41734364253977674, 0.12497354586240965, -0.07670823298745996, -0.09018215482167385,
        -0.1799290464363365, -0.4956660774000414, -0.619660359830725},
       {0.3120667477947788, 0.11563800014471369, 0.030577455335636893, -0.024311466777401772, -0.17481395130886648,
        -0.4315222062115501, -0.6599374268896979, -0.5485855696498588}},
      torch::kFloat64);
  const auto noise =
      adx::perlin_noise(torch::tensor({{0.3, 1.1, 2.0}, {4.0, 5.5, 0.7}}, torch::kFloat64), 4, 8).to(torch::kFloat64);
  REQUIRE(torch::allclose(noise, reference, 1e-6, 1e-6));

  // Random noise is exactly 0 at every lattice point and never leaves [-1, 1].
  auto gen = at::detail::createCPUGenerator(7);
  const auto random = adx::random_perlin_noise(64, 64, 4, 8, gen);
  REQUIRE(random.slice(0, 0, 64, 16).slice(1, 0, 64, 8).abs().max().item<double>() == 0.0);
  REQUIRE(random.abs().max().item<double>() <= 1.0);
  REQUIRE(random.abs().max().item<double>() > 0.1);
  REQUIRE_THROWS_AS(adx::perlin_noise(torch::zeros({3, 3}), 5, 4), adx::ShapeError);  // 5 rows, 2 cells
  REQUIRE_THROWS_AS(adx::perlin_noise(torch::zeros({1, 2}), 4, 4), adx::ShapeError);
}

TEST_CASE("DRAEM's masks are binary and its blend follows its formula", "[data][synthesis]") {
  auto gen = at::detail::createCPUGenerator(11);
  double covered = 0;
  for (int k = 0; k < 20; ++k) {
    const auto mask = adx::perlin_mask(64, 64, gen);
    REQUIRE(mask.sizes() == torch::IntArrayRef({64, 64}));
    REQUIRE(torch::equal(mask, (mask > 0.5).to(torch::kFloat32)));
    covered += mask.mean().item<double>();
  }
  // Noise above 0.5 covers a part of the image, never most of it.
  INFO("mean covered fraction " << covered / 20);
  REQUIRE(covered / 20 > 0.01);
  REQUIRE(covered / 20 < 0.5);
  REQUIRE_THROWS_AS(adx::perlin_mask(60, 64, gen), adx::ShapeError);

  // Image 0.2 everywhere, source 0.9, mask on one pixel, beta 0.5: 0.5 * 0.9 + 0.5 * 0.2 = 0.55 there.
  const auto image = torch::full({1, 2, 2}, 0.2f), source = torch::full({1, 2, 2}, 0.9f);
  auto mask = torch::zeros({2, 2});
  mask[0][1] = 1;
  const auto blended = adx::blend_anomaly(image, source, mask, 0.5);
  REQUIRE(blended[0][0][1].item<double>() == Approx(0.55));
  REQUIRE(blended[0][0][0].item<double>() == Approx(0.2));
  REQUIRE(adx::blend_anomaly(image, source, mask, 0.0)[0][0][1].item<double>() == Approx(0.9));
  REQUIRE_THROWS_AS(adx::blend_anomaly(image, source, mask, 1.0), adx::ValueError);
  REQUIRE_THROWS_AS(adx::blend_anomaly(image, source, torch::zeros({3, 2}), 0.5), adx::ShapeError);
}

TEST_CASE("CutPaste's patch has the paper's area and aspect and is copied exactly", "[data][synthesis]") {
  auto gen = at::detail::createCPUGenerator(13);
  for (int k = 0; k < 200; ++k) {
    const auto box = adx::cutpaste_box(256, 256, gen);
    REQUIRE(box.top >= 0);
    REQUIRE(box.left >= 0);
    REQUIRE(box.top + box.height <= 256);
    REQUIRE(box.left + box.width <= 256);
    const double area = static_cast<double>(box.height * box.width) / (256.0 * 256.0);
    INFO("area " << area << ", " << box.height << " x " << box.width);
    REQUIRE(area > 0.02 * 0.8);  // rounding each side to whole pixels
    REQUIRE(area < 0.15 * 1.2);
    const double aspect = static_cast<double>(box.height) / static_cast<double>(box.width);
    REQUIRE(aspect > 0.3 * 0.9);
    REQUIRE(aspect < 1 / 0.3 * 1.1);
  }
  const auto image = torch::arange(2 * 6 * 6, torch::kFloat32).reshape({2, 6, 6});
  const auto pasted = adx::paste_patch(image, {0, 0, 2, 3}, {3, 2, 2, 3});
  REQUIRE(torch::equal(pasted.slice(1, 3, 5).slice(2, 2, 5), image.slice(1, 0, 2).slice(2, 0, 3)));
  REQUIRE(pasted.sub(image).abs().sum().item<double>() > 0);
  REQUIRE(torch::equal(pasted.slice(1, 0, 3), image.slice(1, 0, 3)));  // nothing else changes
  REQUIRE_THROWS_AS(adx::paste_patch(image, {0, 0, 2, 3}, {5, 2, 2, 3}), adx::ValueError);
}

namespace {

// The 4-neighbour discrete Laplacian of x (C x H x W) at the interior pixels.
torch::Tensor laplacian(const torch::Tensor& x) {
  const auto c = x.slice(1, 1, -1).slice(2, 1, -1);
  return x.slice(1, 0, -2).slice(2, 1, -1) + x.slice(1, 2).slice(2, 1, -1) + x.slice(1, 1, -1).slice(2, 0, -2) +
         x.slice(1, 1, -1).slice(2, 2) - 4 * c;
}

}  // namespace

TEST_CASE("Poisson blending keeps the target outside the mask and the source's Laplacian inside it",
          "[data][synthesis]") {
  auto gen = at::detail::createCPUGenerator(5);
  const auto target = torch::rand({3, 24, 24}, gen), source = torch::rand({3, 24, 24}, gen);
  auto mask = torch::zeros({24, 24});
  mask.slice(0, 5, 15).slice(1, 6, 18).fill_(1);
  mask[0][3] = 1;  // a pixel on the image border never counts as inside
  const auto out = adx::poisson_blend(target, source, mask);
  auto inside = mask.ne(0);
  inside[0][3] = false;
  // Outside the mask (its boundary included): the target, to the bit.
  REQUIRE(torch::equal(out.masked_select(~inside.expand({3, 24, 24})), target.masked_select(~inside.expand({3, 24, 24}))));
  REQUIRE(out[0][0][3].item<float>() == target[0][0][3].item<float>());
  // Inside: the result's Laplacian is the source's, so the patch keeps the source's texture and meets the
  // target without a seam.
  const auto interior = inside.slice(0, 1, -1).slice(1, 1, -1).expand({3, 22, 22});
  const auto error = (laplacian(out.to(torch::kDouble)) - laplacian(source.to(torch::kDouble))).masked_select(interior);
  INFO("largest Laplacian difference " << error.abs().max().item<double>());
  REQUIRE(error.abs().max().item<double>() < 1e-5);
  REQUIRE(out.sub(target).abs().sum().item<double>() > 1);  // the patch did change

  // One unknown pixel, worked by hand: target 0.5 everywhere, source 1 at the centre and 0 around it. The
  // guidance sums to 4 x (1 - 0), the boundary to 4 x 0.5: f = (2 + 4) / 4 = 1.5.
  const auto flat = torch::full({1, 5, 5}, 0.5);
  auto spike = torch::zeros({1, 5, 5});
  spike[0][2][2] = 1;
  auto centre = torch::zeros({5, 5});
  centre[2][2] = 1;
  REQUIRE(adx::poisson_blend(flat, spike, centre)[0][2][2].item<double>() == Approx(1.5).epsilon(1e-9));

  // Blending an image into itself changes nothing; mixed gradients keep a textured target where the source is flat.
  REQUIRE(torch::allclose(adx::poisson_blend(target, target, mask), target, 0, 1e-5));
  adx::PoissonBlendOptions mixed;
  mixed.mixed = true;
  REQUIRE(torch::allclose(adx::poisson_blend(target, torch::full_like(target, 0.3), mask, mixed), target, 0, 1e-5));
  // An empty mask returns the target; bad shapes are errors.
  REQUIRE(torch::equal(adx::poisson_blend(target, source, torch::zeros({24, 24})), target));
  REQUIRE_THROWS_AS(adx::poisson_blend(target, source.slice(0, 0, 2), mask), adx::ShapeError);
  REQUIRE_THROWS_AS(adx::poisson_blend(target, source, mask.slice(0, 0, 20)), adx::ShapeError);
}

TEST_CASE("rotation turns images about their centre and DRAEM's rotated masks stay binary", "[data][synthesis]") {
  // A quarter turn of a square image moves pixel (r, c) to (c, n - 1 - r) or (n - 1 - c, r), by direction;
  // bilinear sampling at whole-pixel positions gives the pixels exactly (to float rounding).
  const auto image = torch::rand({2, 16, 16});
  const auto turned = adx::rotate_image(image, 90);
  const bool one_way = torch::allclose(turned, torch::rot90(image, 1, {1, 2}), 0, 1e-4);
  const bool other_way = torch::allclose(turned, torch::rot90(image, -1, {1, 2}), 0, 1e-4);
  REQUIRE((one_way || other_way));
  REQUIRE(torch::equal(adx::rotate_image(image, 0), image));
  // At 45 degrees the corners turn in from outside the image: zero there.
  const auto diagonal = adx::rotate_image(torch::ones({1, 32, 32}), 45);
  REQUIRE(diagonal[0][0][0].item<double>() == 0);
  REQUIRE(diagonal[0][16][16].item<double>() == Approx(1));
  REQUIRE_THROWS_AS(adx::rotate_image(torch::ones({1, 1, 4, 4}), 10), adx::ShapeError);

  auto gen = at::detail::createCPUGenerator(3);
  double covered = 0;
  for (int k = 0; k < 20; ++k) {
    const auto mask = adx::perlin_mask(64, 64, gen, 0.5, 6, 90);
    REQUIRE(torch::equal(mask, (mask > 0.5).to(torch::kFloat32)));
    covered += mask.mean().item<double>();
  }
  INFO("mean covered fraction " << covered / 20);
  REQUIRE(covered / 20 > 0.01);
  REQUIRE(covered / 20 < 0.5);
  REQUIRE_THROWS_AS(adx::perlin_mask(64, 64, gen, 0.5, 6, 200), adx::ValueError);
}

TEST_CASE("anomaly sources: procedural textures vary, augmentation stays in range, folders and normal images "
          "are drawn at the asked size", "[data][synthesis]") {
  auto gen = at::detail::createCPUGenerator(17);
  std::vector<torch::Tensor> textures;
  for (int k = 0; k < 12; ++k) {
    const auto texture = adx::procedural_texture(3, 40, 56, gen);
    REQUIRE(texture.sizes() == torch::IntArrayRef({3, 40, 56}));
    REQUIRE(texture.min().item<double>() >= 0);
    REQUIRE(texture.max().item<double>() <= 1);
    REQUIRE(texture.std().item<double>() > 0.005);  // a pattern, not a flat colour
    textures.push_back(texture);
  }
  // Different draws differ: their mean colours spread out.
  REQUIRE(torch::stack(textures).mean({2, 3}).std(0).mean().item<double>() > 0.05);
  REQUIRE(adx::procedural_texture(1, 33, 17, gen).sizes() == torch::IntArrayRef({1, 33, 17}));

  int changed = 0;
  for (int k = 0; k < 20; ++k) {
    const auto texture = adx::procedural_texture(3, 32, 32, gen);
    const auto augmented = adx::augment_anomaly_source(texture, gen);
    REQUIRE(augmented.sizes() == texture.sizes());
    REQUIRE(augmented.min().item<double>() >= 0);
    REQUIRE(augmented.max().item<double>() <= 1);
    changed += augmented.sub(texture).abs().max().item<double>() > 1e-3;
  }
  REQUIRE(changed >= 18);  // 3 of 10 operations, some of which can leave an image nearly as it was
  REQUIRE(torch::equal(adx::augment_anomaly_source(textures[0], gen, 0), textures[0]));
  REQUIRE_THROWS_AS(adx::augment_anomaly_source(textures[0], gen, 11), adx::ValueError);

  // A folder: read recursively, converted and resized to what is asked.
  const auto folder = adx::test::temp_path("texture_folder");
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder + "/striped");
  adx::write_png(folder + "/striped/a.png", torch::full({3, 20, 30}, 0.25));
  adx::write_png(folder + "/b.png", torch::full({3, 8, 8}, 0.75));
  const auto from_folder = adx::AnomalySource::textures(folder);
  REQUIRE(from_folder.describe().find("(2 images)") != std::string::npos);
  bool seen_low = false, seen_high = false;
  for (int k = 0; k < 20; ++k) {
    const auto drawn = from_folder.draw(1, 16, 24, gen);
    REQUIRE(drawn.sizes() == torch::IntArrayRef({1, 16, 24}));
    const double value = drawn.mean().item<double>();
    seen_low |= std::abs(value - 0.25) < 0.01, seen_high |= std::abs(value - 0.75) < 0.01;
  }
  REQUIRE((seen_low && seen_high));
  REQUIRE_THROWS_AS(adx::AnomalySource::textures(folder + "/missing"), adx::IoError);
  std::filesystem::create_directories(folder + "_empty");
  REQUIRE_THROWS_AS(adx::AnomalySource::textures(folder + "_empty"), adx::IoError);
  REQUIRE(adx::AnomalySource::textures("").describe() == "procedural");

  const auto normal = torch::stack({torch::full({3, 8, 8}, 0.1), torch::full({3, 8, 8}, 0.9)});
  const auto from_normal = adx::AnomalySource::normal_images(normal);
  const auto drawn = from_normal.draw(3, 8, 8, gen);
  REQUIRE((torch::equal(drawn, normal[0]) || torch::equal(drawn, normal[1])));
  REQUIRE_THROWS_AS(adx::AnomalySource::normal_images(torch::zeros({3, 8, 8})), adx::ShapeError);

  // DRAEM's anomaly changes the image inside its mask only.
  const auto image = torch::full({3, 64, 64}, 0.5), source = torch::zeros({3, 64, 64});
  const auto perlin = adx::PerlinAnomalyOptions().opacity_max(0.5);
  int non_empty = 0;
  for (int k = 0; k < 10; ++k) {
    const auto anomaly = adx::perlin_anomaly(image, source, gen, perlin);
    const auto outside = (anomaly.mask == 0).expand({3, 64, 64});
    REQUIRE(torch::equal(anomaly.image.masked_select(outside), image.masked_select(outside)));
    if (anomaly.mask.sum().item<double>() > 0) {
      ++non_empty;
      const auto inside = anomaly.image.masked_select(~outside);
      REQUIRE(inside.max().item<double>() <= 0.25 + 1e-6);  // at most half the image shows through
    }
  }
  REQUIRE(non_empty >= 5);
}

TEST_CASE("median filters match hand-worked values; NSA's anomalies change the image inside their patches only "
          "and label it by how much it changed", "[data][synthesis]") {
  // scikit-image's disk(5) holds 81 pixels; a 3 x 3 median of a lone spike removes it and keeps a block.
  REQUIRE(adx::disk_footprint(5).sum().item<int64_t>() == 81);
  REQUIRE(adx::disk_footprint(1).sum().item<int64_t>() == 5);
  auto map = torch::zeros({5, 5});
  map[0][0] = 9;                              // a corner spike: replicated edges give it 4 of 9 neighbours
  map.slice(0, 2, 5).slice(1, 2, 5).fill_(1);  // a 3 x 3 block in the other corner
  const auto filtered = adx::median_filter(map, torch::ones({3, 3}, torch::kBool));
  REQUIRE(filtered[0][0].item<double>() == 0);
  REQUIRE(filtered[3][3].item<double>() == 1);
  REQUIRE(filtered[4][4].item<double>() == 1);
  REQUIRE(filtered[2][2].item<double>() == 0);  // 4 of its 9 neighbours are 1
  REQUIRE_THROWS_AS(adx::median_filter(map, torch::ones({2, 2}, torch::kBool)), adx::ShapeError);

  auto gen = at::detail::createCPUGenerator(21);
  // A smooth image and a striped source: blended patches carry the stripes.
  const auto y = torch::linspace(0.2, 0.6, 96).reshape({1, 96, 1}).expand({3, 96, 96}).contiguous();
  const auto source = (0.5 + 0.4 * torch::sin(torch::arange(96, torch::kFloat32) * 0.8)).reshape({1, 1, 96}).expand({3, 96, 96}).contiguous();
  int labelled = 0;
  for (int k = 0; k < 10; ++k) {
    const auto anomaly = adx::natural_anomaly(y, source, gen);
    REQUIRE(anomaly.image.sizes() == y.sizes());
    REQUIRE(anomaly.mask.sizes() == torch::IntArrayRef({96, 96}));
    REQUIRE(anomaly.mask.min().item<double>() >= 0);
    REQUIRE(anomaly.mask.max().item<double>() <= 1);
    // The label is 0 farther than 2 px (the 5 x 5 median's reach) from every pixel the blend changed.
    const auto changed = ((anomaly.image - y).abs().amax(0) > 0).to(torch::kFloat32);
    const auto near_change = torch::max_pool2d(changed.unsqueeze(0), 5, 1, 2).squeeze(0) > 0;
    REQUIRE(anomaly.mask.masked_select(~near_change).abs().sum().item<double>() == 0);
    labelled += anomaly.mask.max().item<double>() > 0.5;
  }
  REQUIRE(labelled >= 8);
  // Patches of a flat image blended into itself change nothing, so nothing is labelled.
  const auto flat = torch::full({3, 96, 96}, 0.4);
  const auto same = adx::natural_anomaly(flat, flat, gen);
  REQUIRE(torch::allclose(same.image, flat, 0, 1e-4));
  REQUIRE(same.mask.max().item<double>() == 0);
  REQUIRE_THROWS_WITH(adx::natural_anomaly(y, source, gen, adx::NaturalAnomalyOptions().max_half_width(0.6)),
                      Catch::Contains("option 'max_half_width' must be in ['min_half_width' = 0.03, 0.5), got 0.6"));
}

TEST_CASE("NSA's label equals the authors' label code", "[synthesis][reference]") {
  // tests/export_nsa_labels.py runs the end of the reference's patch_ex ('logistic-intensity', k = 1/6, x0 = 20,
  // tol = 1) with OpenCV's medianBlur and scikit-image's median over disk(5), in float64, on images blended by
  // hand with shifts from below the tolerance to saturating. adx computes in float32 from float32 images:
  // 1e-5 absolute on labels in [0, 1].
  const auto fixtures = adx::load_state_dict(adx::test::reference_fixture("ADX_NSA_LABELS_REFERENCE"));
  int cases = 0;
  for (const std::string name : {"rgb", "grey", "wide", "rgb2"}) {
    INFO(name);
    const auto at = [&](const std::string& key) { return fixtures.at(name + "." + key); };
    const auto label = adx::natural_anomaly_label(at("original"), at("blended"), at("patches"));
    const auto expected = at("label").to(torch::kFloat32);
    REQUIRE(label.sizes() == expected.sizes());
    REQUIRE(expected.gt(0.05).logical_and(expected.lt(0.95)).any().item<bool>());  // the logistic's slope is covered
    REQUIRE((label - expected).abs().max().item<double>() < 1e-5);
    ++cases;
  }
  REQUIRE(cases == 4);
  REQUIRE_THROWS_AS(adx::natural_anomaly_label(torch::zeros({3, 8, 8}), torch::zeros({3, 8, 9}), torch::zeros({8, 8})),
                    adx::ShapeError);
}
