#pragma once
// Running a Python reference from a benchmark: start it, collect its JSON
// lines, and keep the fastest of repeated runs.
#include <adx/core/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

// Where the Python references live; CMake points it at examples/benchmarks.
#ifndef ADX_BENCHMARK_DIR
#define ADX_BENCHMARK_DIR "."
#endif

namespace adx::examples {

struct Timing {
  double train = 1e30, score = 1e30, auroc = 0;
  void keep_best(double train_s, double score_s, double auroc_value) {
    train = std::min(train, train_s);
    score = std::min(score, score_s);
    auroc = auroc_value;
  }
};

inline double json_number(const std::string& line, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("\"" + key + "\": (NaN|[-0-9.eE]+)")))
    throw Error("reference output lacks '" + key + "': " + line);
  return std::stod(m[1]);
}

/// Runs `command`, returns its lines that carry a "mode" (one JSON object per run).
inline std::vector<std::string> run_reference(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw Error("cannot start the Python reference: " + command);
  char buffer[4096];
  std::string output;
  while (fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  if (pclose(pipe) != 0) throw Error("the Python reference failed (is python3-torch installed?):\n" + output);
  std::vector<std::string> runs;
  std::stringstream lines(output);
  std::string line;
  while (std::getline(lines, line))
    if (line.find("\"mode\"") != std::string::npos) runs.push_back(line);
  return runs;
}

/// Prints adx's timings and each Python run's, then adx's speed-up against each Python run.
inline void print_comparison(const Timing& adx_timing, const std::vector<std::pair<std::string, Timing>>& python) {
  size_t width = 10;
  for (const auto& [name, t] : python) width = std::max(width, name.size() + 8);
  std::cout << fmt::format("{:<{}} {:>9} {:>9} {:>8}\n", "", width, "train s", "score s", "AUROC");
  auto row = [&](const std::string& name, const Timing& t) {
    std::cout << fmt::format("{:<{}} {:9.3f} {:9.4f} {:8.4f}\n", name, width, t.train, t.score, t.auroc);
  };
  row("adx (C++)", adx_timing);
  for (const auto& [name, t] : python) row("python, " + name, t);
  for (const auto& [name, t] : python)
    std::cout << fmt::format("speed-up vs {:<{}} train {:.2f}x, score {:.2f}x\n", name + ":", width, t.train / adx_timing.train,
                             t.score / adx_timing.score);
}

}  // namespace adx::examples
