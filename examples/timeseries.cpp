// Time-series anomaly detection end to end: trains every time-series detector on the
// head of a series, scores the rest step by step, prints a Markdown table of every
// metric (unadjusted beside point-adjusted) and writes a PNG of the series, the scores,
// the thresholds and the labels.
//
//   timeseries                                   generated series (seasonal, 4 channels)
//   timeseries --data cpu.csv --timestamp-column timestamp --label-column label \
//              --train-fraction 0.4 --interpolate
//   timeseries --write-demo-csv demo.csv         a one-channel, gappy, irregular CSV to try
//
// The baselines a careful user would try first (nearest training window, rolling z-score) are
// scored beside the detectors, without a threshold.
//
// Windows are --window steps (100, the Anomaly Transformer's). Training windows start
// every --train-stride steps; test windows every step, except for the Anomaly
// Transformer, which scores non-overlapping windows as its reference code does.
#include <adx/base.hpp>
#include <adx/detectors/anomaly_transformer/anomaly_transformer.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "common/detector_sets.hpp"
#include "common/series_alarms.hpp"
#include "common/series_baselines.hpp"
#include "common/series_plot.hpp"
#include "common/tensors.hpp"
#include "common/timing.hpp"

namespace {

using adx::examples::doubles_of;
using adx::examples::ints_of;

using adx::examples::Clock;
using adx::examples::seconds_since;



// One channel of monitoring data as it comes from real systems: samples every five
// minutes with jitter, stretches where the collector was down (rows missing), empty
// cells, a daily season, and labelled incidents.
void write_demo_csv(const std::string& path, uint64_t seed) {
  adx::SyntheticSeriesOptions o;
  o.length = 8000;
  o.channels = 1;
  o.period = 288;  // one day of 5-minute samples
  o.anomalies_per_kind = 1;
  o.train_fraction = 0.45;
  o.seed = seed;
  const auto series = adx::make_synthetic_series(o);
  const auto values = doubles_of(series.values.reshape({-1}));
  const auto labels = ints_of(series.labels);
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::ofstream out(path);
  out << "timestamp,value,label\n";
  double t = 1388534400.0;  // 2014-01-01 00:00:00 UTC
  for (size_t i = 0; i < values.size(); ++i) {
    t += 300.0 + std::floor(uniform(rng) * 20.0) - 10.0;
    if (i % 2000 == 1500) t += 3600.0 * 6;  // a six-hour outage
    const auto seconds = static_cast<int64_t>(t);
    const int64_t days = seconds / 86400, rest = seconds % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    const int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    const int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    const int64_t year = yoe + era * 400 + (month <= 2);
    out << fmt::format("{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d},", year, month, day, rest / 3600, rest / 60 % 60,
                       rest % 60);
    if (uniform(rng) > 0.005) out << fmt::format("{:.4f}", 50.0 + 10.0 * values[i]);  // else an empty cell
    out << "," << labels[i] << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time-series anomaly detection: every detector, every metric, and a plot."};
  std::string data_path, timestamp_column, label_column, out_dir = "timeseries_results", demo_csv,
      duplicate_timestamps = "error", backward_timestamps = "error";
  double train_fraction = 0.5, trend = 0.3, anomaly_ratio = 1.0;
  bool interpolate = false, paper_size = false;
  int64_t window = 100, train_stride = 1, epochs = 0, threads = 0, seed = 0, length = 12000, channels = 4;
  std::vector<std::string> detectors{"anomaly_transformer", "lstm_autoencoder", "tcn_autoencoder", "forecaster",
                                     "autoencoder", "vae", "matrix_profile", "isolation_forest"};
  std::vector<std::string> settings;
  app.add_option("--data", data_path, "CSV file of the series (default: a generated series)");
  app.add_option("--timestamp-column", timestamp_column, "CSV column of timestamps (numbers or ISO 8601)");
  app.add_option("--label-column", label_column, "CSV column of labels (0 = normal)");
  app.add_option("--train-fraction", train_fraction, "head of the series used for training")->check(CLI::Range(0.05, 0.95));
  app.add_flag("--interpolate", interpolate, "fill empty cells by linear interpolation instead of failing");
  app.add_option("--duplicate-timestamps", duplicate_timestamps, "rows repeating a timestamp: error, first, last or mean")
      ->capture_default_str();
  app.add_option("--backward-timestamps", backward_timestamps,
                 "a timestamp earlier than the one before: error, drop or sort")
      ->capture_default_str();
  app.add_option("--length", length, "generated series: steps")->check(CLI::PositiveNumber);
  app.add_option("--channels", channels, "generated series: channels")->check(CLI::PositiveNumber);
  app.add_option("--trend", trend, "generated series: typical drift of a channel over the series");
  app.add_option("--window", window, "steps per window")->check(CLI::Range(2, 100000));
  app.add_option("--train-stride", train_stride, "steps between training windows")->check(CLI::PositiveNumber);
  app.add_option("--detectors", detectors, "detectors to run")->delimiter(',');
  app.add_option("--epochs", epochs, "override every detector's training epochs");
  app.add_option("--set", settings, "detector:key=value option overrides (repeatable)");
  app.add_option("--anomaly-ratio", anomaly_ratio,
                 "Anomaly Transformer, the paper's protocol: percent of train + test energies above its threshold")
      ->check(CLI::Range(0.001, 99.0));
  app.add_flag("--paper-size", paper_size, "Anomaly Transformer at the paper's size (d_model 512, 8 heads, 3 layers)");
  app.add_option("--threads", threads, "threads (0 = all cores)");
  app.add_option("--seed", seed, "seed of the generator and of every detector");
  app.add_option("--out", out_dir, "folder for results.md and plot.png");
  app.add_option("--write-demo-csv", demo_csv, "write a one-channel, gappy, irregular demo CSV and exit");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!demo_csv.empty()) {
      write_demo_csv(demo_csv, static_cast<uint64_t>(seed));
      std::cout << "wrote " << demo_csv << " (columns timestamp, value, label)\n";
      return 0;
    }
    const int used_threads = adx::set_num_threads(static_cast<int>(threads));

    // ---- the series -------------------------------------------------------
    torch::Tensor values, labels, timestamps;
    int64_t train_steps = 0;
    std::string source;
    if (data_path.empty()) {
      adx::SyntheticSeriesOptions o;
      o.length = length;
      o.channels = channels;
      o.train_fraction = train_fraction;
      o.trend = trend;
      o.seed = static_cast<uint64_t>(seed);
      const auto generated = adx::make_synthetic_series(o);
      values = generated.values;
      labels = generated.labels;
      train_steps = generated.train_length;
      source = fmt::format("generated series: {} steps x {} channels, {} anomalies of 6 kinds", length, channels,
                           generated.anomalies.size());
    } else {
      adx::SeriesCsvOptions o;
      o.timestamp_column = timestamp_column;
      o.label_column = label_column;
      o.interpolate_gaps = interpolate;
      o.duplicate_timestamps = duplicate_timestamps;
      o.backward_timestamps = backward_timestamps;
      const auto loaded = adx::load_series_csv(data_path, o);
      values = loaded.values;
      labels = loaded.labels;
      timestamps = loaded.timestamps;
      train_steps = static_cast<int64_t>(static_cast<double>(values.size(0)) * train_fraction);
      source = fmt::format("{}: {} steps x {} channels ({}), {} gaps filled", data_path, values.size(0),
                           values.size(1), fmt::join(loaded.columns, ", "), loaded.filled_gaps);
    }
    const int64_t steps = values.size(0);
    ADX_CHECK_AS(adx::ValueError, train_steps > 2 * window && steps - train_steps >= window,
                 "{} steps with a training head of {} leave too little for windows of {}", steps, train_steps,
                 window);
    const auto train_values = values.slice(0, 0, train_steps);
    const auto test_values = values.slice(0, train_steps);
    const auto test_timestamps = timestamps.defined() ? timestamps.slice(0, train_steps) : torch::Tensor();
    const auto train = adx::Data::series(train_values, {window, train_stride},
                                         timestamps.defined() ? timestamps.slice(0, 0, train_steps) : torch::Tensor());
    std::vector<int> test_labels;
    if (labels.defined()) test_labels = ints_of(labels.slice(0, train_steps));
    const bool labelled = !test_labels.empty() && !adx::metrics::ranges_of(test_labels).empty();
    std::cout << source << "\ntraining on the first " << train_steps << " steps (" << train.size()
              << " windows of " << window << "), testing on " << steps - train_steps << " steps, " << used_threads
              << " threads\n\n";

    // ---- detectors --------------------------------------------------------
    std::vector<std::string> rows;
    std::vector<std::pair<std::string, adx::examples::ScoreTrack>> tracks;
    std::vector<std::string> timings;
    auto overrides = adx::examples::parse_detector_sets(settings);
    for (const auto& name : detectors) {
      // One detector that cannot run here (too short a head for its windows, a bad option or name) is
      // reported and the others go on.
      try {
      adx::OptionMap options;
      if (name == "anomaly_transformer" && !paper_size)
        options = adx::to_option_map(adx::AnomalyTransformerOptions::small_preset());
      options["runtime.seed"] = std::to_string(seed);
      options["runtime.threads"] = std::to_string(used_threads);
      if (epochs > 0 && adx::examples::trains_by_epochs(name)) options["train.epochs"] = std::to_string(epochs);
      for (const auto& [key, value] : overrides[name]) options[key] = value;
      auto detector = adx::make_detector(name, options);
      const auto t0 = Clock::now();
      detector->fit(train);
      const auto t1 = Clock::now();
      // The Anomaly Transformer's criterion is relative to its window: the reference
      // scores non-overlapping windows.
      const int64_t test_stride = name == "anomaly_transformer" ? window : 1;
      const auto test = adx::Data::series(test_values, {window, test_stride}, test_timestamps);
      const auto scores = detector->score(test);
      const double score_s = seconds_since(t1);
      const double fit_s = std::chrono::duration<double>(t1 - t0).count();
      const auto per_step = doubles_of(scores.per_step);
      timings.push_back(fmt::format("| {} | {:.1f} | {:.1f} | {:.0f} |", name, fit_s, score_s,
                                    static_cast<double>(per_step.size()) / score_s));
      if (name == "anomaly_transformer") {
        // Its scores are relative to a window, so the threshold is set on scores computed as the test
        // scores are: non-overlapping windows, here of the held-out tail of the training head (the steps
        // fit() held out), with the detector's own threshold policy.
        const auto at_options = adx::from_option_map<adx::AnomalyTransformerOptions>(options);
        const int64_t tail = static_cast<int64_t>(
            std::floor(static_cast<double>(train_steps) * at_options.runtime().validation_fraction()));
        if (tail >= window) {
          const auto tail_scores =
              detector->score(adx::Data::series(train_values.slice(0, train_steps - tail), {window, window}));
          detector->set_threshold(adx::fit_threshold(adx::judged_scores(tail_scores), at_options.threshold()));
        }
        // The paper's protocol: the (100 - r)th percentile of the training and test energies together (the
        // reference takes the training energies of every stride-1 window; here non-overlapping windows).
        const auto train_energies = adx::judged_scores(detector->score(adx::Data::series(train_values, {window, window})));
        const double paper_threshold =
            adx::anomaly_ratio_threshold(train_energies, adx::judged_scores(scores), anomaly_ratio);
        if (labelled)
          rows.push_back(adx::metrics::markdown_row(
              fmt::format("{} (paper's protocol: {}% of train + test energies)", name, anomaly_ratio),
              adx::metrics::series_report(test_labels, per_step, paper_threshold)));
        std::cout << fmt::format("{}: paper's protocol flags {} of {} test steps (threshold {:.4g})\n", name,
                                 (scores.per_step > paper_threshold).sum().item<int64_t>(), per_step.size(),
                                 paper_threshold);
      }
      // A detector whose held-out tail was too short to calibrate has no threshold: its threshold-free
      // figures are reported, the others print as –.
      const double threshold = detector->calibrated() ? detector->threshold() : NAN;
      const std::string label = detector->calibrated() ? name : name + " (no threshold)";
      if (labelled) rows.push_back(adx::metrics::markdown_row(label, adx::metrics::series_report(test_labels, per_step, threshold)));
      // Plot over the whole series: training steps unscored.
      adx::examples::ScoreTrack track;
      track.scores.assign(static_cast<size_t>(train_steps), NAN);
      track.scores.insert(track.scores.end(), per_step.begin(), per_step.end());
      track.threshold = threshold;
      tracks.emplace_back(name, track);
      if (std::isnan(threshold)) {
        std::cout << fmt::format("{}: fit {:.1f} s, score {:.1f} s; no threshold: the held-out tail was too short "
                                 "to calibrate one\n", name, fit_s, score_s);
      } else {
        // Also as a deployment would run it: ProductionDetector's adaptive threshold, fed the steps in order.
        const auto fixed = adx::examples::fixed_alarms(per_step, threshold);
        const auto adaptive = adx::examples::adaptive_alarms(per_step, threshold);
        const auto count = [](const std::vector<bool>& alarms) {
          return std::count(alarms.begin(), alarms.end(), true);
        };
        std::cout << fmt::format("{}: fit {:.1f} s, score {:.1f} s, {} of {} test steps above the threshold {:.4g} "
                                 "({} under the adaptive threshold)\n",
                                 name, fit_s, score_s, count(fixed), per_step.size(), threshold, count(adaptive));
        if (labelled)
          std::cout << fmt::format("{}: normal test steps flagged {:.1f}% (adaptive {:.1f}%), labelled anomalies "
                                   "with an alarm {:.2f} (adaptive {:.2f})\n",
                                   name, 100 * adx::examples::false_alarm_rate(test_labels, fixed),
                                   100 * adx::examples::false_alarm_rate(test_labels, adaptive),
                                   adx::examples::windows_caught(test_labels, fixed),
                                   adx::examples::windows_caught(test_labels, adaptive));
      }
      } catch (const adx::Error& e) {
        std::cout << fmt::format("{}: skipped: {}\n", name, e.what());
        std::string row = "| " + name + " (skipped: see the log) |";
        for (int cell = 0; cell < 12; ++cell) row += " – |";
        if (labelled) rows.push_back(row);
        timings.push_back(fmt::format("| {} | – | – | – |", name));
      }
    }

    // ---- the baselines a careful user tries first, with the same metrics ---------------------
    for (const auto& baseline : adx::examples::series_baselines(values, train_steps, window))
      if (labelled)
        rows.push_back(
            adx::metrics::markdown_row(baseline.name, adx::metrics::series_report(test_labels, baseline.per_step, NAN)));

    // ---- report -----------------------------------------------------------
    std::filesystem::create_directories(out_dir);
    std::string report = "## " + source + "\n\n";
    if (labelled) {
      report += "Thresholds: each detector's own, calibrated on the held-out tail of the training head (99th "
                "percentile of its per-step scores; the Anomaly Transformer's on non-overlapping windows, as it "
                "scores the test), and for the Anomaly Transformer also the paper's protocol (a percentile of "
                "the training and test energies together, which looks at the test scores). F1 is unadjusted; PA-F1 is point-adjusted at the same "
                "threshold; best F1 / best PA-F1 use the labels to pick the threshold (upper bounds).\n\n";
      report += adx::metrics::markdown_header() + "\n";
      for (const auto& r : rows) report += r + "\n";
    } else {
      report += "No labels: metrics need --label-column.\n";
    }
    report += "\n| detector | fit s | score s | scoring steps/s |\n|---|---|---|---|\n";
    for (const auto& t : timings) report += t + "\n";
    std::cout << "\n" << report;
    std::ofstream(out_dir + "/results.md") << report;

    adx::examples::SeriesPlot plot(1600, steps);
    for (int64_t c = 0; c < std::min<int64_t>(values.size(1), 4); ++c) plot.add_channel(doubles_of(values.select(1, c)));
    for (const auto& [name, track] : tracks) plot.add_scores(track);
    plot.write(out_dir + "/plot.png", labels.defined() ? ints_of(labels) : std::vector<int>{}, train_steps);
    std::cout << "\nwrote " << out_dir << "/results.md and " << out_dir
              << "/plot.png (panels: up to 4 channels, then one score track per detector in the order above; "
                 "red: labelled anomalies and thresholds, grey: training head)\n";
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
