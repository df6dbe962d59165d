#pragma once
// File loaders. Each returns a CPU tensor; failures are adx::IoError naming
// the file and what was wrong with it.
#include <ATen/core/Tensor.h>

#include <string>

namespace adx {

/// Reads an IDX file (the MNIST family), plain or gzip-compressed. Returns the
/// stored dtype (uint8 for images and labels) and shape, e.g. N x 28 x 28.
at::Tensor load_idx(const std::string& path);

struct CsvOptions {
  char delimiter = ',';
  /// -1: detect (a first row with any non-numeric cell is a header), 0: none, 1: present.
  int header = -1;
};

/// Reads a numeric CSV file into an N x D float32 tensor. A cell that is not a
/// number, or a row of the wrong length, is an error naming line and column.
at::Tensor load_csv(const std::string& path, const CsvOptions& options = {});

/// Reads a .npy file (float32, float64 or uint8, C order, little endian).
at::Tensor load_npy(const std::string& path);

/// Images and labels of one split of an MNIST-family data set.
struct LabeledImages {
  at::Tensor images;  ///< N x 1 x H x W float32 in [0, 1]
  at::Tensor labels;  ///< N int64
};

/// Loads `train` or `t10k` from a folder in the MNIST layout
/// (`<split>-images-idx3-ubyte[.gz]`, `<split>-labels-idx1-ubyte[.gz]`).
LabeledImages load_mnist_split(const std::string& folder, const std::string& split);

/// Where Debian's dataset-fashion-mnist package puts Fashion-MNIST.
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Writes a .npy file (float32, float64 or uint8) atomically.
void save_npy(const std::string& path, const at::Tensor& tensor);

}  // namespace adx
