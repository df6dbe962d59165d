#pragma once
// What the real-data benchmark programs share: the flags that choose and configure the detectors, and
// the options each detector gets from them.
#include <adx/base.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include <map>
#include <string>
#include <vector>

#include "detector_sets.hpp"

namespace adx::examples {

struct DetectorRuns {
  std::vector<std::string> detectors;
  std::vector<std::string> settings;  ///< --set detector:key=value
  int64_t threads = 0, seed = 0, epochs = 0;
  std::map<std::string, adx::OptionMap> overrides;  ///< parsed from settings by options_for
};

/// Adds --detectors (defaulting to `runs.detectors`), --set, --threads, --seed and --epochs.
inline void add_detector_run_flags(CLI::App& app, DetectorRuns& runs) {
  app.add_option("--detectors", runs.detectors, "detectors to run")->delimiter(',')->capture_default_str();
  app.add_option("--set", runs.settings, "detector:key=value option overrides (repeatable)");
  app.add_option("--threads", runs.threads, "threads (0 = all cores)");
  app.add_option("--seed", runs.seed, "seed of every detector");
  app.add_option("--epochs", runs.epochs, "override every trained detector's epochs");
}

/// Options of detector `name`: the seed, `used_threads`, --epochs where the detector trains by epochs,
/// then its --set overrides.
inline adx::OptionMap options_for(const std::string& name, DetectorRuns& runs, int used_threads,
                                  adx::OptionMap options = {}) {
  if (runs.overrides.empty() && !runs.settings.empty()) runs.overrides = parse_detector_sets(runs.settings);
  options["runtime.seed"] = std::to_string(runs.seed);
  options["runtime.threads"] = std::to_string(used_threads);
  if (runs.epochs > 0 && trains_by_epochs(name))
    options["train.epochs"] = std::to_string(runs.epochs);
  if (auto it = runs.overrides.find(name); it != runs.overrides.end())
    for (const auto& [key, value] : it->second) options[key] = value;
  return options;
}

/// A table of each method's total seconds, under `heading` ("fit + score s, all series").
inline std::string seconds_table(const std::vector<std::string>& methods, const std::map<std::string, double>& seconds,
                                 const std::string& heading) {
  std::string table = "| method | " + heading + " |\n|---|---|\n";
  for (const auto& m : methods)
    table += fmt::format("| {} | {:.1f} |\n", m, seconds.count(m) ? seconds.at(m) : 0.0);
  return table;
}

/// Prints the report and writes it to `path`.
inline void publish(const std::string& report, const std::string& path) {
  std::cout << "\n" << report;
  std::ofstream(path) << report;
  std::cout << "wrote " << path << "\n";
}

}  // namespace adx::examples
