// Real monitoring series: every series CSV of a folder (NAB's layout: timestamp, value, label), each
// detector and each classic baseline trained on the head of the series (NAB's probationary 15% by
// default) and scored on the rest, in one table per metric with the mean over the labelled series.
//
//   nab_benchmark --data-dir ../shared/data/nab                      every file
//   nab_benchmark --data-dir ../shared/data/nab --match realTweets   the real series only
//
// Metrics: point AUROC and VUS-ROC (threshold-free), and for each detector's own threshold (calibrated
// on the held-out tail of the head, at least two windows and at most half of the head, or as the
// detector defines it; 99th percentile by default) the false-alarm rate, the share of the test's
// normal steps above it, and the share of labelled anomaly windows with at least one step above it;
// both again under the adaptive threshold a deployment would run (adx::AdaptiveThreshold, as in
// ProductionDetector), fed the per-step scores in time order. On series without anomalies
// (artificialNoAnomaly) the false-alarm rates are the only figures. Labels are NAB's windows, wide and
// centred on each anomaly, so point figures are pessimistic for every method alike.
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "common/benchmark_runs.hpp"
#include "common/series_alarms.hpp"
#include "common/series_baselines.hpp"
#include "common/tensors.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::adaptive_alarms;
using adx::examples::Clock;
using adx::examples::doubles_of;
using adx::examples::false_alarm_rate;
using adx::examples::fixed_alarms;
using adx::examples::ints_of;
using adx::examples::seconds_since;
using adx::examples::windows_caught;

struct Figures {
  double auroc = NAN, vus_roc = NAN;
  // Under the detector's own threshold, fixed, and under the adaptive threshold that follows recent scores.
  double false_alarms = NAN, caught = NAN, adaptive_false_alarms = NAN, adaptive_caught = NAN;
};

std::string cell(double v, const char* format = "{:.3f}") {
  return std::isnan(v) ? std::string("–") : fmt::format(fmt::runtime(format), v);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Detectors and classic baselines on a folder of labelled monitoring series (NAB layout)."};
  std::string data_dir, match, out_path = "nab_results.md";
  double train_fraction = 0.15;
  int64_t window = 100, train_stride = 1;
  adx::examples::DetectorRuns runs{{"matrix_profile", "isolation_forest", "autoencoder", "vae"}};
  app.add_option("--data-dir", data_dir, "folder of CSV files with timestamp, value and label columns")->required();
  app.add_option("--match", match, "only files whose name contains this");
  app.add_option("--train-fraction", train_fraction, "head of each series used for training")
      ->check(CLI::Range(0.05, 0.95))
      ->capture_default_str();
  app.add_option("--window", window, "steps per window")->check(CLI::Range(2, 100000))->capture_default_str();
  app.add_option("--train-stride", train_stride, "steps between training windows")->check(CLI::PositiveNumber);
  adx::examples::add_detector_run_flags(app, runs);
  adx::AdaptiveThresholdOptions adaptive_options;
  int64_t adaptive_window = adaptive_options.window();
  double adaptive_percentile = adaptive_options.percentile(), adaptive_smoothing = adaptive_options.smoothing();
  double adaptive_max_rise = adaptive_options.max_rise(), adaptive_max_fall = adaptive_options.max_fall();
  app.add_option("--adaptive-window", adaptive_window, "adaptive threshold: recent scores it follows")
      ->capture_default_str();
  app.add_option("--adaptive-percentile", adaptive_percentile, "adaptive threshold: target percentile")
      ->capture_default_str();
  app.add_option("--adaptive-smoothing", adaptive_smoothing, "adaptive threshold: EMA weight per score")
      ->capture_default_str();
  app.add_option("--adaptive-max-rise", adaptive_max_rise, "adaptive threshold: largest rise, share of the initial")
      ->capture_default_str();
  app.add_option("--adaptive-max-fall", adaptive_max_fall, "adaptive threshold: largest fall, share of the initial")
      ->capture_default_str();
  app.add_option("--out", out_path, "Markdown file for the tables")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const int used_threads = adx::set_num_threads(static_cast<int>(runs.threads));
    adaptive_options.window(adaptive_window)
        .percentile(adaptive_percentile)
        .smoothing(adaptive_smoothing)
        .max_rise(adaptive_max_rise)
        .max_fall(adaptive_max_fall);
    adaptive_options.check("adaptive");
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(data_dir))
      if (entry.path().extension() == ".csv" && entry.path().filename().string().find(match) != std::string::npos)
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    ADX_CHECK_AS(adx::IoError, !files.empty(), "no CSV file{} in '{}'",
                 match.empty() ? "" : fmt::format(" whose name contains '{}'", match), data_dir);

    std::vector<std::string> methods;  // in the tables' column order: baselines, then detectors
    std::map<std::string, std::map<std::string, Figures>> results;  // series -> method -> figures
    std::map<std::string, double> seconds;                          // method -> fit + score, all series
    std::vector<std::string> labelled, unlabelled;
    auto note_method = [&](const std::string& m) {
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
    };

    for (const auto& file : files) {
      adx::SeriesCsvOptions csv;
      csv.timestamp_column = "timestamp";
      csv.label_column = "label";
      const auto loaded = adx::load_series_csv(file.string(), csv);
      const auto values = loaded.values;
      const int64_t steps = values.size(0);
      const auto train_steps = static_cast<int64_t>(static_cast<double>(steps) * train_fraction);
      const std::string series = file.stem().string();
      const auto test_labels = ints_of(loaded.labels.slice(0, train_steps));
      const bool has_anomalies = std::find(test_labels.begin(), test_labels.end(), 1) != test_labels.end();
      (has_anomalies ? labelled : unlabelled).push_back(series);
      std::cout << fmt::format("{}: {} steps, training on {}, {} labelled test steps\n", series, steps, train_steps,
                               std::count(test_labels.begin(), test_labels.end(), 1));

      auto record = [&](const std::string& method, const std::vector<double>& per_step, double threshold,
                        double spent) {
        note_method(method);
        Figures f;
        if (has_anomalies) {
          const auto report = adx::metrics::series_report(test_labels, per_step, NAN);
          f.auroc = report.auroc;
          f.vus_roc = report.vus.roc;
        }
        if (!std::isnan(threshold)) {
          const auto fixed = fixed_alarms(per_step, threshold);
          const auto adaptive = adaptive_alarms(per_step, threshold, adaptive_options);
          f.false_alarms = false_alarm_rate(test_labels, fixed);
          f.caught = windows_caught(test_labels, fixed);
          f.adaptive_false_alarms = false_alarm_rate(test_labels, adaptive);
          f.adaptive_caught = windows_caught(test_labels, adaptive);
        }
        results[series][method] = f;
        seconds[method] += spent;
        std::cout << fmt::format(
            "  {:<30} AUROC {}  VUS-ROC {}  false alarms {} (adaptive {})  windows caught {} (adaptive {})  "
            "({:.1f} s)\n",
            method, cell(f.auroc), cell(f.vus_roc), cell(100 * f.false_alarms, "{:.1f}%"),
            cell(100 * f.adaptive_false_alarms, "{:.1f}%"), cell(f.caught, "{:.2f}"), cell(f.adaptive_caught, "{:.2f}"),
            spent);
      };

      const auto t_base = Clock::now();
      auto baselines = adx::examples::series_baselines(values, train_steps, window);
      const double base_s = seconds_since(t_base) / static_cast<double>(baselines.size());
      for (const auto& b : baselines) record(b.name, b.per_step, NAN, base_s);

      const auto train = adx::Data::series(values.slice(0, 0, train_steps), {window, train_stride});
      // The threshold is calibrated on the tail of the head: at least two windows long, so that a short
      // head (NAB's 15% of a 4,032-step series is 604 steps) still has one.
      const double validation_fraction =
          std::max(0.1, 2.0 * static_cast<double>(window) / static_cast<double>(train_steps));
      for (const auto& name : runs.detectors) {
        try {
          adx::OptionMap preset;
          if (name == "anomaly_transformer") preset = adx::to_option_map(adx::AnomalyTransformerOptions::small_preset());
          preset["runtime.validation_fraction"] = fmt::format("{:.4f}", std::min(0.5, validation_fraction));
          const auto options = adx::examples::options_for(name, runs, used_threads, preset);
          const auto t0 = Clock::now();
          auto detector = adx::make_detector(name, options);
          detector->fit(train);
          // The Anomaly Transformer's criterion is relative to its window: non-overlapping windows.
          const int64_t stride = name == "anomaly_transformer" ? window : 1;
          const auto scores = detector->score(adx::Data::series(values.slice(0, train_steps), {window, stride}));
          record(name, doubles_of(scores.per_step), detector->calibrated() ? detector->threshold() : NAN,
                 seconds_since(t0));
        } catch (const adx::Error& e) {
          std::cout << fmt::format("  {}: skipped: {}\n", name, e.what());
          note_method(name);
        }
      }
    }

    // ---- tables -----------------------------------------------------------------------------
    std::string report = fmt::format(
        "Series from {}: training on the first {:.0f}% of each, windows of {} steps, {} threads.\n\n",
        data_dir, 100 * train_fraction, window, used_threads);
    auto table = [&](const std::string& title, const std::vector<std::string>& rows, auto value, const char* format) {
      if (rows.empty()) return;
      report += fmt::format("### {}\n\n| series |", title);
      for (const auto& m : methods) report += " " + m + " |";
      report += "\n|---|";
      for (size_t i = 0; i < methods.size(); ++i) report += "---|";
      report += "\n";
      std::map<std::string, std::pair<double, int>> sums;
      for (const auto& s : rows) {
        report += "| " + s + " |";
        for (const auto& m : methods) {
          const auto it = results[s].find(m);
          const double v = it == results[s].end() ? NAN : value(it->second);
          report += " " + cell(v, format) + " |";
          if (!std::isnan(v)) sums[m].first += v, sums[m].second += 1;
        }
        report += "\n";
      }
      report += "| **mean** |";
      for (const auto& m : methods)
        report += " " + cell(sums[m].second > 0 ? sums[m].first / sums[m].second : NAN, format) + " |";
      report += "\n\n";
    };
    table("Point AUROC", labelled, [](const Figures& f) { return f.auroc; }, "{:.3f}");
    table("VUS-ROC", labelled, [](const Figures& f) { return f.vus_roc; }, "{:.3f}");
    auto all = labelled;
    all.insert(all.end(), unlabelled.begin(), unlabelled.end());
    table("False alarms: % of normal test steps above the detector's own threshold", all,
          [](const Figures& f) { return 100 * f.false_alarms; }, "{:.1f}");
    table("Labelled anomaly windows with at least one step above the detector's own threshold (share)", labelled,
          [](const Figures& f) { return f.caught; }, "{:.2f}");
    table(fmt::format("False alarms under the adaptive threshold (window {}, percentile {}, smoothing {}, "
                      "max rise {}, max fall {}; started at the detector's threshold, fed the test scores in "
                      "order): % of normal test steps",
                      adaptive_window, adaptive_percentile, adaptive_smoothing, adaptive_max_rise, adaptive_max_fall),
          all, [](const Figures& f) { return 100 * f.adaptive_false_alarms; }, "{:.1f}");
    table("Labelled anomaly windows caught under the adaptive threshold (share)", labelled,
          [](const Figures& f) { return f.adaptive_caught; }, "{:.2f}");
    report += adx::examples::seconds_table(methods, seconds, "fit + score s, all series");
    adx::examples::publish(report, out_path);
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
