#pragma once
// A synthetic industrial inspection data set in MVTec AD layout (read it back with
// formats/images.hpp's load_mvtec_category), for examples, benchmarks and tests.
#include <cstdint>
#include <string>
#include <vector>

namespace adx {

/// Options of the synthetic industrial data set.
struct SyntheticOptions {
  int64_t image_size = 256;
  int64_t train_images = 200;
  int64_t good_test_images = 20;
  int64_t defects_per_type = 8;  ///< test images per defect type
  uint64_t seed = 0;
};

/// Writes a synthetic industrial data set in MVTec layout under `root`, one
/// folder per category: textures (`weave`, `grain`, `tiles`) and objects
/// (`washer`, `plate`), with defects `scratch`, `spot`, `hole`, `crack` and
/// `stain`, each test image with its ground-truth mask. Returns the category names.
std::vector<std::string> write_synthetic_industrial(const std::string& root, const SyntheticOptions& options = {});

}  // namespace adx
