// Graph benchmark.
//
// Scale: DOMINANT on a generated power-law graph of N nodes and 10 N edges, one size
// per process so that the peak resident set size is this size's own:
//
//   graph_benchmark --nodes 1000000 [--epochs 1] [--batch 65536]
//
// Against Python: the same DOMINANT as PyGOD runs it (dense N x N structure matrices,
// dominant_dense_reference.py) on random graphs of growing N, full-graph training on both
// sides; the largest N each side fits in memory and the time ratio where both fit:
//
//   graph_benchmark --compare 10000,20000,30000,50000,100000 [--epochs 5]
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sys/resource.h>

#include <chrono>
#include <iostream>

#include "common/reference.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::Clock;
using adx::examples::peak_rss_mib;
using adx::examples::seconds_since;

struct Run {
  double fit_s, score_s;
};

Run fit_and_score(const adx::graph::InjectedGraph& g, int64_t epochs, int64_t batch, int64_t threads) {
  const adx::OptionMap options{{"train.epochs", std::to_string(epochs)},
                               {"train.batch_size", std::to_string(batch)},
                               {"runtime.validation_fraction", "0"},
                               {"runtime.threads", std::to_string(threads)}};
  auto detector = adx::make_detector("dominant", options);
  const auto data = adx::Data::graph(g.x, g.edge_index);
  auto t0 = Clock::now();
  detector->fit(data);
  const double fit_s = seconds_since(t0);
  t0 = Clock::now();
  const auto scores = detector->score(data);
  ADX_CHECK(scores.per_item.size(0) == g.x.size(0), "wrong score count");
  return {fit_s, seconds_since(t0)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DOMINANT at scale, and against the dense DOMINANT of PyGOD in Python."};
  int64_t nodes = 0, epochs = 1, batch = 65536, threads = 2, edges_per_node = 10, features = 32;
  std::string compare, python = "/usr/bin/python3";
  app.add_option("--nodes", nodes, "scale mode: nodes of the generated graph");
  app.add_option("--edges-per-node", edges_per_node, "edges drawn per node");
  app.add_option("--features", features, "node features");
  app.add_option("--epochs", epochs, "training epochs");
  app.add_option("--batch", batch, "scale mode: target nodes per training step");
  app.add_option("--threads", threads, "threads");
  app.add_option("--compare", compare, "comparison mode: comma-separated node counts");
  app.add_option("--python", python, "Python interpreter with torch");
  CLI11_PARSE(app, argc, argv);
  try {
    adx::set_num_threads(static_cast<int>(threads));
    if (nodes > 0) {
      adx::graph::SyntheticGraphOptions o;
      o.nodes = nodes;
      o.edges = edges_per_node * nodes;
      o.features = features;
      o.communities = 20;
      auto t0 = Clock::now();
      const auto g = adx::graph::make_synthetic_graph(o);
      const double generate_s = seconds_since(t0);
      const double input_mib = static_cast<double>(g.x.numel() * 4 + g.edge_index.numel() * 8) / 1048576.0;
      const auto run = fit_and_score(g, epochs, batch, threads);
      std::cout << fmt::format(
          "| {} | {} | {:.1f} | {:.1f} ({} epoch(s), batch {}) | {:.1f} | {:.0f} | {:.0f} |\n", nodes,
          g.edge_index.size(1), generate_s, run.fit_s, epochs, batch, run.score_s, input_mib, peak_rss_mib());
      return 0;
    }
    ADX_CHECK_AS(adx::OptionError, !compare.empty(), "give --nodes N or --compare N1,N2,...");
    std::cout << fmt::format("DOMINANT, full-graph training, {} epochs, {} edges per node, {} features, {} threads\n\n",
                             epochs, edges_per_node, features, threads);
    const auto lines = adx::examples::run_reference(
        fmt::format("{} {}/dominant_dense_reference.py --nodes {} --epochs {} --edges-per-node {} --features {} --threads {}",
                    python, ADX_BENCHMARK_DIR, compare, epochs, edges_per_node, features, threads));
    std::cout << "| nodes | adx fit s | adx score s | Python (dense) fit s | Python score s | fit ratio | score ratio |\n"
                 "|---|---|---|---|---|---|---|\n";
    for (const auto& text : adx::split_commas(compare)) {
      const int64_t n = std::stoll(text);
      torch::manual_seed(0);
      adx::graph::InjectedGraph g;
      g.x = torch::randn({n, features});
      g.edge_index = torch::randint(n, {2, edges_per_node * n}, torch::kLong);
      const auto run = fit_and_score(g, epochs, n, threads);
      std::string py = "did not fit | - | - | -";
      for (const auto& line : lines) {
        if (static_cast<int64_t>(adx::examples::json_number(line, "nodes")) != n) continue;
        if (adx::examples::json_number(line, "fits") > 0) {
          const double fit = adx::examples::json_number(line, "fit_s"), score = adx::examples::json_number(line, "score_s");
          py = fmt::format("{:.2f} | {:.2f} | {:.2f}x | {:.2f}x", fit, score, fit / run.fit_s, score / run.score_s);
        }
      }
      std::cout << fmt::format("| {} | {:.2f} | {:.2f} | {} |\n", n, run.fit_s, run.score_s, py);
    }
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
