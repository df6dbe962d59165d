#pragma once
// The detector registry: make_detector("autoencoder", options) and adx::load(path).
// Built-in detectors sit in a table generated from the folders of src/detectors/ that calls each
// detector's entry by name (no static registration objects, which a static library may drop); user
// detectors are added with register_detector.
#include <adx/core/options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace adx {

class Detector;

using DetectorFactory = std::function<std::unique_ptr<Detector>(const OptionMap& options)>;

struct DetectorInfo {
  std::string name;
  std::string description;
};

/// Adds (or replaces) a detector type. Thread-safe.
void register_detector(const std::string& name, DetectorFactory factory, const std::string& description = "");

/// Creates a detector by name; an unknown name is OptionError listing the known ones,
/// and an unknown option key is OptionError listing the valid keys.
std::unique_ptr<Detector> make_detector(const std::string& name, const OptionMap& options = {});

/// All known detector names, sorted.
std::vector<std::string> detector_names();
std::vector<DetectorInfo> detector_infos();

/// Loads any saved detector. A non-empty `device` overrides the saved device.
std::unique_ptr<Detector> load(const std::string& path, const std::string& device = "");

/// Factory helper for a detector type `T` constructible from its options struct.
template <class T>
DetectorFactory factory_for() {
  return [](const OptionMap& map) -> std::unique_ptr<Detector> {
    return std::make_unique<T>(from_option_map<typename T::Options>(map));
  };
}

}  // namespace adx
