#pragma once
// The per-row values a deployed detector watches for input drift, for every input kind.
#include <adx/data/data.hpp>

#include <string>
#include <vector>

namespace adx {

struct DriftFeatures {
  at::Tensor values;               ///< rows x features, float32 on the CPU
  std::vector<std::string> names;  ///< one per column of `values`
};

/// Tabular rows, series steps and graph nodes give their own columns ("x0", "x1", ...);
/// images and video frames give each channel's mean and standard deviation
/// ("channel0_mean", "channel0_std", ...), which catch lighting, exposure and contrast shifts.
DriftFeatures drift_features(const Data& data);

/// At most `max_rows` rows of `values`, evenly spaced (deterministic, order kept).
at::Tensor evenly_spaced_rows(const at::Tensor& values, int64_t max_rows);

}  // namespace adx
