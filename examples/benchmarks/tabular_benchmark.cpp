// Real tables as one-class sets: every subfolder of --data-dir with train.csv (normal rows),
// test.csv and labels.csv (1 = anomaly), as sklearn_tables.py writes scikit-learn's bundled breast
// cancer, wine and digits tables. Each detector and the PCA baseline, AUROC per set and the mean per
// table family.
//
//   /usr/bin/python3 examples/benchmarks/sklearn_tables.py tables
//   tabular_benchmark --data-dir tables
//
// The PCA baseline: the rows standardised with the training statistics, then the squared
// reconstruction error from the principal components that explain 90% of the training variance.
// Isolation Forest is an adx detector (isolation_forest) and runs as one.
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "common/benchmark_runs.hpp"
#include "common/pca.hpp"
#include "common/tensors.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::Clock;
using adx::examples::doubles_of;
using adx::examples::ints_of;
using adx::examples::seconds_since;

std::vector<double> pca_baseline(const torch::Tensor& train, const torch::Tensor& test, double explained) {
  return doubles_of(adx::examples::pca_residual(adx::examples::fit_pca(train, explained, /*standardise=*/true), test));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tabular detectors and the PCA baseline on one-class tables (train.csv, test.csv, labels.csv)."};
  std::string data_dir, out_path = "tabular_results.md";
  adx::examples::DetectorRuns runs{{"isolation_forest", "autoencoder", "vae", "deep_svdd"}};
  app.add_option("--data-dir", data_dir, "folder of one-class sets, one subfolder each")->required();
  adx::examples::add_detector_run_flags(app, runs);
  app.add_option("--out", out_path, "Markdown file for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const int used_threads = adx::set_num_threads(static_cast<int>(runs.threads));
    std::vector<std::filesystem::path> sets;
    for (const auto& entry : std::filesystem::directory_iterator(data_dir))
      if (entry.is_directory() && std::filesystem::exists(entry.path() / "train.csv")) sets.push_back(entry.path());
    std::sort(sets.begin(), sets.end());
    ADX_CHECK_AS(adx::IoError, !sets.empty(), "no folder with a train.csv in '{}'", data_dir);

    std::vector<std::string> methods{"PCA, 90% variance (baseline)"};
    methods.insert(methods.end(), runs.detectors.begin(), runs.detectors.end());
    std::map<std::string, std::map<std::string, double>> auroc;  // set -> method -> AUROC
    std::map<std::string, double> seconds;
    for (const auto& folder : sets) {
      const auto train = adx::load_csv((folder / "train.csv").string());
      const auto test = adx::load_csv((folder / "test.csv").string());
      const auto labels = ints_of(adx::load_csv((folder / "labels.csv").string()).reshape({-1}));
      const std::string name = folder.filename().string();
      std::cout << fmt::format("{}: {} training rows, {} test rows ({} anomalies), {} columns\n", name,
                               train.size(0), test.size(0), std::count(labels.begin(), labels.end(), 1),
                               train.size(1));
      auto t0 = Clock::now();
      auroc[name][methods[0]] = adx::metrics::roc_auc(labels, pca_baseline(train, test, 0.9));
      seconds[methods[0]] += seconds_since(t0);
      for (const auto& detector_name : runs.detectors) {
        t0 = Clock::now();
        auto detector = adx::make_detector(detector_name, adx::examples::options_for(detector_name, runs, used_threads));
        detector->fit(adx::Data::tabular(train));
        auroc[name][detector_name] =
            adx::metrics::roc_auc(labels, doubles_of(detector->score(adx::Data::tabular(test)).per_item));
        seconds[detector_name] += seconds_since(t0);
      }
      for (const auto& m : methods) std::cout << fmt::format("  {:<32} AUROC {:.3f}\n", m, auroc[name][m]);
    }

    // One row per set, then the mean per family (the name before the last '_').
    std::string report = fmt::format("One-class sets from {}, {} threads. AUROC.\n\n| set |", data_dir, used_threads);
    for (const auto& m : methods) report += " " + m + " |";
    report += "\n|---|";
    for (size_t i = 0; i < methods.size(); ++i) report += "---|";
    report += "\n";
    std::map<std::string, std::map<std::string, std::pair<double, int>>> family;
    for (const auto& [name, row] : auroc) {
      report += "| " + name + " |";
      const auto f = name.substr(0, name.rfind('_'));
      for (const auto& m : methods) {
        report += fmt::format(" {:.3f} |", row.at(m));
        family[f][m].first += row.at(m);
        family[f][m].second += 1;
      }
      report += "\n";
    }
    for (const auto& [f, sums] : family) {
      report += "| **" + f + ", mean** |";
      for (const auto& m : methods) report += fmt::format(" **{:.3f}** |", sums.at(m).first / sums.at(m).second);
      report += "\n";
    }
    report += "\n" + adx::examples::seconds_table(methods, seconds, "fit + score s, all sets");
    adx::examples::publish(report, out_path);
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
