#pragma once
// The examples' --set detector:key=value overrides, per detector name.
#include <adx/core/error.hpp>
#include <adx/core/options.hpp>
#include <adx/detectors/detector.hpp>
#include <adx/detectors/registry.hpp>

#include <map>
#include <string>
#include <vector>

namespace adx::examples {

inline std::map<std::string, adx::OptionMap> parse_detector_sets(const std::vector<std::string>& items) {
  std::map<std::string, adx::OptionMap> overrides;
  for (const auto& item : items) {
    const auto colon = item.find(':'), equals = item.find('=');
    if (colon == std::string::npos || equals == std::string::npos || equals < colon)
      throw adx::OptionError("--set takes detector:key=value, got '" + item + "'");
    overrides[item.substr(0, colon)][item.substr(colon + 1, equals - colon - 1)] = item.substr(equals + 1);
  }
  return overrides;
}

/// Whether detector `name` trains by epochs (has a `train.epochs` option), so that an --epochs override
/// applies to it; asked of the detector, so a new detector needs no list.
inline bool trains_by_epochs(const std::string& name) {
  return adx::make_detector(name)->options_map().count("train.epochs") > 0;
}

}  // namespace adx::examples
