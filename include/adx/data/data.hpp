#pragma once
// Typed inputs. Every modality carries the tensor `x`; images may carry masks.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

enum class Modality { Tabular, Image };

const char* modality_name(Modality modality);

/// One input batch: tabular N x D, or images N x C x H x W (with optional N x 1 x H x W masks).
struct Data {
  at::Tensor x;
  at::Tensor masks;
  Modality modality = Modality::Tabular;

  static Data tabular(at::Tensor x);
  static Data images(at::Tensor x, at::Tensor masks = {});

  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  /// Shape of one item (x's shape without the batch dimension).
  std::vector<int64_t> item_shape() const;
  /// Rows [begin, end) as a new Data sharing storage.
  Data slice(int64_t begin, int64_t end) const;
  /// Items at the given indices.
  Data select(const at::Tensor& indices) const;
};

/// Checks dtype (floating), rank for the modality, non-empty, and finite values.
/// Throws ShapeError / ValueError naming `what` and the offending values.
void validate(const Data& data, const char* what);

/// Throws ValueError if `x` holds NaN or Inf, with the count and the first bad item.
void check_finite(const at::Tensor& x, const char* what);

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace adx
