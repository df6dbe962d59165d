#pragma once
// How adx's own detectors enter the registry. Each detector's source (src/detectors/<name>/<name>.cpp)
// defines its entry with ADX_BUILTIN_DETECTOR; the table that collects them is generated from the folders
// of src/detectors/ at configure time (cmake/detector_folders.cmake), so the registry includes no
// detector's header and touching one rebuilds only that detector. User detectors use register_detector.
#include <adx/detectors/registry.hpp>

#include <string>
#include <vector>

namespace adx {

struct BuiltinDetector {
  std::string name;
  DetectorFactory factory;
  std::string description;
};

/// Every built-in detector's entry (generated).
std::vector<BuiltinDetector> builtin_detectors();

}  // namespace adx

/// Defines the registry entry of the detector in folder `name` (also its registry name and type()); used
/// inside namespace adx.
#define ADX_BUILTIN_DETECTOR(name, factory, description) \
  BuiltinDetector builtin_detector_##name() { return {#name, factory, description}; }
