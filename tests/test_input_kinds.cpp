// The input-kind layer: series windows and per-step scores, the tail hold-out,
// graph batches with their neighbours under a memory cap, per-frame video
// scores, clear errors, format-1 model files, and the library's naming and
// layout rules.
#include "test_helpers.hpp"
#include "toy_kind.hpp"

#include <adx/detectors/isolation_forest/isolation_forest.hpp>

#include <catch2/catch.hpp>

#include <c10/core/CPUAllocator.h>

#include <cxxabi.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

using adx::Data;
using adx::Windows;
using adx::test::temp_path;

namespace {


std::vector<int> step_labels(int64_t steps, int64_t begin, int64_t end) {
  std::vector<int> labels(static_cast<size_t>(steps), 0);
  for (int64_t t = begin; t < end; ++t) labels[static_cast<size_t>(t)] = 1;
  return labels;
}


// Three phase-shifted sines with noise: a multivariate monitoring signal.
torch::Tensor sine_series(int64_t steps, double noise, uint64_t seed) {
  torch::manual_seed(seed);
  const auto t = torch::arange(steps, torch::kFloat32).unsqueeze(1);
  const auto phases = torch::tensor({0.0f, 1.0f, 2.0f}).unsqueeze(0);
  return torch::sin(t * 0.2 + phases) + noise * torch::randn({steps, 3});
}

const adx::OptionMap kSmallAutoencoder{{"hidden", "32"},         {"bottleneck", "4"},  {"train.epochs", "30"},
                                       {"train.batch_size", "64"}, {"runtime.seed", "3"}, {"runtime.threads", "2"}};

}  // namespace

TEST_CASE("series: windows cover every step and collate to B x window x D", "[kinds][series]") {
  const auto x = torch::arange(22, torch::kFloat32).reshape({11, 2});
  const auto data = Data::series(x, Windows{4, 3});
  // Every 3 steps, plus a last window that ends at the last step.
  REQUIRE(adx::test::to_longs(data.items) == std::vector<int64_t>{0, 3, 6, 7});
  REQUIRE(data.size() == 4);
  REQUIRE(data.item_shape() == std::vector<int64_t>{4, 2});
  const auto batch = data.input_kind().collate(data);
  REQUIRE(batch.x.sizes() == torch::IntArrayRef({4, 4, 2}));
  REQUIRE(torch::equal(batch.x[2], x.slice(0, 6, 10)));
  REQUIRE(torch::equal(batch.x[3], x.slice(0, 7, 11)));
  // A slice narrows x to the steps its windows cover.
  const auto part = data.slice(2, 4);
  REQUIRE(part.x.size(0) == 5);
  REQUIRE(torch::equal(part.input_kind().collate(part).x, batch.x.slice(0, 2, 4)));
  // Univariate series are T x 1.
  REQUIRE(Data::series(torch::rand({30}), Windows{5, 5}).item_shape() == std::vector<int64_t>{5, 1});
}

TEST_CASE("series: windows are assembled back into per-step scores", "[kinds][series]") {
  const auto data = Data::series(torch::zeros({6, 1}), Windows{3, 1});  // windows start at 0..3
  adx::Scores scores;
  scores.per_item = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  data.input_kind().assemble(data, scores);
  // Step t is the mean of the windows covering it, worked by hand.
  const std::vector<double> expected{1.0, 1.5, 2.0, 3.0, 3.5, 4.0};
  REQUIRE(adx::test::to_doubles(scores.per_step) == expected);

  // Per-position scores inside each window; NaN means "not scored here".
  const float nan = std::numeric_limits<float>::quiet_NaN();
  scores.step_map = torch::tensor({{nan, nan, 10.0f}, {nan, nan, 20.0f}, {nan, nan, 30.0f}, {nan, nan, 40.0f}});
  data.input_kind().assemble(data, scores);
  const auto per_step = adx::test::to_doubles(scores.per_step);
  REQUIRE(std::isnan(per_step[0]));
  REQUIRE(std::isnan(per_step[1]));
  REQUIRE(std::vector<double>(per_step.begin() + 2, per_step.end()) == std::vector<double>{10, 20, 30, 40});

  // The largest of the covering windows (discord style), worked by hand: windows 1, 2, 3, 4 start at
  // 0..3 and cover 3 steps each; an unscored position (NaN) does not count.
  scores.step_map = torch::Tensor();
  scores.per_item = torch::tensor({1.0f, 4.0f, 2.0f, 3.0f});
  data.input_kind().assemble(data, scores, adx::StepAssembly::Max);
  REQUIRE(adx::test::to_doubles(scores.per_step) == std::vector<double>{1, 4, 4, 4, 3, 3});
  REQUIRE(adx::test::to_doubles(scores.per_step_count) == std::vector<double>{1, 2, 3, 3, 2, 1});
  scores.step_map = torch::tensor({{nan, 5.0f, 1.0f}, {nan, nan, 2.0f}, {nan, nan, nan}, {nan, 0.5f, nan}});
  data.input_kind().assemble(data, scores, adx::StepAssembly::Max);
  const auto maxima = adx::test::to_doubles(scores.per_step);
  REQUIRE(std::isnan(maxima[0]));
  REQUIRE(std::isnan(maxima[5]));
  REQUIRE(std::vector<double>(maxima.begin() + 1, maxima.end() - 1) == std::vector<double>{5, 1, 2, 0.5});
}

TEST_CASE("series: the hold-out is the tail of every series, never random windows", "[kinds][series]") {
  const auto data = Data::series({torch::rand({60, 2}), torch::rand({40, 2})}, Windows{5, 1});
  const auto [train, validation] = data.input_kind().holdout(data, 0.25);
  // Series 0 covers steps 0..59 (tail from 45), series 1 covers 60..99 (tail from 90).
  for (auto s : adx::test::to_longs(train.items)) {
    const bool first = s < 60;
    INFO("training window at " << s);
    REQUIRE(s + 5 <= (first ? 45 : 90));
  }
  bool tail_of_first = false, tail_of_second = false;
  for (auto s : adx::test::to_longs(validation.items)) {
    INFO("validation window at " << s);
    REQUIRE(((s >= 45 && s + 5 <= 60) || s >= 90));
    tail_of_first |= s < 60;
    tail_of_second |= s >= 90;
  }
  REQUIRE(tail_of_first);
  REQUIRE(tail_of_second);
  // Preprocessing is fitted on the training steps only: 45 + 30 of them.
  REQUIRE(train.input_kind().fit_values(train).size(0) == 75);
}

TEST_CASE("series: an autoencoder scores every time step and finds an anomalous segment", "[kinds][series]") {
  auto test = sine_series(600, 0.05, 2);
  test.slice(0, 300, 330).add_(torch::linspace(0, 1.5, 30).unsqueeze(1));  // a drifting level shift
  auto detector = adx::make_detector("autoencoder", kSmallAutoencoder);
  detector->fit(Data::series(sine_series(2000, 0.05, 1), Windows{16, 2}));
  const auto data = Data::series(test, Windows{16, 1});
  const auto scores = detector->score(data);
  REQUIRE(scores.per_item.size(0) == data.size());
  REQUIRE(scores.per_step.size(0) == 600);
  const double auroc = adx::metrics::roc_auc(step_labels(600, 300, 330), adx::test::to_doubles(scores.per_step));
  INFO("per-step AUROC " << auroc);
  REQUIRE(auroc > 0.9);

  const auto path = temp_path("series_autoencoder.adx");
  detector->save(path);
  REQUIRE(adx::read_model_file(path).metadata.at("input_kind") == "series");
  const auto again = adx::load(path)->score(data);
  REQUIRE(torch::equal(again.per_step, scores.per_step));
}

TEST_CASE("video: per-frame scores from clips", "[kinds][video]") {
  torch::manual_seed(5);
  // Frames of a bar moving down the picture; anomalous frames carry a bright square.
  auto frames = [](int64_t count) {
    auto v = torch::zeros({count, 1, 8, 8});
    for (int64_t t = 0; t < count; ++t) v.index_put_({t, 0, t % 8}, 0.8);
    return v + 0.02 * torch::randn({count, 1, 8, 8});
  };
  auto test = frames(40);
  using torch::indexing::Slice;
  test.index_put_({Slice(20, 24), 0, Slice(2, 6), Slice(2, 6)}, 1.0);
  auto detector = adx::make_detector("autoencoder", kSmallAutoencoder);
  detector->fit(Data::videos({frames(200), frames(120)}, Windows{4, 1}));
  const auto scores = detector->score(Data::video(test, Windows{4, 1}));
  REQUIRE(scores.per_step.size(0) == 40);
  const double auroc = adx::metrics::roc_auc(step_labels(40, 20, 24), adx::test::to_doubles(scores.per_step));
  INFO("per-frame AUROC " << auroc);
  REQUIRE(auroc > 0.9);
}

TEST_CASE("graph: batches keep their neighbours, the hold-out is a node mask", "[kinds][graph]") {
  // A path 0 -> 1 -> 2 -> 3 -> 4 -> 5 (directed) and an isolated node 6.
  const auto edges = torch::tensor({{0, 1, 2, 3, 4}, {1, 2, 3, 4, 5}}, torch::kLong);
  const auto x = torch::arange(7, torch::kFloat32).unsqueeze(1);
  auto data = Data::graph(x, edges);
  REQUIRE(data.size() == 7);
  data.hops = 2;
  const auto batch = data.input_kind().collate(data.select(torch::tensor({3}, torch::kLong)));
  // Two hops around node 3, edges followed both ways: nodes 1..5.
  REQUIRE(adx::test::to_doubles(batch.x.reshape({-1})) == std::vector<double>{1, 2, 3, 4, 5});
  REQUIRE(adx::test::to_longs(batch.targets) == std::vector<int64_t>{2});
  // Every edge among those nodes, renumbered to rows of the batch.
  REQUIRE(adx::test::to_longs(batch.edge_index[0]) == std::vector<int64_t>{0, 1, 2, 3});
  REQUIRE(adx::test::to_longs(batch.edge_index[1]) == std::vector<int64_t>{1, 2, 3, 4});

  data.hops = 0;  // the whole graph, with the batch's nodes as targets
  const auto whole = data.input_kind().collate(data.select(torch::tensor({6, 0}, torch::kLong)));
  REQUIRE(whole.x.size(0) == 7);
  REQUIRE(adx::test::to_longs(whole.targets) == std::vector<int64_t>{6, 0});

  torch::manual_seed(0);
  const auto big = Data::graph(torch::rand({100, 4}), torch::randint(100, {2, 300}, torch::kLong));
  const auto [train, validation] = big.input_kind().holdout(big, 0.2);
  REQUIRE(validation.size() == 20);
  REQUIRE(train.size() == 80);
  REQUIRE(train.x.size(0) == 100);  // every node's features and edges stay visible
  REQUIRE(torch::equal(train.edge_index, big.edge_index));
  auto all = torch::cat({train.items, validation.items});
  REQUIRE(adx::test::to_longs(std::get<0>(all.sort())) == adx::test::to_longs(torch::arange(100)));
}

TEST_CASE("graph: a 50k-node graph never builds an N x N tensor", "[kinds][graph][memory]") {
  const int64_t nodes = 50000, features = 16, edges = 400000;
  torch::manual_seed(1);
  const auto x = torch::randn({nodes, features});
  const auto edge_index = torch::randint(nodes, {2, edges}, torch::kLong);
  // 1 GiB above what the process already holds; a dense N x N float matrix needs 10 GB.
  adx::test::AddressSpaceCap cap(int64_t{1} << 30);
  REQUIRE(cap.active());
  REQUIRE_THROWS(torch::empty({nodes, nodes}));  // the cap bites

  auto data = Data::graph(x, edge_index);
  adx::validate(data, "graph");
  auto [train, validation] = data.input_kind().holdout(data, 0.1);
  REQUIRE(validation.size() == 5000);
  REQUIRE(train.input_kind().fit_values(train).size(0) == 45000);
  train.hops = 2;
  int64_t batches = 0;
  for (int64_t begin = 0; begin < 2048; begin += 512, ++batches) {
    const auto batch = train.input_kind().collate(train.slice(begin, begin + 512));
    REQUIRE(batch.targets.size(0) == 512);
    // One round of sparse message passing over the batch's subgraph.
    const auto messages = batch.x.index_select(0, batch.edge_index[0]);
    const auto aggregated = torch::zeros_like(batch.x).index_add_(0, batch.edge_index[1], messages);
    REQUIRE(aggregated.size(0) == batch.x.size(0));
  }
  REQUIRE(batches == 4);
  // The whole graph at once, as a full-graph pass scores it.
  const auto whole = data.input_kind().collate(data);
  const auto aggregated = torch::zeros_like(whole.x).index_add_(0, whole.edge_index[1], whole.x.index_select(0, whole.edge_index[0]));
  REQUIRE(aggregated.size(0) == nodes);
}

TEST_CASE("bad input of every kind is a clear error naming the value", "[kinds][errors]") {
  auto autoencoder = adx::make_detector("autoencoder", kSmallAutoencoder);
  SECTION("a series shorter than one window") {
    REQUIRE_THROWS_AS(autoencoder->fit(Data::series(torch::rand({5, 2}), Windows{10, 1})), adx::ShapeError);
    REQUIRE_THROWS_WITH(autoencoder->fit(Data::series(torch::rand({5, 2}), Windows{10, 1})),
                        Catch::Contains("series 0 has 5 steps, shorter than one window of 10 steps"));
  }
  SECTION("timestamps that go back") {
    const auto t = torch::tensor({0.0, 1.0, 2.0, 1.5, 4.0, 5.0});
    REQUIRE_THROWS_WITH(adx::validate(Data::series(torch::rand({6, 1}), Windows{2, 1}, t), "series"),
                        Catch::Contains("row 3 has 1.5 after 2"));
  }
  SECTION("series with different feature counts") {
    REQUIRE_THROWS_WITH(Data::series({torch::rand({20, 3}), torch::rand({20, 4})}, Windows{5, 1}),
                        Catch::Contains("series 1 has steps of shape [4] but series 0 has steps of shape [3]"));
  }
  SECTION("NaN in a series names the step") {
    auto x = torch::rand({20, 2});
    x[7][1] = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(autoencoder->fit(Data::series(x, Windows{4, 1})), Catch::Contains("first at step 7"));
  }
  SECTION("an edge index out of range") {
    const auto edges = torch::tensor({{0, 1, 2}, {1, 2, 9}}, torch::kLong);
    REQUIRE_THROWS_WITH(adx::validate(Data::graph(torch::rand({5, 3}), edges), "graph"),
                        Catch::Contains("edge 2 (2 -> 9)") && Catch::Contains("node count is 5"));
  }
  SECTION("a feature row count that differs from the node count") {
    const auto edges = torch::tensor({{0, 1}, {1, 2}}, torch::kLong);
    REQUIRE_THROWS_WITH(
        adx::validate(Data::graph(torch::rand({4, 3}), edges, {}, torch::zeros({6})), "graph"),
        Catch::Contains("6 node labels but the feature matrix has 4 rows"));
  }
  SECTION("a clip longer than the video") {
    REQUIRE_THROWS_WITH(adx::validate(Data::video(torch::rand({3, 1, 8, 8}), Windows{4, 1}), "video"),
                        Catch::Contains("video 0 has 3 frames, shorter than one clip of 4 frames"));
  }
  SECTION("mismatched frame sizes") {
    REQUIRE_THROWS_WITH(Data::videos({torch::rand({10, 1, 8, 8}), torch::rand({10, 1, 16, 16})}, Windows{4, 1}),
                        Catch::Contains("video 1 has frames of shape [1 x 16 x 16] but video 0 has frames of shape "
                                        "[1 x 8 x 8]"));
  }
  SECTION("a kind the detector does not accept lists the accepted ones") {
    auto conv = adx::make_detector("conv_autoencoder");
    REQUIRE_THROWS_WITH(conv->fit(Data::series(torch::rand({50, 2}), Windows{5, 1})),
                        Catch::Contains("accepts image data, got series data"));
  }
  SECTION("scoring another kind than the one fitted") {
    autoencoder->fit(Data::tabular(torch::rand({100, 8})));
    REQUIRE_THROWS_WITH(autoencoder->score(Data::series(torch::rand({50, 8}), Windows{1, 1})),
                        Catch::Contains("fitted on tabular data but got series data"));
  }
  SECTION("an unknown kind name lists the known ones") {
    REQUIRE_THROWS_WITH(adx::input_kind("audio"), Catch::Contains("audio") && Catch::Contains("graph, image, series") && Catch::Contains("tabular"));
  }
}

TEST_CASE("model files of format 1 still load and score as they did", "[kinds][io]") {
  const std::string dir = ADX_TEST_DATA_DIR;
  // Written by adx before input kinds existed: an autoencoder fitted on tabular data.
  const auto model = adx::read_model_file(dir + "/autoencoder_format1.adx");
  REQUIRE(model.format_version == 1);
  REQUIRE(model.metadata.empty());
  auto detector = adx::load(dir + "/autoencoder_format1.adx");
  REQUIRE(detector->fitted_kind()->name() == "tabular");
  const auto test = torch::cos(torch::arange(20 * 8, torch::kFloat32) * 0.11).reshape({20, 8});
  const auto expected = adx::load_npy(dir + "/autoencoder_format1_scores.npy");
  // The expected scores were written on another machine, whose BLAS kernels round the MLP's products
  // differently: about 1e-7 relative; 1e-5 still catches any change in the model or its preprocessing.
  REQUIRE(torch::allclose(detector->score(Data::tabular(test)).per_item, expected, 1e-5, 1e-7));
  // Saved again, it is a format-2 file that names its kind.
  const auto path = temp_path("autoencoder_format2.adx");
  detector->save(path);
  const auto rewritten = adx::read_model_file(path);
  REQUIRE(rewritten.format_version == 2);
  REQUIRE(rewritten.metadata.at("input_kind") == "tabular");
}

namespace {

// Options whose fields come from one macro line and from single lines.
#define TEST_PAIR_OPTIONS ADX_ARG_IN_SLOT(int64_t, first, 0) = 1; ADX_ARG_IN_SLOT(int64_t, second, 1) = 2
struct SpelledOnce {
  ADX_OPTIONS_STRUCT;
  ADX_ARG(double, alpha) = 0.5;
  TEST_PAIR_OPTIONS;
  ADX_ARG(std::string, name) = "x";
};

std::string camel_case(const std::string& registry_name) {
  std::string out;
  bool upper = true;
  for (char c : registry_name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(c)) : c;
    upper = false;
  }
  return out;
}

}  // namespace

TEST_CASE("every option is spelled once and reaches the key/value map", "[options]") {
  const auto map = adx::to_option_map(SpelledOnce());
  REQUIRE(map == adx::OptionMap{{"alpha", "0.5"}, {"first", "1"}, {"second", "2"}, {"name", "x"}});
  // Every field of a real detector's options, nested ones included.
  const auto ae = adx::make_detector("autoencoder")->options_map();
  for (const char* key : {"hidden", "bottleneck", "batch_norm", "dropout", "noise", "noise_level", "sparsity_weight",
                          "sparsity_target", "train.epochs", "train.grad_clip", "preprocess", "threshold.policy",
                          "threshold.pot_level", "runtime.device", "runtime.score_batch_size"})
    REQUIRE(ae.count(key) == 1);
  REQUIRE(ae.size() == 8 + 16 + 1 + 6 + 5);  // 16 training options
}

TEST_CASE("real-valued options are written as the shortest text that reads back the same", "[options]") {
  adx::IsolationForestOptions o;
  o.runtime().validation_fraction(0.1);
  o.threshold().percentile(99.9);
  const auto map = adx::to_option_map(o);
  REQUIRE(map.at("runtime.validation_fraction") == "0.1");
  REQUIRE(map.at("threshold.percentile") == "99.9");
  REQUIRE(map.at("step_score") == "mean");
  const double awkward = 1.0 / 3.0;
  o.runtime().validation_fraction(awkward);
  const auto back = adx::from_option_map<adx::IsolationForestOptions>(adx::to_option_map(o));
  REQUIRE(back.runtime().validation_fraction() == awkward);
}

TEST_CASE("every detector refuses an out-of-range number by its key, when it is made", "[options][errors]") {
  // Every numeric option (and list of numbers) of every detector, set to -1 and to 0: the detector is made,
  // or the refusal is an OptionError that names the key as the user wrote it.
  const std::regex numeric("-?[0-9.e+-]+(,-?[0-9.e+-]+)*");
  int refused = 0;
  for (const auto& name : adx::detector_names()) {
    if (name == "my_gaussian") continue;  // the example's own detector, if registered in this process
    for (const auto& [key, value] : adx::make_detector(name)->options_map()) {
      if (!std::regex_match(value, numeric)) continue;
      for (const std::string bad : {"-1", "0"}) {
        INFO(name << ": " << key << "=" << bad);
        try {
          adx::make_detector(name, {{key, bad}});
        } catch (const adx::OptionError& e) {
          REQUIRE_THAT(e.what(), Catch::Contains("'" + key + "'"));
          ++refused;
        }
      }
    }
  }
  REQUIRE(refused > 100);
}

TEST_CASE("class names and folders follow the registry names", "[layout]") {
  const std::filesystem::path include = std::string(ADX_SOURCE_DIR) + "/include/adx/detectors";
  for (const auto& name : adx::detector_names()) {
    if (name == "my_gaussian") continue;  // the example's own detector, if registered in this process
    auto detector = adx::make_detector(name);
    const auto& d = *detector;
    int status = 0;
    char* demangled = abi::__cxa_demangle(typeid(d).name(), nullptr, nullptr, &status);
    const std::string class_name = status == 0 ? demangled : typeid(d).name();
    std::free(demangled);
    INFO(name);
    REQUIRE(class_name == "adx::" + camel_case(name));
    REQUIRE(std::filesystem::exists(include / name / (name + ".hpp")));
  }
}

TEST_CASE("no code outside src/data/kinds compares kind names: it asks the kind's traits", "[layout][kinds]") {
  // A comparison with a kind-name constant or a kind's name; tests may still check names.
  const std::regex comparison(
      R"((kinds::k[A-Z]\w*\s*[=!]=)|([=!]=\s*(adx::)?kinds::k[A-Z])|(kind_name\(\)\s*[=!]=)|(name\(\)\s*[=!]=\s*"))");
  const std::filesystem::path root = ADX_SOURCE_DIR;
  const auto kinds_folder = (root / "src" / "data" / "kinds").string();
  int files = 0;
  for (const char* folder : {"src", "include", "examples"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root / folder)) {
      const auto path = entry.path().string();
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
      if (path.rfind(kinds_folder, 0) == 0) continue;
      ++files;
      std::ifstream in(path);
      std::string line;
      for (int number = 1; std::getline(in, line); ++number) {
        INFO(path << ":" << number << ": " << line);
        REQUIRE_FALSE(std::regex_search(line, comparison));
      }
    }
  }
  REQUIRE(files > 100);
}

TEST_CASE("the library's folders are layers: no include runs from a lower layer to a higher one", "[layout]") {
  // Each layer may include its own folder and the layers before it (README, Layout).
  const std::vector<std::string> layers{"core", "io", "metrics", "threshold", "data", "nn",
                                        "train", "detectors", "serve", "cli"};
  auto rank = [&](const std::string& layer) {
    return std::find(layers.begin(), layers.end(), layer) - layers.begin();
  };
  const std::regex include(R"(#include <adx/([a-z_]+)/)");
  const std::filesystem::path root = ADX_SOURCE_DIR;
  int checked = 0;
  for (const auto& base : {root / "include" / "adx", root / "src"}) {
    for (const auto& layer : layers) {
      if (!std::filesystem::exists(base / layer)) continue;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(base / layer)) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path());
        std::string line;
        std::smatch match;
        for (int number = 1; std::getline(in, line); ++number) {
          if (!std::regex_search(line, match, include)) continue;
          INFO(entry.path().string() << ":" << number << ": " << line);
          REQUIRE(rank(match[1]) < static_cast<std::ptrdiff_t>(layers.size()));
          REQUIRE(rank(match[1]) <= rank(layer));
          ++checked;
        }
      }
    }
  }
  REQUIRE(checked > 300);

  // Each layer's folder says what it holds and what it may include.
  for (const auto& layer : layers) {
    if (layer == "cli") continue;  // src/cli only
    INFO(layer);
    REQUIRE(std::filesystem::exists(root / "include" / "adx" / layer / "README.md"));
  }
}

TEST_CASE("a detector's folder includes no other detector, except a variant its base method", "[layout]") {
  // A variant of a method includes the method's header (README, Layout); components/ is shared by all.
  const std::map<std::string, std::string> variant_of{{"denoising_autoencoder", "autoencoder"},
                                                      {"sparse_autoencoder", "autoencoder"}};
  const std::regex include(R"(#include <adx/detectors/([a-z_]+)/)");
  const std::filesystem::path root = ADX_SOURCE_DIR;
  int folders = 0;
  for (const auto& base : {root / "include" / "adx" / "detectors", root / "src" / "detectors"}) {
    for (const auto& folder : std::filesystem::directory_iterator(base)) {
      const std::string name = folder.path().filename().string();
      if (!folder.is_directory() || name == "components") continue;
      ++folders;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(folder.path())) {
        std::ifstream in(entry.path());
        std::string line;
        std::smatch match;
        while (std::getline(in, line)) {
          if (!std::regex_search(line, match, include)) continue;
          const std::string target = match[1];
          INFO(entry.path().string() << ": " << line);
          const auto variant = variant_of.find(name);
          REQUIRE((target == name || target == "components" ||
                   (variant != variant_of.end() && variant->second == target)));
        }
      }
    }
  }
  REQUIRE(folders >= 62);  // 31 detectors and the ensemble, header and source each
}

TEST_CASE("LibTorch runs on the OpenMP build of OpenBLAS that bootstrap.sh selects", "[runtime]") {
  const auto blas = adx::blas_info();
  INFO("BLAS in use: " << blas.name << " (" << blas.config << "); the pthread build fights LibTorch's OpenMP "
                       "pool for the cores, run cmake/bootstrap.sh or select openblas-openmp by hand");
  REQUIRE(blas.name == "openblas-openmp");
  // ADX_NUM_THREADS replaces every count asked for (ctest -j sets it to 1): set aside while asking for 2.
  const char* forced = std::getenv("ADX_NUM_THREADS");
  const std::string kept = forced ? forced : "";
  unsetenv("ADX_NUM_THREADS");
  const int threads = adx::set_num_threads(2);
  const int reported = adx::num_threads();
  if (forced) setenv("ADX_NUM_THREADS", kept.c_str(), 1);
  REQUIRE(threads == 2);
  REQUIRE(reported == 2);
}

TEST_CASE("freed CPU blocks of 1 MiB and more are reused up to the cap, and every way of freeing works",
          "[runtime]") {
  const uint64_t kept_cap = adx::set_cpu_memory_cache(uint64_t{64} << 20);
  const uint64_t held_before = adx::cpu_memory_cached();
  const int64_t floats = int64_t{3} << 18;  // 3 MiB
  void* first = nullptr;
  {
    auto block = torch::empty({floats});
    first = block.data_ptr();
    block.fill_(1.0f);
  }
  REQUIRE(adx::cpu_memory_cached() >= held_before + (uint64_t{3} << 20));
  {
    // 400 bytes less falls in the same size class (3 MiB: classes are 256 KiB apart there).
    auto again = torch::empty({floats - 100});
    REQUIRE(again.data_ptr() == first);
    REQUIRE(adx::cpu_memory_cached() == held_before);
    again.fill_(2.0f);
    REQUIRE(again.sum().item<double>() == 2.0 * static_cast<double>(floats - 100));
  }
  // A third more is another class: a new block.
  auto larger = torch::empty({floats * 4 / 3});
  REQUIRE(larger.data_ptr() != first);
  // Blocks from 2 MiB on start on a 2 MiB boundary, where huge pages can back them.
  const char* huge = std::getenv("ADX_CPU_HUGE_PAGES");
  if (!(huge && std::string(huge) == "0")) REQUIRE(reinterpret_cast<uintptr_t>(larger.data_ptr()) % (uint64_t{2} << 20) == 0);
  // LibTorch's raw interface frees through the same path, large and small.
  auto* allocator = c10::GetCPUAllocator();
  void* raw_large = allocator->raw_allocate(size_t{5} << 20);
  allocator->raw_deallocate(raw_large);
  void* raw_small = allocator->raw_allocate(1000);
  allocator->raw_deallocate(raw_small);
  // A cap of 0 frees what is kept, and blocks freed later are not kept.
  adx::set_cpu_memory_cache(0);
  REQUIRE(adx::cpu_memory_cached() == 0);
  larger = torch::Tensor();
  REQUIRE(adx::cpu_memory_cached() == 0);
  adx::set_cpu_memory_cache(kept_cap);
}

TEST_CASE("a user's own input kind plugs into validation and the training loop", "[kinds]") {
  adx::register_input_kind(std::make_shared<adx::test::SpectraKind>());
  REQUIRE(adx::input_kind("spectra").name() == "spectra");
  Data data;
  data.x = torch::rand({40, 1, 16});
  data.kind = &adx::input_kind("spectra");
  adx::validate(data, "spectra");
  REQUIRE(data.item_shape() == std::vector<int64_t>{1, 16});
  REQUIRE_THROWS_WITH(
      [] {
        Data flat;
        flat.x = torch::rand({40, 16});
        flat.kind = &adx::input_kind("spectra");
        adx::validate(flat, "spectra");
      }(),
      Catch::Contains("spectra data must be N x 1 x L"));
  torch::nn::Linear net(16, 16);
  int64_t items_seen = 0;
  const auto result = adx::train_module(
      *net, data, Data(), adx::TrainOptions().epochs(2).batch_size(8),
      [&](const adx::Batch& batch, bool) {
        items_seen += batch.size();
        const auto flat = batch.x.reshape({batch.size(), -1});
        return (net->forward(flat) - flat).pow(2).mean();
      });
  REQUIRE(result.epochs_run == 2);
  REQUIRE(items_seen == 80);
}
