// Video building blocks: the memory layer (MemAE's) against values worked by hand, the
// surveillance generator, and per-video normalisation of frame scores.
#include "test_helpers.hpp"

#include <adx/data/generators/synthetic_video.hpp>
#include <adx/metrics/metrics.hpp>
#include <adx/detectors/memae/memory.hpp>

#include <catch2/catch.hpp>

#include <cmath>

using adx::Data;
using adx::test::temp_path;

TEST_CASE("the memory layer addresses, shrinks and renormalises as worked by hand", "[video][memory]") {
  // Hard shrinkage: weights at or below lambda vanish, the others keep their value.
  const auto shrunk = adx::nn::hard_shrink_relu(torch::tensor({0.001, 0.0025, 0.5}, torch::kFloat64), 0.0025);
  REQUIRE(shrunk[0].item<double>() == 0.0);
  REQUIRE(shrunk[1].item<double>() == 0.0);
  REQUIRE(shrunk[2].item<double>() == Approx(0.5).epsilon(1e-9));

  // Three items (1, 0), (0, 1), (-1, 0) and the code (2, 0): logits 2, 0, -2, softmax
  // (0.8668, 0.1173, 0.0159); lambda 0.02 drops the third, and renormalising gives
  // e^2 / (e^2 + 1) = 0.88080 and 0.11920. The read code is their mix of the items.
  adx::nn::Memory memory(adx::nn::MemoryOptions{3, 2, 0.02});
  {
    torch::NoGradGuard no_grad;
    memory->items.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {-1.0f, 0.0f}}));
  }
  const auto out = memory->forward(torch::tensor({{2.0f, 0.0f}}));
  REQUIRE(out.weights[0][0].item<double>() == Approx(0.8807970779778824).epsilon(1e-6));
  REQUIRE(out.weights[0][1].item<double>() == Approx(0.11920292202211756).epsilon(1e-6));
  REQUIRE(out.weights[0][2].item<double>() == 0.0);
  REQUIRE(out.code[0][0].item<double>() == Approx(0.8807970779778824).epsilon(1e-6));
  REQUIRE(out.code[0][1].item<double>() == Approx(0.11920292202211756).epsilon(1e-6));
  // Entropy -sum w log w of (0.88080, 0.11920, 0) = 0.365334.
  REQUIRE(adx::nn::attention_entropy(out.weights).item<double>() == Approx(0.36533385508520766).epsilon(1e-5));

  // A B x C x H x W code: each position is addressed on its own, as a row would be.
  torch::manual_seed(3);
  adx::nn::Memory wide(adx::nn::MemoryOptions{50, 4, 0.0025});
  const auto maps = torch::randn({2, 4, 3, 5});
  const auto by_map = wide->forward(maps);
  const auto rows = wide->forward(maps.permute({0, 2, 3, 1}).reshape({-1, 4}));
  REQUIRE(torch::allclose(by_map.code.permute({0, 2, 3, 1}).reshape({-1, 4}), rows.code, 1e-6, 1e-6));
  REQUIRE(torch::allclose(by_map.weights.sum(1), torch::ones({30}), 1e-5, 1e-5));
  // Gradients reach the memory items through the shrinkage.
  adx::nn::attention_entropy(by_map.weights).add(by_map.code.pow(2).mean()).backward();
  REQUIRE(wide->items.grad().abs().sum().item<double>() > 0);
}

TEST_CASE("frame scores are min-max normalised per video", "[video][metrics]") {
  const double nan = std::nan("");
  const auto out = adx::metrics::min_max_per_sequence({1, 3, 2, nan, 5, 5, 10, 20}, {4, 2, 2});
  REQUIRE(out[0] == 0.0);
  REQUIRE(out[1] == 1.0);
  REQUIRE(out[2] == 0.5);
  REQUIRE(std::isnan(out[3]));
  REQUIRE(out[4] == 0.0);  // one distinct value
  REQUIRE(out[5] == 0.0);
  REQUIRE(out[6] == 0.0);
  REQUIRE(out[7] == 1.0);
  REQUIRE_THROWS_AS(adx::metrics::min_max_per_sequence({1, 2}, {3}), adx::ShapeError);
}

TEST_CASE("the surveillance generator labels its events and nothing else", "[video][data]") {
  adx::SyntheticVideoOptions o;
  o.frames = 420;
  o.seed = 4;
  using E = adx::VideoEvent;
  const auto video =
      adx::make_surveillance_video(o, {E::Speed, E::Direction, E::ObjectType, E::Appearance, E::Loitering}, 1);
  REQUIRE(video.frames.sizes() == torch::IntArrayRef({420, 1, 32, 32}));
  REQUIRE(video.frames.min().item<double>() >= 0.0);
  REQUIRE(video.frames.max().item<double>() <= 1.0);
  REQUIRE(video.events.size() == 5);
  auto in_events = torch::zeros({420}, torch::kLong);
  for (const auto& e : video.events) {
    INFO(e.kind);
    REQUIRE(e.begin >= 20);
    REQUIRE(e.end > e.begin);
    REQUIRE(video.labels.slice(0, e.begin, e.end).sum().item<int64_t>() == e.end - e.begin);
    in_events.slice(0, e.begin, e.end).fill_(1);
  }
  REQUIRE(torch::equal(video.labels, in_events));  // the labels are the events' spans, nothing else
  REQUIRE(video.events[4].end - video.events[4].begin == 45);  // the loiterer stands for 45 frames
  // A normal video has no labels; the same seeds give the same video; the scene fixes the background.
  const auto normal = adx::make_surveillance_video(o, {}, 1);
  REQUIRE(normal.labels.sum().item<int64_t>() == 0);
  REQUIRE(torch::equal(adx::make_surveillance_video(o, {}, 1).frames, normal.frames));
  o.seed = 5;
  const auto other = adx::make_surveillance_video(o, {}, 1);
  REQUIRE_FALSE(torch::equal(other.frames, normal.frames));
  REQUIRE_THROWS_AS(adx::make_surveillance_video(o, {E::Speed, E::Speed, E::Speed, E::Speed, E::Speed, E::Speed}, 1),
                    adx::OptionError);
}
