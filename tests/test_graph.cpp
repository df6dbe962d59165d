// Graphs: normalisation worked by hand, anomaly injection (counts, determinism),
// edge-list files, and DOMINANT (finds injected anomalies, save/load, memory cap).
#include <adx/base.hpp>
#include <adx/detectors/cola/cola.hpp>
#include <adx/detectors/dominant/dominant.hpp>
#include <adx/detectors/edge_scorer/edge_scorer.hpp>
#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include <adx/detectors/structural/structural.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>

#include "test_helpers.hpp"

using namespace adx;
using Catch::Matchers::Contains;
using adx::test::temp_path;
using adx::test::to_doubles;
using adx::test::to_ints;
using adx::test::to_longs;
using adx::test::write_bytes;


TEST_CASE("graph: symmetric normalisation with self-loops, worked by hand", "[graph]") {
  // Path 0 - 1 - 2 given once in one direction, plus a duplicate and a self-loop.
  const auto edges = torch::tensor({{0, 1, 1, 2}, {1, 2, 2, 2}}, torch::kLong);
  REQUIRE(torch::equal(graph::symmetrize(edges, 3), torch::tensor({{0, 1, 1, 2}, {1, 0, 2, 1}}, torch::kLong)));
  REQUIRE(to_ints(graph::degrees(edges, 3)) == std::vector<int>{1, 2, 1});
  // A + I has degrees 2, 3, 2: entries 1 / sqrt(d_i d_j).
  const auto a = graph::normalized_adjacency(edges, {}, 3).to_dense();
  REQUIRE(a[0][0].item<double>() == Approx(0.5));
  REQUIRE(a[1][1].item<double>() == Approx(1.0 / 3.0));
  REQUIRE(a[0][1].item<double>() == Approx(1.0 / std::sqrt(6.0)));
  REQUIRE(a[1][0].item<double>() == Approx(1.0 / std::sqrt(6.0)));
  REQUIRE(a[0][2].item<double>() == 0.0);
  // An isolated node keeps only its own features.
  REQUIRE(graph::normalized_adjacency(edges, {}, 4).to_dense()[3][3].item<double>() == Approx(1.0));
}

TEST_CASE("graph: injection as PyGOD defines it, counted and repeatable", "[graph][injection]") {
  auto base = graph::make_synthetic_graph({300, 1200, 8, 4, 0.9, 2.5, 1});
  REQUIRE(base.labels.sum().item<int64_t>() == 0);
  const int64_t edges = base.edge_index.size(1);

  // 3 cliques of 5: 15 labelled nodes, 3 * 5 * 4 directed edges added.
  const auto s = graph::inject_structural(base, 5, 3, 0.0, 7);
  REQUIRE(s.labels.sum().item<int64_t>() == 15);
  REQUIRE(s.edge_index.size(1) == edges + 60);
  const auto added = s.edge_index.slice(1, edges);
  REQUIRE((s.labels.index_select(0, added[0]) == 1).all().item<bool>());
  REQUIRE((s.labels.index_select(0, added[1]) == 1).all().item<bool>());
  REQUIRE(torch::equal(graph::inject_structural(base, 5, 3, 0.0, 7).edge_index, s.edge_index));
  REQUIRE_FALSE(torch::equal(graph::inject_structural(base, 5, 3, 0.0, 8).labels, s.labels));
  // Dropping with p = 0.3 keeps int(0.7 * 30) = 21 of the 30 undirected pairs, each in both directions
  // (PyGOD drops whole pairs, so no edge is left one-way).
  const auto dropped = graph::inject_structural(base, 5, 3, 0.3, 7);
  REQUIRE(dropped.edge_index.size(1) == edges + 42);
  const auto kept = dropped.edge_index.slice(1, edges);
  const auto key = [](const torch::Tensor& from, const torch::Tensor& to) { return from * 1000 + to; };
  const auto forward = std::get<0>(torch::sort(key(kept[0], kept[1]))), backward = std::get<0>(torch::sort(key(kept[1], kept[0])));
  REQUIRE(torch::equal(forward, backward));
  REQUIRE((kept[0] != kept[1]).all().item<bool>());

  // 10 contextual outliers: each takes another node's features, farthest of its candidates.
  const auto c = graph::inject_contextual(base, 10, 20, 3);
  REQUIRE(c.labels.sum().item<int64_t>() == 10);
  const auto changed = (c.x != base.x).any(1);
  REQUIRE(changed.sum().item<int64_t>() <= 10);
  REQUIRE(changed.sum().item<int64_t>() >= 8);
  REQUIRE((c.labels.index_select(0, changed.nonzero().reshape({-1})) == 1).all().item<bool>());
  for (int64_t i : to_ints(changed.nonzero().reshape({-1}))) {
    // The new row is some node's original row.
    REQUIRE(((base.x - c.x[i]).abs().sum(1) == 0).any().item<bool>());
  }
  REQUIRE(torch::equal(graph::inject_contextual(base, 10, 20, 3).x, c.x));
  REQUIRE_THROWS_AS(graph::inject_structural(base, 50, 10), ValueError);
}

TEST_CASE("graph: edge lists with integer or string ids", "[graph][io]") {
  const auto path = temp_path("edges.csv");
  write_bytes(path, "src,dst,weight\nalice,bob,1.5\nbob,carol,2\ncarol,alice,0.5\n");
  auto e = graph::load_edge_list(path);
  REQUIRE(e.node_ids == std::vector<std::string>{"alice", "bob", "carol"});
  REQUIRE(torch::equal(e.edge_index, torch::tensor({{0, 1, 2}, {1, 2, 0}}, torch::kLong)));
  REQUIRE(to_doubles(e.edge_weight) == std::vector<double>{1.5, 2.0, 0.5});

  // Integer ids are numbered in increasing order, the mapping kept.
  write_bytes(path, "1000,7\n7,42\n");
  e = graph::load_edge_list(path);
  REQUIRE(e.node_ids == std::vector<std::string>{"7", "42", "1000"});
  REQUIRE(torch::equal(e.edge_index, torch::tensor({{2, 0}, {0, 1}}, torch::kLong)));
  // With a feature matrix of 50 rows, integer ids are its rows.
  write_bytes(path, "3,7\n7,42\n");
  graph::EdgeListOptions rows;
  rows.num_nodes = 50;
  e = graph::load_edge_list(path, rows);
  REQUIRE(torch::equal(e.edge_index, torch::tensor({{3, 7}, {7, 42}}, torch::kLong)));
  REQUIRE(e.node_ids.size() == 50);
  rows.num_nodes = 10;
  REQUIRE_THROWS_WITH(graph::load_edge_list(path, rows), Contains("line 2") && Contains("42") && Contains("0..9"));
  write_bytes(path, "1,2\n-3,4\n");
  REQUIRE_THROWS_WITH(graph::load_edge_list(path), Contains("line 2") && Contains("negative node id -3"));
  write_bytes(path, "1,2,abc\n");
  REQUIRE_THROWS_AS(graph::load_edge_list(path), IoError);

  // NPY: E x 2 ids, numbered in increasing order, or rows of a feature matrix.
  const auto npy = temp_path("edges.npy");
  save_npy(npy, torch::tensor({{10.0f, 20.0f}, {20.0f, 30.0f}}));
  e = graph::load_edge_list(npy);
  REQUIRE(e.node_ids == std::vector<std::string>{"10", "20", "30"});
  REQUIRE(torch::equal(e.edge_index, torch::tensor({{0, 1}, {1, 2}}, torch::kLong)));
  rows.num_nodes = 25;
  REQUIRE_THROWS_WITH(graph::load_edge_list(npy, rows), Contains("node id 30") && Contains("0..24"));
  save_npy(npy, torch::tensor({{1.0f, -2.0f}}));
  REQUIRE_THROWS_WITH(graph::load_edge_list(npy), Contains("negative node id"));
}


namespace {

// A community graph with 2 cliques of 10 and 20 contextual outliers (40 of 600 nodes).
graph::InjectedGraph injected_graph() {
  auto g = graph::make_synthetic_graph({600, 3000, 16, 6, 0.9, 2.5, 4});
  g = graph::inject_structural(g, 10, 2, 0.0, 5);
  return graph::inject_contextual(g, 20, 50, 6);
}

// Fits `detector` on `data`, requires a node AUROC above `min_auroc` against `labels` and
// identical scores from the saved model; returns the scores.
torch::Tensor require_detects_and_round_trips(Detector& detector, const Data& data, const torch::Tensor& labels,
                                              double min_auroc, const std::string& name) {
  detector.fit(data);
  const auto scores = detector.score(data).per_item;
  const double auroc = metrics::roc_auc(to_ints(labels), to_doubles(scores));
  INFO(name << " AUROC " << auroc);
  REQUIRE(auroc > min_auroc);
  const auto path = temp_path(name + ".adx");
  detector.save(path);
  REQUIRE(torch::equal(adx::load(path)->score(data).per_item, scores));
  return scores;
}

}  // namespace

TEST_CASE("dominant: finds injected anomalies; save/load gives identical scores", "[graph][detectors]") {
  const auto g = injected_graph();
  auto options = DominantOptions();
  options.train().epochs(60);
  options.runtime().seed(1);
  Dominant detector(options);
  const auto data = Data::graph(g.x, g.edge_index);
  const auto scores = require_detects_and_round_trips(detector, data, g.labels, 0.78, "dominant");
  // Scores repeat exactly (they are exact: no draws).
  REQUIRE(torch::equal(detector.score(data).per_item, scores));
  // A file without the score's definition was fitted under the earlier DOMINANT: refused, not rescored.
  const auto path = temp_path("dominant_definition.adx");
  detector.save(path);
  auto file = adx::read_model_file(path);
  REQUIRE(file.tensors.erase("dominant.score_definition") == 1);
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Contains("earlier adx") && Contains("fit it again"));
  REQUIRE_THROWS_AS(detector.score(Data::tabular(g.x)), ShapeError);
}

TEST_CASE("dominant: combine = max_z scores the larger standardised error; weighted and older files as PyGOD",
          "[graph][detectors]") {
  const auto g = injected_graph();
  auto options = DominantOptions().hidden(16);
  options.train().epochs(20);
  options.runtime().seed(3).validation_fraction(0.0);  // every node trains, so the moments are over all nodes
  REQUIRE(options.combine() == DominantCombine::MaxZ);
  Dominant detector(options);
  const auto data = Data::graph(g.x, g.edge_index);
  detector.fit(data);
  const auto scores = detector.score(data).per_item.to(torch::kFloat64);

  // The same network from the model file, its two errors by hand.
  const auto path = temp_path("dominant_max_z.adx");
  detector.save(path);
  auto file = adx::read_model_file(path);
  DominantNet net(g.x.size(1), options);
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [key, value] : file.tensors)
    if (key.rfind("model.", 0) == 0) weights[key.substr(6)] = value;
  adx::test::copy_reference_parameters(*net, weights);
  net->eval();
  torch::NoGradGuard no_grad;
  GraphStructureCache cache;
  Batch batch;
  batch.x = g.x;
  batch.edge_index = g.edge_index;
  const auto targets = torch::arange(g.x.size(0));
  auto [attribute, structure] = dominant_errors(*net, g.x, cache.of(batch), targets, options);
  attribute = attribute.to(torch::kFloat64);
  structure = structure.to(torch::kFloat64);
  const auto z_attribute = (attribute - attribute.mean()) / attribute.std();
  const auto z_structure = (structure - structure.mean()) / structure.std();
  const auto expected = torch::maximum(z_attribute, z_structure);
  INFO("largest difference " << (scores - expected).abs().max().item<double>());
  REQUIRE(torch::allclose(scores, expected, 1e-4, 1e-4));
  // Both kinds of anomaly take the maximum somewhere: neither error alone decides every score.
  REQUIRE((z_attribute > z_structure).any().item<bool>());
  REQUIRE((z_structure > z_attribute).any().item<bool>());

  // combine = weighted: PyGOD's score on the same network.
  const auto weighted = dominant_scores(*net, g.x, cache.of(batch), targets, options).to(torch::kFloat64);
  REQUIRE(torch::allclose(weighted, 0.5 * attribute + 0.5 * structure, 1e-5, 1e-6));
  // A file of the earlier definition (2, no moments) was weighted and still scores so.
  file.tensors.erase("dominant.error_moments");
  file.tensors["dominant.score_definition"] = torch::tensor(int64_t{2}, torch::kLong);
  adx::write_model_file(path, file);
  auto older = adx::load(path);
  REQUIRE(older->options_map().at("combine") == "weighted");
  REQUIRE(torch::allclose(older->score(data).per_item.to(torch::kFloat64), weighted, 1e-5, 1e-6));
  // A current file without its moments, or with a zero spread, is refused.
  file.tensors["dominant.score_definition"] = torch::tensor(int64_t{3}, torch::kLong);
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Contains("dominant.error_moments"));
  file.tensors["dominant.error_moments"] = torch::tensor({1.0, 0.0, 1.0, 1.0}, torch::kFloat64);
  adx::write_model_file(path, file);
  REQUIRE_THROWS_WITH(adx::load(path), Contains("standard deviation"));
}

TEST_CASE("dominant: scores equal a port of PyGOD's dense DOMINANT on the same weights", "[graph][reference][dominant]") {
  // tests/export_dominant.py ports PyGOD's DOMINANTBase, DotProductDecoder and double_recon_loss over
  // torch_geometric's GCN with dense N x N matrices in float64, and writes its weights, inputs and scores.
  const auto fixtures = adx::load_state_dict(adx::test::reference_fixture("ADX_DOMINANT_REFERENCE"));
  const auto x = fixtures.at("x"), edge_index = fixtures.at("edge_index");
  auto options = DominantOptions().hidden(16).layers(4);
  DominantNet net(x.size(1), options);
  REQUIRE(adx::test::copy_reference_parameters(*net, fixtures) == 10);
  torch::NoGradGuard no_grad;
  GraphStructureCache cache;
  Batch batch;
  batch.x = x;
  batch.edge_index = edge_index;
  const auto& graph = cache.of(batch);
  const int64_t n = x.size(0);
  const auto targets = torch::arange(n);
  for (const bool sigmoid : {false, true}) {
    INFO("sigmoid " << sigmoid);
    options.alpha(sigmoid ? 0.8 : 0.5).sigmoid_structure(sigmoid);
    const auto expected = fixtures.at(sigmoid ? "score_w0.8_sigmoid" : "score_w0.5");
    const auto got = dominant_scores(*net, x, graph, targets, options).to(torch::kFloat64);
    // float32 against the reference's float64: the structure error's two sums cancel in part, so 1e-4.
    const double worst = ((got - expected).abs() / expected.abs()).max().item<double>();
    INFO("largest relative difference " << worst);
    REQUIRE(worst < 1e-4);
  }
  // The exact structure error in row chunks equals the dense computation, whatever the chunk; without the
  // sigmoid the closed form z_i^T (Z^T Z) z_i does too.
  const auto z = net->forward(x, graph.adjacency).first;
  auto adjacency = torch::zeros({n, n});
  adjacency.index_put_({edge_index[0], edge_index[1]}, torch::ones({edge_index.size(1)}));
  const auto dot = z.mm(z.t());
  const auto dense_sigmoid = (adjacency - torch::sigmoid(dot)).pow(2).sum(1).sqrt();
  const auto dense_plain = (adjacency - dot).pow(2).sum(1).sqrt();
  for (const int64_t chunk : {int64_t{1}, int64_t{7}, n, int64_t{0}}) {
    INFO("chunks of " << chunk);
    const auto chunked = dominant_structure_error(z, graph, targets, true, 0, c10::nullopt, chunk);
    REQUIRE(torch::allclose(chunked, dense_sigmoid, 1e-5, 1e-6));
  }
  REQUIRE(torch::allclose(dominant_structure_error(z, graph, targets, false), dense_plain, 1e-4, 1e-5));
  // Training's estimate from drawn nodes is unbiased before the square root.
  auto generator = at::detail::createCPUGenerator(4);
  auto squared = torch::zeros({n});
  for (int i = 0; i < 200; ++i)
    squared += dominant_structure_error(z, graph, targets, true, 16, generator).pow(2) / 200;
  REQUIRE(torch::allclose(squared, dense_sigmoid.pow(2), 0.05, 0.0));
}

TEST_CASE("dominant: a 50k-node graph trains and scores under a memory cap", "[graph][detectors][memory][slow]") {
  auto g = graph::make_synthetic_graph({50000, 400000, 16, 10, 0.9, 2.5, 2});
  auto options = DominantOptions().hidden(32);
  options.train().epochs(1).batch_size(4096);
  Dominant detector(options);
  const auto data = Data::graph(g.x, g.edge_index);
  // 1 GiB above what the process holds; a dense N x N float matrix alone needs 10 GB.
  adx::test::AddressSpaceCap cap(int64_t{1} << 30);
  REQUIRE(cap.active());
  REQUIRE_THROWS(torch::empty({50000, 50000}));
  detector.fit(data);
  const auto scores = detector.score(data).per_item;
  REQUIRE(scores.size(0) == 50000);
  REQUIRE(torch::isfinite(scores).all().item<bool>());
}

TEST_CASE("cola: subgraphs come from the neighbourhood, target last", "[graph][detectors]") {
  // A star 0 - {1, 2, 3, 4} and an isolated node 5.
  const auto edges = torch::tensor({{0, 0, 0, 0}, {1, 2, 3, 4}}, torch::kLong);
  Batch batch;
  batch.x = torch::zeros({6, 2});
  batch.edge_index = edges;
  GraphStructureCache cache;
  const auto& g = cache.of(batch);
  auto gen = at::detail::createCPUGenerator(3);
  const auto s = graph::sample_subgraphs(g, torch::tensor({0, 1, 5}, torch::kLong), 4, gen);
  REQUIRE(s.size(1) == 4);
  // Node 0: three distinct neighbours among 1..4, then itself.
  const auto row0 = s[0];
  REQUIRE(row0[3].item<int64_t>() == 0);
  REQUIRE(std::get<0>(at::_unique(row0.slice(0, 0, 3))).numel() == 3);
  REQUIRE(((row0.slice(0, 0, 3) >= 1) & (row0.slice(0, 0, 3) <= 4)).all().item<bool>());
  // Node 1 reaches 0 and, walking on, the other leaves.
  REQUIRE(s[1][3].item<int64_t>() == 1);
  REQUIRE((s[1].slice(0, 0, 3) != 1).all().item<bool>());
  // The isolated node has only itself.
  REQUIRE((s[2] == 5).all().item<bool>());
}

namespace {

// One target's subgraph drawn step by step, as the reference's random walk with restart describes it: first
// 3 * (size - 1) single steps from the target, then up to 50 steps of a walk that restarts at the target with
// probability 0.9; each new node other than the target joins, until size - 1 have. A neighbourhood too small
// repeats what was found (or the target). The target comes last.
std::vector<int64_t> scalar_subgraph(const std::vector<int64_t>& row_start, const std::vector<int64_t>& col,
                                     int64_t target, int64_t size, std::mt19937_64& rng) {
  const int64_t need = size - 1;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<int64_t> found;
  int64_t position = target;
  for (int64_t step = 0; step < 3 * need + 50 && static_cast<int64_t>(found.size()) < need; ++step) {
    if (step < 3 * need || unit(rng) < 0.9) position = target;
    const int64_t degree = row_start[position + 1] - row_start[position];
    position = degree > 0 ? col[row_start[position] + static_cast<int64_t>(unit(rng) * degree)] : target;
    if (position != target && std::find(found.begin(), found.end(), position) == found.end()) found.push_back(position);
  }
  std::vector<int64_t> subgraph;
  for (int64_t slot = 0; slot < need; ++slot)
    subgraph.push_back(found.empty() ? target : found[slot % found.size()]);
  subgraph.push_back(target);
  return subgraph;
}

}  // namespace

TEST_CASE("cola: the batched sampler draws subgraphs from the step-by-step walk's distribution",
          "[graph][detectors]") {
  // A graph with hubs, chains, a pair and an isolated node, so that some neighbourhoods are too small.
  const int64_t n = 24, size = 4, draws = 3000;
  std::vector<int64_t> from, to;
  auto edge = [&](int64_t u, int64_t v) { from.push_back(u), to.push_back(v); };
  for (int64_t v = 1; v <= 7; ++v) edge(0, v);       // a hub
  for (int64_t v = 8; v < 15; ++v) edge(v, v + 1);   // a chain 8 - ... - 15
  edge(1, 8), edge(3, 12), edge(16, 17);             // bridges, and a pair alone
  for (int64_t v = 18; v < 22; ++v) edge(18, v + 1); // a small star 18 - {19..22}
  edge(20, 21);                                      // node 23 has no edge
  Batch batch;
  batch.x = torch::zeros({n, 1});
  batch.edge_index = torch::stack({torch::tensor(from), torch::tensor(to)});
  GraphStructureCache cache;
  const auto& g = cache.of(batch);
  const auto row_start = to_longs(g.row_start);
  const auto col = to_longs(g.symmetric[1]);

  // Every node `draws` times in one call, and as many times step by step.
  auto generator = at::detail::createCPUGenerator(11);
  const auto targets = torch::arange(n).repeat({draws});
  const auto batched = graph::sample_subgraphs(g, targets, size, generator);
  REQUIRE(batched.sizes() == torch::IntArrayRef({n * draws, size}));
  REQUIRE(torch::equal(batched.select(1, size - 1), targets));
  const auto rows = to_longs(batched.reshape({-1}));
  std::mt19937_64 rng(5);
  // For each target: how often each node is in its subgraph, and how many distinct nodes the subgraph holds.
  std::vector<double> inclusion_batched(n * n, 0.0), inclusion_scalar(n * n, 0.0);
  std::vector<double> distinct_batched(n * size, 0.0), distinct_scalar(n * size, 0.0);
  auto count = [&](const std::vector<int64_t>& subgraph, int64_t target, std::vector<double>& inclusion,
                   std::vector<double>& distinct) {
    std::set<int64_t> nodes(subgraph.begin(), subgraph.end() - 1);
    for (const auto v : nodes) inclusion[target * n + v] += 1.0 / draws;
    distinct[target * size + static_cast<int64_t>(nodes.size())] += 1.0 / draws;
  };
  for (int64_t i = 0; i < n * draws; ++i) {
    const int64_t target = i % n;
    count(std::vector<int64_t>(rows.begin() + i * size, rows.begin() + (i + 1) * size), target, inclusion_batched,
          distinct_batched);
    count(scalar_subgraph(row_start, col, target, size, rng), target, inclusion_scalar, distinct_scalar);
  }
  // Two independent estimates of one probability p differ by at most 5 standard errors, sqrt(2 p (1 - p) / draws).
  auto agree = [&](const std::vector<double>& a, const std::vector<double>& b, const char* what) {
    for (size_t k = 0; k < a.size(); ++k) {
      const double p = (a[k] + b[k]) / 2;
      const double tolerance = 5.0 * std::sqrt(2.0 * p * (1.0 - p) / draws) + 1e-12;
      INFO(what << " " << k << ": batched " << a[k] << ", step by step " << b[k]);
      REQUIRE(std::abs(a[k] - b[k]) <= tolerance);
    }
  };
  agree(inclusion_batched, inclusion_scalar, "target * n + node");
  agree(distinct_batched, distinct_scalar, "target * size + distinct nodes");
  // The cases with one answer: the hub always finds 3 of its 7 leaves, the isolated node only itself.
  REQUIRE(distinct_scalar[0 * size + 3] == Approx(1.0));
  REQUIRE(inclusion_batched[23 * n + 23] == Approx(1.0));
}

TEST_CASE("cola: a round's scores equal a port of the authors' CoLA on the same weights and subgraphs",
          "[graph][reference][cola]") {
  // tests/export_cola.py ports GRAND-Lab/CoLA's model (GCN with its bias, average readout, bilinear
  // discriminator with the reference's batch shift), adjacency normalisation and test-time batch assembly,
  // and scores one round in a shuffled node order in float64. adx takes the same weights, subgraphs and
  // order in float64: 1e-10 relative.
  const auto fixtures = adx::load_state_dict(adx::test::reference_fixture("ADX_COLA_REFERENCE"));
  const auto x = fixtures.at("x").to(torch::kFloat64);
  ColaNet net(x.size(1), 16);
  net->to(torch::kFloat64);
  REQUIRE(adx::test::copy_reference_parameters(*net, fixtures) == 5);
  torch::NoGradGuard no_grad;
  Batch batch;
  batch.x = x;
  batch.edge_index = fixtures.at("edge_index");
  GraphStructureCache cache;
  const auto& graph = cache.of(batch);
  const auto order = fixtures.at("order");
  const auto round = cola_round_scores(*net, x, graph, fixtures.at("nodes").index_select(0, order));
  const auto scores = torch::zeros({x.size(0)}, torch::kFloat64).index_add_(0, order, round);
  const auto expected = fixtures.at("scores");
  const double worst = ((scores - expected).abs() / (expected.abs() + 1e-12)).max().item<double>();
  INFO("largest relative difference " << worst);
  REQUIRE(worst < 1e-10);
}

TEST_CASE("cola: finds injected anomalies; save/load gives identical scores", "[graph][detectors]") {
  const auto g = injected_graph();
  auto options = ColaOptions().rounds(64);
  options.train().epochs(40);
  options.runtime().seed(1);
  Cola detector(options);
  require_detects_and_round_trips(detector, Data::graph(g.x, g.edge_index), g.labels, 0.75, "cola");
}

TEST_CASE("edge scorer: ranks injected random edges first; save/load", "[graph][detectors]") {
  const auto base = graph::make_synthetic_graph({600, 3000, 16, 6, 0.9, 2.5, 4});
  const auto injected = inject_random_edges(base.edge_index, 600, 100, 9);
  REQUIRE(injected.labels.sum().item<int64_t>() == 100);
  auto options = EdgeScorerOptions();
  options.train().epochs(60);
  options.runtime().seed(1);
  EdgeScorer detector(options);
  const auto data = Data::graph(base.x, injected.edge_index);
  detector.fit(data);
  const auto edge_scores = detector.score_edges(data);
  REQUIRE(edge_scores.size(0) == injected.edge_index.size(1));
  const double auroc = metrics::roc_auc(to_ints(injected.labels), to_doubles(edge_scores));
  INFO("edge AUROC " << auroc);
  REQUIRE(auroc > 0.8);
  // As a node detector on injected node anomalies.
  const auto g = injected_graph();
  EdgeScorer nodes(options);
  nodes.fit(Data::graph(g.x, g.edge_index));
  const auto node_scores = nodes.score(Data::graph(g.x, g.edge_index)).per_item;
  const double node_auroc = metrics::roc_auc(to_ints(g.labels), to_doubles(node_scores));
  INFO("node AUROC " << node_auroc);
  REQUIRE(node_auroc > 0.6);

  const auto path = temp_path("edge_scorer.adx");
  detector.save(path);
  auto loaded = adx::load(path);
  REQUIRE(torch::equal(dynamic_cast<EdgeScorer&>(*loaded).score_edges(data), edge_scores));
  REQUIRE_THROWS_AS(EdgeScorer().score_edges(data), NotFittedError);
}

TEST_CASE("graph: structural indicators worked by hand", "[graph]") {
  // A triangle 0-1-2 with a pendant 3 on node 2, and an isolated node 4.
  const auto edges = torch::tensor({{0, 1, 2, 2}, {1, 2, 0, 3}}, torch::kLong);
  const auto f = graph::structural_features(edges, 5);
  REQUIRE(f.sizes() == torch::IntArrayRef({5, 4}));
  // Degrees 2, 2, 3, 1, 0; triangles 1, 1, 1, 0, 0; clustering 1, 1, 1/3, 0, 0.
  REQUIRE(to_doubles(f.select(1, 0)) == std::vector<double>{std::log1p(2.0f), std::log1p(2.0f), std::log1p(3.0f),
                                                            std::log1p(1.0f), 0.0});
  REQUIRE(f[2][1].item<double>() == Approx(1.0 / 3.0));
  REQUIRE(f[0][1].item<double>() == Approx(1.0));
  REQUIRE(f[3][1].item<double>() == 0.0);
  REQUIRE(f[0][2].item<double>() == Approx(std::log1p(1.0)));
  // Mean neighbour degree of node 3 is node 2's degree, 3.
  REQUIRE(f[3][3].item<double>() == Approx(std::log1p(3.0)));
}

TEST_CASE("recall@k worked by hand", "[graph][metrics]") {
  // Anomalies at 1 and 3; the top 2 scores are items 3 and 0.
  REQUIRE(metrics::recall_at_k({0, 1, 0, 1}, {0.8, 0.1, 0.2, 0.9}, 2) == Approx(0.5));
  REQUIRE(metrics::recall_at_k({0, 1, 0, 1}, {0.8, 0.1, 0.2, 0.9}, 4) == Approx(1.0));
  REQUIRE_THROWS_AS(metrics::recall_at_k({0, 0}, {0.1, 0.2}, 1), ValueError);
}

TEST_CASE("structural: finds injected cliques without training; save/load", "[graph][detectors]") {
  auto g = graph::make_synthetic_graph({600, 3000, 16, 6, 0.9, 2.5, 4});
  g = graph::inject_structural(g, 10, 3, 0.0, 5);
  Structural detector;
  require_detects_and_round_trips(detector, Data::graph(g.x, g.edge_index), g.labels, 0.8, "structural");
}

TEST_CASE("the parallel CSR product equals LibTorch's COO product, whatever the thread count", "[graph][gcn]") {
  torch::manual_seed(4);
  const int64_t n = 700;
  auto g = graph::make_synthetic_graph({n, 4000, 8, 5, 0.9, 2.5, 3});
  // Node n has no edge: its row holds only the self-loop.
  const auto adjacency = graph::normalized_adjacency(g.edge_index, torch::Tensor(), n + 1);
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (const int64_t width : {1, 7, 64, 300}) {
      const auto dense = torch::randn({n + 1, width}, dtype);
      const auto reference = torch::mm(adjacency.to(dtype), dense);
      // LibTorch's own setting, which ADX_NUM_THREADS (set when ctest runs programs side by side) does not override.
      at::set_num_threads(1);
      const auto one = nn::sparse_dense_product(adjacency, dense);
      at::set_num_threads(2);
      const auto two = nn::sparse_dense_product(adjacency, dense);
      INFO("width " << width);
      REQUIRE(torch::equal(one, two));
      REQUIRE((one - reference).abs().max().item<double>() < 1e-6);
    }
  }
  // Uncoalesced input (a repeated entry) is summed as LibTorch sums it; row 2 is empty.
  const auto repeated =
      torch::sparse_coo_tensor(torch::tensor({{0, 0, 1}, {1, 1, 0}}), torch::tensor({1.0f, 2.0f, 5.0f}), {3, 2});
  REQUIRE(torch::equal(nn::sparse_dense_product(repeated, torch::eye(2)),
                       torch::tensor({{0.0f, 3.0f}, {5.0f, 0.0f}, {0.0f, 0.0f}})));
}

TEST_CASE("row pair dot products equal the gathered form, value and gradient, whatever the thread count",
          "[graph][gcn]") {
  torch::manual_seed(5);
  const int64_t n = 300, pairs = 5000;
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (const int64_t width : {1, 7, 64, 100}) {
      INFO("width " << width);
      const auto z = torch::randn({n, width}, dtype);
      // Repeated rows, pairs of a row with itself and rows no pair names.
      const auto first = torch::randint(n - 10, {pairs}, torch::kLong), second = torch::randint(n - 10, {pairs}, torch::kLong);
      second.slice(0, 0, 50).copy_(first.slice(0, 0, 50));
      const auto weights = torch::randn({pairs}, dtype);
      const auto gathered_z = z.clone().requires_grad_(true);
      const auto gathered = (gathered_z.index_select(0, first) * gathered_z.index_select(0, second)).sum(1);
      (gathered * weights).sum().backward();
      std::vector<torch::Tensor> values, gradients;
      for (const int threads : {1, 2}) {
        at::set_num_threads(threads);
        const auto fused_z = z.clone().requires_grad_(true);
        const auto fused = nn::row_pair_dots(fused_z, first, second);
        (fused * weights).sum().backward();
        values.push_back(fused.detach());
        gradients.push_back(fused_z.grad());
      }
      REQUIRE(torch::equal(values[0], values[1]));
      REQUIRE(torch::equal(gradients[0], gradients[1]));
      const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 1e-12;
      REQUIRE(torch::allclose(values[0], gathered.detach(), tolerance, tolerance));
      REQUIRE(torch::allclose(gradients[0], gathered_z.grad(), tolerance, tolerance));
      REQUIRE(gradients[0].slice(0, n - 10).abs().max().item<double>() == 0.0);
    }
  }
  REQUIRE_THROWS_WITH(nn::row_pair_dots(torch::zeros({3, 2}), torch::tensor({0L, 3L}), torch::tensor({1L, 1L})),
                      Contains("outside the 3 rows"));
}

TEST_CASE("graph structure: the edges leaving some targets, and the features times A_hat kept while unchanged",
          "[graph][gcn]") {
  auto g = graph::make_synthetic_graph({400, 2000, 6, 5, 0.9, 2.5, 8});
  GraphStructureCache cache;
  Batch batch;
  batch.x = g.x;
  batch.edge_index = g.edge_index;
  const auto& structure = cache.of(batch);
  // Shuffled targets, and one without a neighbour among them when there is one.
  const auto targets = torch::randperm(400, torch::kLong).slice(0, 0, 150);
  const auto [rows, owner] = structure.edges_from(targets);
  std::set<std::pair<int64_t, int64_t>> expected, got;
  const auto sources = to_longs(structure.symmetric[0]);
  const auto wanted = to_longs(targets);
  for (size_t row = 0; row < sources.size(); ++row)
    for (size_t t = 0; t < wanted.size(); ++t)
      if (sources[row] == wanted[t]) expected.insert({static_cast<int64_t>(row), static_cast<int64_t>(t)});
  const auto got_rows = to_longs(rows), got_owner = to_longs(owner);
  for (size_t i = 0; i < got_rows.size(); ++i) got.insert({got_rows[i], got_owner[i]});
  REQUIRE(got_rows.size() == expected.size());
  REQUIRE(got == expected);
  // Grouped by target in the order given.
  REQUIRE(std::is_sorted(got_owner.begin(), got_owner.end()));

  const auto x = g.x.clone();
  const auto first = structure.propagated(x);
  REQUIRE(torch::allclose(first, torch::mm(structure.adjacency, x), 1e-5, 1e-6));
  REQUIRE(structure.propagated(x).data_ptr() == first.data_ptr());
  // Changed in place, or another tensor: computed again.
  x.mul_(2);
  REQUIRE(torch::allclose(structure.propagated(x), 2 * first, 1e-5, 1e-6));
  const auto other = g.x.clone();
  REQUIRE(structure.propagated(other).data_ptr() != structure.propagated(x).data_ptr());
  // A GCN stack on the kept product equals the stack on the features.
  nn::GcnStack stack(std::vector<int64_t>{6, 16, 3}, 0.0);
  REQUIRE(torch::allclose(stack->forward(other, structure.adjacency, structure.propagated(other)),
                          stack->forward(other, structure.adjacency), 1e-5, 1e-6));
}

TEST_CASE("isolation forest: finds contextual outliers from node features alone; save/load", "[graph][detectors]") {
  auto g = graph::make_synthetic_graph({600, 3000, 16, 6, 0.9, 2.5, 4});
  g = graph::inject_contextual(g, 20, 50, 6);
  IsolationForest detector;
  require_detects_and_round_trips(detector, Data::graph(g.x, g.edge_index), g.labels, 0.75, "isolation_forest");  // 0.80 measured
  // An isolated node with an all-zero feature row scores like any other node: finite, in (0, 1].
  auto x = torch::cat({g.x, torch::zeros({1, g.x.size(1)})});
  const auto scores = detector.score(Data::graph(x, g.edge_index)).per_item;
  REQUIRE(scores.size(0) == x.size(0));
  REQUIRE(scores.isfinite().all().item<bool>());
  REQUIRE(scores[-1].item<float>() > 0.0f);
}

TEST_CASE("graph detectors score new nodes attached to the fitted graph (inductive)", "[graph][detectors]") {
  // Fit on a graph, then score it with 60 new nodes attached: 30 normal newcomers that copy
  // a random old node's community (features and edges), 30 that join a clique.
  auto g = graph::make_synthetic_graph({600, 3000, 16, 6, 0.9, 2.5, 4});
  auto options = DominantOptions();
  options.train().epochs(60);
  Dominant detector(options);
  detector.fit(Data::graph(g.x, g.edge_index));

  torch::manual_seed(11);
  const int64_t n = 600, added = 60;
  const auto template_nodes = torch::randint(n, {added}, torch::kLong);
  const auto x_new = g.x.index_select(0, template_nodes) + 0.1 * torch::randn({added, 16});
  // Each newcomer links to 5 neighbours of its template node's community (the template's edges).
  std::vector<int64_t> src, dst;
  const auto sym = graph::symmetrize(g.edge_index, n);
  for (int64_t k = 0; k < added; ++k) {
    const auto neighbours = sym[1].masked_select(sym[0] == template_nodes[k]);
    for (int64_t j = 0; j < std::min<int64_t>(5, neighbours.numel()); ++j) {
      src.push_back(n + k);
      dst.push_back(neighbours[j].item<int64_t>());
    }
  }
  auto edges = torch::cat({g.edge_index, torch::stack({torch::tensor(src), torch::tensor(dst)})}, 1);
  graph::InjectedGraph grown{torch::cat({g.x, x_new}), edges, {}};
  grown.labels = torch::zeros({n + added}, torch::kLong);
  // The last 30 newcomers form a clique.
  const auto clique = torch::arange(n + added - 30, n + added, torch::kLong);
  const auto cs = clique.repeat_interleave(30), cd = clique.repeat(30);
  const auto keep = (cs != cd).nonzero().reshape({-1});
  grown.edge_index = torch::cat({grown.edge_index, torch::stack({cs.index_select(0, keep), cd.index_select(0, keep)})}, 1);
  grown.labels.slice(0, n + added - 30).fill_(1);

  const auto scores = detector.score(Data::graph(grown.x, grown.edge_index)).per_item;
  REQUIRE(scores.size(0) == n + added);
  // Among the newcomers, the clique members rank above the normal ones.
  const auto newcomer_scores = scores.slice(0, n);
  const auto newcomer_labels = grown.labels.slice(0, n);
  const double auroc = metrics::roc_auc(to_ints(newcomer_labels), to_doubles(newcomer_scores));
  INFO("newcomer AUROC " << auroc);
  REQUIRE(auroc > 0.8);
}

TEST_CASE("graph detectors train deterministically under a seed", "[graph][detectors]") {
  const auto g = injected_graph();
  const auto data = Data::graph(g.x, g.edge_index);
  for (const std::string name : {"dominant", "cola", "edge_scorer", "structural"}) {
    const adx::OptionMap options{{"train.epochs", "3"}, {"runtime.seed", "7"}, {"rounds", "4"}};
    adx::OptionMap mine = options;
    if (name != "cola") mine.erase("rounds");
    if (name == "structural") mine.erase("train.epochs");
    auto a = adx::make_detector(name, mine), b = adx::make_detector(name, mine);
    a->fit(data);
    b->fit(data);
    INFO(name);
    REQUIRE(torch::equal(a->score(data).per_item, b->score(data).per_item));
  }
}
