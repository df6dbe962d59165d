#pragma once
// The adx model file: one file per trained detector.
//
//   "ADXMODEL"  magic (8 bytes)
//   u32         format version
//   u64         body length, then the body:
//     str       type tag (the registry name)
//     u32 n, then n x (str key, str value)       options
//     u32 k, then k x (str key, str value)       metadata (format 2 on; e.g. "input_kind")
//     u32 m, then m x (str name, u8 dtype, u8 rank, i64 dims[rank], u64 nbytes, bytes)
//   u64         FNV-1a checksum of the body
//
// Strings are u32 length + bytes; numbers little endian. Writes go to a temp
// file that is renamed into place, so a reader never sees a partial model.
#include <adx/core/options.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace adx {

using TensorMap = std::map<std::string, at::Tensor>;

/// Format 2 added the metadata map; format 1 files are still read.
inline constexpr uint32_t kModelFormatVersion = 2;

struct ModelFile {
  std::string type;
  uint32_t format_version = kModelFormatVersion;
  OptionMap options;
  std::map<std::string, std::string> metadata;  ///< facts about the fit, such as the input kind's name
  TensorMap tensors;  ///< fitted preprocessing, threshold, weights, buffers, memory banks
};

/// What a model file records about how its detector was made (metadata keys "model_version",
/// "created_at", "adx_version", "training_items", "training_shape", "training_hash"); `adx info` prints it.
struct ModelInfo {
  std::string version;      ///< the deployment's name for this model (Detector::set_version)
  std::string created_at;   ///< UTC time of fit, ISO 8601
  std::string adx_version;  ///< the adx that fitted it
  int64_t training_items = 0;            ///< items in the training data (before any hold-out)
  std::vector<int64_t> training_shape;   ///< shape of the training values
  std::string training_hash;             ///< FNV-1a of the training values as float32, 16 hex digits

  void to_metadata(std::map<std::string, std::string>& metadata) const;
  /// Files written before these records existed give an empty ModelInfo.
  static ModelInfo from_metadata(const std::map<std::string, std::string>& metadata);
};

/// The version of this adx ("0.1.0").
std::string adx_version();

/// Writes atomically (temp file + rename). Tensors are stored from the CPU.
void write_model_file(const std::string& path, const ModelFile& model);

/// Reads and verifies a model file; foreign, truncated, corrupt or newer files are IoError.
ModelFile read_model_file(const std::string& path);

}  // namespace adx
