// Time-series benchmark.
//
// Speed: adx's Anomaly Transformer against the same model in Python/PyTorch
// (at_reference.py, after the authors' code), timed in one run on random windows:
// training windows/s (one epoch, batch 64, Adam, the two-phase minimax step) and
// scoring steps/s (the anomaly criterion on non-overlapping windows).
//
//   series_benchmark [--windows 2048] [--size small|paper] [--threads 2] [--repeats 2]
//
// Memory: scores a long series and reports the peak resident set size, to show that
// per-step scores are summed chunk by chunk instead of holding every window's output.
//
//   series_benchmark --memory-steps 1000000 --memory-detector autoencoder --stride 1
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

int memory_run(int64_t steps, const std::string& detector_name, int64_t stride, int64_t window, int64_t threads) {
  adx::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  const int64_t channels = 4;
  const auto train = torch::randn({5000, channels});
  adx::OptionMap options;
  if (detector_name == "anomaly_transformer") options = adx::to_option_map(adx::AnomalyTransformerOptions::small_preset());
  options["train.epochs"] = "1";
  options["runtime.threads"] = std::to_string(threads);
  auto detector = adx::make_detector(detector_name, options);
  detector->fit(adx::Data::series(train, {window, 4}));
  const auto series = torch::randn({steps, channels});
  const auto data = adx::Data::series(series, {window, stride});
  const double before = peak_rss_mib();
  const auto t0 = Clock::now();
  const auto scores = detector->score(data);
  const double score_s = seconds_since(t0);
  const double after = peak_rss_mib();
  const double all_outputs_mib = static_cast<double>(data.size()) * static_cast<double>(window) * 4.0 / 1048576.0;
  std::cout << fmt::format(
      "{}: {} steps x {} channels, {} windows of {} (stride {}), scored in {:.1f} s ({:.0f} steps/s)\n"
      "peak RSS before scoring {:.0f} MiB, after {:.0f} MiB (+{:.0f} MiB); the series itself is {:.0f} MiB, "
      "every window's per-step output held at once would be {:.0f} MiB\n",
      detector_name, steps, channels, data.size(), window, stride, score_s, static_cast<double>(steps) / score_s,
      before, after, after - before, static_cast<double>(steps * channels) * 4.0 / 1048576.0, all_outputs_mib);
  return scores.per_step.size(0) == steps ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Anomaly Transformer speed against Python, and scoring memory on a long series."};
  int64_t windows = 2048, threads = 2, repeats = 2, score_windows = 2000, memory_steps = 0, stride = 0;
  int64_t window = 100;
  std::string size = "small", python = "/usr/bin/python3", memory_detector = "autoencoder";
  app.add_option("--windows", windows, "training windows (one epoch)");
  app.add_option("--score-windows", score_windows, "non-overlapping windows scored");
  app.add_option("--size", size, "small (d_model 64, 4 heads, 2 layers) or paper (512, 8, 3)");
  app.add_option("--threads", threads, "threads on both sides");
  app.add_option("--repeats", repeats, "runs of each side, alternating; the fastest counts");
  app.add_option("--python", python, "Python interpreter with torch");
  app.add_option("--memory-steps", memory_steps, "memory mode: steps of the scored series");
  app.add_option("--memory-detector", memory_detector, "memory mode: detector");
  app.add_option("--stride", stride, "memory mode: window stride (0 = window)");
  app.add_option("--window", window, "steps per window");
  CLI11_PARSE(app, argc, argv);
  try {
    if (memory_steps > 0) return memory_run(memory_steps, memory_detector, stride > 0 ? stride : window, window, threads);

    const bool paper = size == "paper";
    ADX_CHECK_AS(adx::OptionError, paper || size == "small", "--size is small or paper, got '{}'", size);
    const int64_t d_model = paper ? 512 : 64, heads = paper ? 8 : 4, layers = paper ? 3 : 2, d_ff = d_model;
    const int64_t channels = 4, batch = 64;
    adx::set_num_threads(static_cast<int>(threads));
    adx::OptionMap options{{"d_model", std::to_string(d_model)},
                           {"heads", std::to_string(heads)},
                           {"layers", std::to_string(layers)},
                           {"d_ff", std::to_string(d_ff)},
                           {"score_chunk", std::to_string(batch)},
                           {"train.epochs", "1"},
                           {"train.batch_size", std::to_string(batch)},
                           {"train.lr", "0.0001"},
                           {"train.lr_schedule", "constant"},
                           {"train.patience", "0"},
                           {"runtime.validation_fraction", "0"},
                           {"runtime.score_batch_size", "4096"},
                           {"runtime.threads", std::to_string(threads)}};
    std::cout << fmt::format(
        "Anomaly Transformer, {} size (d_model {}, {} heads, {} layers), window {}, {} channels, batch {}, "
        "{} thread(s), {} repeat(s)\n",
        size, d_model, heads, layers, window, channels, batch, threads, repeats);
    const std::string command = fmt::format(
        "{} {}/at_reference.py --windows {} --window {} --channels {} --d-model {} --heads {} --layers {} "
        "--d-ff {} --batch {} --score-windows {} --threads {}",
        python, ADX_BENCHMARK_DIR, windows, window, channels, d_model, heads, layers, d_ff, batch, score_windows,
        threads);
    double adx_train = 1e30, adx_score = 1e30;
    std::map<std::string, std::pair<double, double>> py;  // mode -> best train s, score s
    torch::manual_seed(0);
    const auto train_series = torch::randn({windows + window - 1, channels});
    const auto test_series = torch::randn({score_windows * window, channels});
    for (int64_t r = 0; r < repeats; ++r) {
      for (const auto& line : adx::examples::run_reference(command)) {
        const std::string mode = line.find("\"reference\"") != std::string::npos ? "reference"
                                 : line.find("\"fused\"") != std::string::npos   ? "same algebra as adx"
                                                                                  : "tensor";
        auto& best = py.try_emplace(mode, 1e30, 1e30).first->second;
        best.first = std::min(best.first, adx::examples::json_number(line, "train_s"));
        best.second = std::min(best.second, adx::examples::json_number(line, "score_s"));
      }
      auto detector = adx::make_detector("anomaly_transformer", options);
      auto t0 = Clock::now();
      detector->fit(adx::Data::series(train_series, {window, 1}));
      adx_train = std::min(adx_train, seconds_since(t0));
      t0 = Clock::now();
      detector->score(adx::Data::series(test_series, {window, window}));
      adx_score = std::min(adx_score, seconds_since(t0));
    }
    const double steps = static_cast<double>(score_windows * window);
    std::cout << fmt::format("\n| side | training windows/s | scoring steps/s |\n|---|---|---|\n");
    std::cout << fmt::format("| adx | {:.0f} | {:.0f} |\n", static_cast<double>(windows) / adx_train, steps / adx_score);
    for (const auto& [mode, best] : py)
      std::cout << fmt::format("| Python ({}) | {:.0f} | {:.0f} |\n", mode, static_cast<double>(windows) / best.first,
                               steps / best.second);
    std::cout << "\n";
    for (const auto& [mode, best] : py)
      std::cout << fmt::format("adx against Python ({}): training {:.2f}x, scoring {:.2f}x\n", mode,
                               best.first / adx_train, best.second / adx_score);
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
