#pragma once
// The synthetic industrial data set the inspection benchmarks share, written once per size.
#include <adx/base.hpp>

#include <filesystem>
#include <string>

namespace adx::examples {

/// The synthetic industrial set for `size` px with `train_images` training images per category (20 good
/// and 4 defective images per defect type to test) under `work`, written on first use; returns its root.
inline std::string synthetic_industrial_root(const std::string& work, int64_t size, int64_t train_images) {
  const auto root = work + "/synthetic_" + std::to_string(size) + "_" + std::to_string(train_images);
  if (!std::filesystem::exists(root + "/grain")) {
    SyntheticOptions o;
    o.image_size = size;
    o.train_images = train_images;
    o.good_test_images = 20;
    o.defects_per_type = 4;
    write_synthetic_industrial(root, o);
  }
  return root;
}

}  // namespace adx::examples
