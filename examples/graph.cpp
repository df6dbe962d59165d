// Graph anomaly detection end to end: every graph detector on one graph, a Markdown table
// of AUROC, average precision and Recall@k, and the top-k nodes of each detector in CSV.
//
//   graph                                        a generated power-law graph with injected anomalies
//   graph --features x.csv --edges edges.csv --labels y.csv
//   graph --features x.npy --edges edges.csv --inject
//
// --features is a CSV (numeric, optional header) or .npy of N x F; --edges holds
// src,dst[,weight] rows whose ids are the feature rows (0..N-1) or, if they are strings,
// are numbered in order of appearance; --labels is one 0/1 per node. --inject adds
// anomalies as PyGOD does: cliques of 15 nodes and as many contextual outliers (the
// farthest of 50 candidates), 5% of the nodes in all. The classic baselines (degree, the
// distance to the neighbours' mean features, rank sums) are scored beside the detectors.
#include <adx/base.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include "common/detector_sets.hpp"
#include "common/graph_baselines.hpp"
#include "common/tensors.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::doubles_of;
using adx::examples::ints_of;

using adx::examples::Clock;
using adx::examples::seconds_since;



torch::Tensor load_matrix(const std::string& path) {
  const bool npy = path.size() > 4 && path.substr(path.size() - 4) == ".npy";
  auto t = npy ? adx::load_npy(path) : adx::load_csv(path);
  return t.dim() == 1 ? t.unsqueeze(1) : t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Graph anomaly detection: every graph detector, AUROC / AP / Recall@k, top-k nodes."};
  std::string features_path, edges_path, labels_path, out_dir = "graph_results";
  bool inject = false;
  int64_t nodes = 3000, edges_per_node = 5, top_k = 0, epochs = 0, threads = 0, seed = 0;
  std::vector<std::string> detectors{"dominant", "cola", "edge_scorer", "structural", "isolation_forest"};
  app.add_option("--features", features_path, "node features, CSV or .npy (N x F)");
  app.add_option("--edges", edges_path, "edge list CSV: src,dst[,weight]");
  app.add_option("--labels", labels_path, "node labels, CSV or .npy (0 = normal)");
  app.add_flag("--inject", inject, "inject structural and contextual anomalies (PyGOD's way)");
  app.add_option("--nodes", nodes, "generated graph: nodes")->check(CLI::Range(100, 100000000));
  app.add_option("--edges-per-node", edges_per_node, "generated graph: edges drawn per node");
  app.add_option("--detectors", detectors, "detectors to run")->delimiter(',');
  app.add_option("--top-k", top_k, "k of Recall@k and of the CSV (0 = the number of anomalies)");
  app.add_option("--epochs", epochs, "override every detector's training epochs");
  app.add_option("--threads", threads, "threads (0 = all cores)");
  app.add_option("--seed", seed, "seed of the generator, the injection and every detector");
  app.add_option("--out", out_dir, "folder for results.md and <detector>_top.csv");
  CLI11_PARSE(app, argc, argv);
  try {
    const int used_threads = adx::set_num_threads(static_cast<int>(threads));
    adx::graph::InjectedGraph g;
    std::vector<std::string> node_ids;
    std::string source;
    if (features_path.empty() != edges_path.empty())
      throw adx::OptionError("give both --features and --edges, or neither (a generated graph)");
    if (features_path.empty()) {
      adx::graph::SyntheticGraphOptions o;
      o.nodes = nodes;
      o.edges = edges_per_node * nodes;
      o.seed = static_cast<uint64_t>(seed);
      g = adx::graph::make_synthetic_graph(o);
      inject = true;
      source = fmt::format("generated power-law graph with {} communities", o.communities);
    } else {
      g.x = load_matrix(features_path).to(torch::kFloat32);
      adx::graph::EdgeListOptions e;
      e.num_nodes = g.x.size(0);
      auto edges = adx::graph::load_edge_list(edges_path, e);
      g.edge_index = edges.edge_index;
      node_ids = edges.node_ids;
      source = fmt::format("{} and {}", features_path, edges_path);
      if (!labels_path.empty()) {
        g.labels = (load_matrix(labels_path).reshape({-1}) != 0).to(torch::kLong);
        ADX_CHECK_AS(adx::ShapeError, g.labels.size(0) == g.x.size(0), "{} labels for {} nodes (feature rows)",
                     g.labels.size(0), g.x.size(0));
      }
    }
    const int64_t n = g.x.size(0);
    if (inject) {
      const int64_t per_kind = std::max<int64_t>(15, n / 40);  // 2.5% of the nodes each
      g = adx::graph::inject_structural(g, 15, std::max<int64_t>(1, per_kind / 15), 0.0, static_cast<uint64_t>(seed) + 1);
      g = adx::graph::inject_contextual(g, per_kind, 50, static_cast<uint64_t>(seed) + 2);
      source += fmt::format(", {} injected anomalies", g.labels.sum().item<int64_t>());
    }
    if (node_ids.empty())
      for (int64_t k = 0; k < n; ++k) node_ids.push_back(std::to_string(k));
    const bool labelled = g.labels.defined() && g.labels.sum().item<int64_t>() > 0;
    if (top_k <= 0) top_k = labelled ? g.labels.sum().item<int64_t>() : 50;
    std::cout << fmt::format("{}: {} nodes x {} features, {} edges, {} threads\n\n", source, n, g.x.size(1),
                             g.edge_index.size(1), used_threads);

    const auto data = adx::Data::graph(g.x, g.edge_index);
    std::filesystem::create_directories(out_dir);
    std::string table = fmt::format("| detector | AUROC | AP | Recall@{} | fit s | score s |\n|---|---|---|---|---|---|\n", top_k);
    for (const auto& name : detectors) {
      adx::OptionMap options{{"runtime.seed", std::to_string(seed)}, {"runtime.threads", std::to_string(used_threads)}};
      if (epochs > 0 && adx::examples::trains_by_epochs(name)) options["train.epochs"] = std::to_string(epochs);
      auto detector = adx::make_detector(name, options);
      auto t0 = Clock::now();
      detector->fit(data);
      const double fit_s = seconds_since(t0);
      t0 = Clock::now();
      const auto scores = doubles_of(detector->score(data).per_item);
      const double score_s = seconds_since(t0);
      std::string figures = "- | - | -";
      if (labelled) {
        const auto labels = ints_of(g.labels);
        figures = fmt::format("{:.3f} | {:.3f} | {:.3f}", adx::metrics::roc_auc(labels, scores),
                              adx::metrics::average_precision(labels, scores),
                              adx::metrics::recall_at_k(labels, scores, top_k));
      }
      table += fmt::format("| {} | {} | {:.1f} | {:.1f} |\n", name, figures, fit_s, score_s);
      // The top-k nodes, with their ids as the input named them.
      std::vector<size_t> order(scores.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
      std::ofstream csv(out_dir + "/" + name + "_top.csv");
      csv << "rank,node,score" << (labelled ? ",label" : "") << "\n";
      for (int64_t r = 0; r < std::min<int64_t>(top_k, n); ++r) {
        const size_t i = order[static_cast<size_t>(r)];
        csv << r + 1 << "," << node_ids[i] << "," << scores[i];
        if (labelled) csv << "," << g.labels[static_cast<int64_t>(i)].item<int64_t>();
        csv << "\n";
      }
      std::cout << fmt::format("{}: fit {:.1f} s, score {:.1f} s\n", name, fit_s, score_s);
    }
    // The baselines a careful user tries first, with the same metrics.
    if (labelled)
      for (const auto& baseline : adx::examples::graph_baselines(g.x, g.edge_index)) {
        const auto labels = ints_of(g.labels);
        table += fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | – | – |\n", baseline.name,
                             adx::metrics::roc_auc(labels, baseline.scores),
                             adx::metrics::average_precision(labels, baseline.scores),
                             adx::metrics::recall_at_k(labels, baseline.scores, top_k));
      }
    std::cout << "\n" << table;
    std::ofstream(out_dir + "/results.md") << "## " << source << "\n\n" << table;
    std::cout << "\nwrote " << out_dir << "/results.md and " << out_dir << "/<detector>_top.csv\n";
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
