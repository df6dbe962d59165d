#include <adx/core/runtime.hpp>
#include <adx/detectors/detector.hpp>
#include <adx/detectors/registry.hpp>
#include <adx/io/model_file.hpp>
#include "detectors/builtin_detector.hpp"

#include <map>
#include <mutex>

namespace adx {
namespace {

struct Entry {
  DetectorFactory factory;
  std::string description;
};

// Every built-in detector, from the table generated out of the folders of src/detectors/.
std::map<std::string, Entry> builtin_table() {
  std::map<std::string, Entry> table;
  for (auto& detector : builtin_detectors())
    table[detector.name] = {std::move(detector.factory), std::move(detector.description)};
  return table;
}

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t = builtin_table();
  return t;
}

}  // namespace

void register_detector(const std::string& name, DetectorFactory factory, const std::string& description) {
  ADX_CHECK_AS(OptionError, !name.empty(), "detector name must not be empty");
  ADX_CHECK_AS(OptionError, factory != nullptr, "detector '{}' registered without a factory", name);
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[name] = {std::move(factory), description};
}

std::vector<std::string> detector_names() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> names;
  for (const auto& kv : table()) names.push_back(kv.first);
  return names;
}

std::vector<DetectorInfo> detector_infos() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<DetectorInfo> infos;
  for (const auto& kv : table()) infos.push_back({kv.first, kv.second.description});
  return infos;
}

std::unique_ptr<Detector> make_detector(const std::string& name, const OptionMap& options) {
  DetectorFactory factory;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(name);
    if (it == table().end()) {
      std::string known;
      for (const auto& kv : table()) known += (known.empty() ? "" : ", ") + kv.first;
      throw OptionError(fmt::format("unknown detector '{}'; known detectors: {}", name, known));
    }
    factory = it->second.factory;
  }
  auto detector = factory(options);
  ADX_CHECK_AS(OptionError, detector && detector->type() == name,
               "factory for '{}' made a detector of type '{}'", name, detector ? detector->type() : "null");
  detector->validate_options();
  return detector;
}

std::unique_ptr<Detector> load(const std::string& path, const std::string& device) {
  // Whatever a file makes LibTorch or the standard library throw is reported as an
  // IoError naming the file: a caller handles one error type for a bad model file.
  try {
    ModelFile file = read_model_file(path);
    if (!device.empty()) file.options["runtime.device"] = device;
    auto detector = make_detector(file.type, file.options);
    detector->restore(file);
    return detector;
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw IoError(fmt::format("model file '{}' cannot be loaded: {}", path, e.what()));
  } catch (const std::exception& e) {
    throw IoError(fmt::format("model file '{}' cannot be loaded: {}", path, describe_exception(e)));
  }
}

}  // namespace adx
