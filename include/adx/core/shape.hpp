#pragma once
// Tensor shapes written as text, for error messages.
#include <cstdint>
#include <string>
#include <vector>

namespace adx {

/// "[N x C x H x W]", e.g. "[2 x 3]" for {2, 3}.
inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace adx
