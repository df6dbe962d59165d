// A real attributed graph with anomalies injected the PyGOD way, over several seeds: each graph
// detector and each classic baseline, AUROC, average precision and Recall@k per seed and their mean.
//
//   injected_graph_benchmark --features ../shared/data/citeseer/features.npy \
//                            --edges ../shared/data/citeseer/edges.csv
//
// Injection (BOND's protocol, PyGOD's gen_structural_outlier and gen_contextual_outlier): --cliques
// cliques of --clique-size nodes, and --contextual nodes that each take the features of the farthest
// of --candidates random nodes; a new draw per seed. Every detector also takes the seed (--seed is
// ignored).
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <map>

#include "common/benchmark_runs.hpp"
#include "common/graph_baselines.hpp"
#include "common/tensors.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::Clock;
using adx::examples::doubles_of;
using adx::examples::ints_of;
using adx::examples::seconds_since;

struct Figures {
  std::vector<double> auroc, ap, recall;
  std::vector<double> auroc_cliques, auroc_contextual;  // each kind of anomaly against the normal nodes
  double seconds = 0;
};

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

double spread_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Graph detectors and classic baselines on a real graph with injected anomalies, over seeds."};
  std::string features_path, edges_path, out_path = "injected_graph_results.md";
  int64_t cliques = 7, clique_size = 10, contextual = 70, candidates = 50, seeds = 5;
  adx::examples::DetectorRuns runs{{"dominant", "structural", "isolation_forest", "edge_scorer"}};
  app.add_option("--features", features_path, "node features, .npy or CSV (N x F)")->required();
  app.add_option("--edges", edges_path, "edge list CSV: src,dst")->required();
  app.add_option("--cliques", cliques, "injected cliques")->capture_default_str();
  app.add_option("--clique-size", clique_size, "nodes per clique")->capture_default_str();
  app.add_option("--contextual", contextual, "injected contextual outliers")->capture_default_str();
  app.add_option("--candidates", candidates, "candidates per contextual outlier")->capture_default_str();
  app.add_option("--seeds", seeds, "injections (seeds 0, 1, ...)")->check(CLI::Range(1, 100))->capture_default_str();
  adx::examples::add_detector_run_flags(app, runs);
  app.add_option("--out", out_path, "Markdown file for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const int used_threads = adx::set_num_threads(static_cast<int>(runs.threads));
    const bool npy = features_path.size() > 4 && features_path.substr(features_path.size() - 4) == ".npy";
    adx::graph::InjectedGraph base;
    base.x = (npy ? adx::load_npy(features_path) : adx::load_csv(features_path)).to(torch::kFloat32);
    adx::graph::EdgeListOptions edge_options;
    edge_options.num_nodes = base.x.size(0);
    base.edge_index = adx::graph::load_edge_list(edges_path, edge_options).edge_index;
    base.labels = torch::zeros({base.x.size(0)}, torch::kLong);
    std::cout << fmt::format("{}: {} nodes x {} features, {} edges; {} seeds, {} threads\n", features_path,
                             base.x.size(0), base.x.size(1), base.edge_index.size(1), seeds, used_threads);

    std::vector<std::string> methods;
    std::map<std::string, Figures> results;
    int64_t anomalies = 0;
    for (int64_t seed = 0; seed < seeds; ++seed) {
      auto g = adx::graph::inject_structural(base, clique_size, cliques, 0.0, static_cast<uint64_t>(2 * seed + 1));
      const auto in_clique = g.labels.clone();
      g = adx::graph::inject_contextual(g, contextual, candidates, static_cast<uint64_t>(2 * seed + 2));
      const auto labels = ints_of(g.labels);
      // One kind of anomaly against the normal nodes (the other kind left out): which kind a method finds.
      const auto clique_nodes = ints_of(in_clique), contextual_nodes = ints_of(g.labels - in_clique);
      auto auroc_of_kind = [&](const std::vector<int>& kind, const std::vector<double>& scores) {
        std::vector<int> kept_labels;
        std::vector<double> kept_scores;
        for (size_t i = 0; i < labels.size(); ++i)
          if (labels[i] == 0 || kind[i] == 1) {
            kept_labels.push_back(kind[i]);
            kept_scores.push_back(scores[i]);
          }
        return adx::metrics::roc_auc(kept_labels, kept_scores);
      };
      anomalies = g.labels.sum().item<int64_t>();
      auto record = [&](const std::string& method, const std::vector<double>& scores, double spent) {
        if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
        auto& f = results[method];
        f.auroc.push_back(adx::metrics::roc_auc(labels, scores));
        f.ap.push_back(adx::metrics::average_precision(labels, scores));
        f.recall.push_back(adx::metrics::recall_at_k(labels, scores, anomalies));
        f.auroc_cliques.push_back(auroc_of_kind(clique_nodes, scores));
        f.auroc_contextual.push_back(auroc_of_kind(contextual_nodes, scores));
        f.seconds += spent;
        std::cout << fmt::format(
            "seed {}: {:<50} AUROC {:.3f} (cliques {:.3f}, contextual {:.3f})  AP {:.3f}  Recall@{} {:.3f}  "
            "({:.1f} s)\n",
            seed, method, f.auroc.back(), f.auroc_cliques.back(), f.auroc_contextual.back(), f.ap.back(), anomalies,
            f.recall.back(), spent);
      };
      auto t0 = Clock::now();
      const auto baselines = adx::examples::graph_baselines(g.x, g.edge_index);
      const double base_s = seconds_since(t0) / static_cast<double>(baselines.size());
      for (const auto& b : baselines) record(b.name, b.scores, base_s);

      const auto data = adx::Data::graph(g.x, g.edge_index);
      for (const auto& name : runs.detectors) {
        runs.seed = seed;  // each injection's seed is also the detectors'
        t0 = Clock::now();
        auto detector = adx::make_detector(name, adx::examples::options_for(name, runs, used_threads));
        detector->fit(data);
        const auto scores = doubles_of(detector->score(data).per_item);
        const double spent = seconds_since(t0);
        record(name, scores, spent);
        // The detector beside a classic baseline, ranks summed with equal weight: whether the two see
        // different anomalies.
        for (const auto& b : baselines)
          if (b.name.find("rank sum") != std::string::npos)
            record(fmt::format("{} + {}", name, b.name.substr(0, b.name.find(" (baseline)"))),
                   adx::examples::rank_sum({scores, b.scores}), spent + base_s);
      }
    }

    std::string report = fmt::format(
        "{}: {} nodes, {} edges; {} cliques of {} and {} contextual outliers (farthest of {}) per seed, {} "
        "anomalies; mean ± standard deviation over {} seeds, {} threads. AUROC cliques / contextual: that kind of "
        "anomaly against the normal nodes.\n\n| method | AUROC | AUROC cliques | AUROC contextual | AP | Recall@{} | "
        "fit + score s per seed |\n|---|---|---|---|---|---|---|\n",
        features_path, base.x.size(0), base.edge_index.size(1), cliques, clique_size, contextual, candidates,
        anomalies, seeds, used_threads, anomalies);
    for (const auto& m : methods) {
      const auto& f = results[m];
      report += fmt::format("| {} | {:.3f} ± {:.3f} | {:.3f} | {:.3f} | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} | {:.1f} |\n",
                            m, mean_of(f.auroc), spread_of(f.auroc), mean_of(f.auroc_cliques),
                            mean_of(f.auroc_contextual), mean_of(f.ap), spread_of(f.ap), mean_of(f.recall),
                            spread_of(f.recall), f.seconds / static_cast<double>(seeds));
    }
    adx::examples::publish(report, out_path);
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
