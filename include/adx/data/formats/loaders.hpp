#pragma once
// File loaders. Each returns a CPU tensor; failures are adx::IoError naming
// the file and what was wrong with it.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

/// Reads an IDX file (the MNIST family), plain or gzip-compressed. Returns the
/// stored dtype (uint8 for images and labels) and shape, e.g. N x 28 x 28.
at::Tensor load_idx(const std::string& path);

struct CsvOptions {
  char delimiter = ',';
  /// -1: detect (a first row with any non-numeric cell is a header), 0: none, 1: present.
  int header = -1;
};

/// A numeric CSV table and the names in its header row.
struct CsvTable {
  at::Tensor values;                 ///< N x D float32
  std::vector<std::string> columns;  ///< D names, or empty when the file has no header row
};

/// Reads a numeric CSV file into an N x D float32 tensor. A cell that is not a
/// number, or a row of the wrong length, is an error naming line and column.
at::Tensor load_csv(const std::string& path, const CsvOptions& options = {});
/// load_csv, keeping the header's column names.
CsvTable load_csv_table(const std::string& path, const CsvOptions& options = {});

/// A numeric array, by the file's name: NPY (.npy), IDX (the MNIST family: "-ubyte" or ".idx" in the
/// name), else CSV read with `csv` (its header's names go to `columns` when given).
at::Tensor load_array(const std::string& path, const CsvOptions& csv = {}, std::vector<std::string>* columns = nullptr);
/// Whether load_array reads `path` as NPY or IDX rather than as CSV.
bool is_binary_array_path(const std::string& path);

/// How load_series_csv reads a series table with a header row.
struct SeriesCsvOptions {
  char delimiter = ',';
  /// Column of timestamps (numbers, or ISO 8601 date-times read as UTC seconds); empty = none.
  std::string timestamp_column;
  /// Column of labels (0 = normal, anything else = anomaly); empty = none.
  std::string label_column;
  /// Value columns; empty = every column but the timestamp and label columns.
  std::vector<std::string> value_columns;
  /// Fill empty, NaN or NA cells by linear interpolation in time (the nearest value at the
  /// ends); false makes them an error naming row and column.
  bool interpolate_gaps = false;
  /// Rows that repeat the previous row's timestamp: "error", "first" (keep the first of them), "last",
  /// or "mean" (one row: the mean of their values, gaps left out; labelled anomalous if any of them is).
  std::string duplicate_timestamps = "error";
  /// A timestamp earlier than the latest before it (a clock set back): "error", "drop" (rows dropped
  /// until time passes the latest timestamp again), or "sort" (rows put in time order, stably).
  /// Repeats are then handled by duplicate_timestamps.
  std::string backward_timestamps = "error";
};

/// A multivariate series T x D read from a file.
struct LoadedSeries {
  at::Tensor values;      ///< T x D float32
  at::Tensor timestamps;  ///< T float64 (seconds for date-times), undefined without a timestamp column
  at::Tensor labels;      ///< T int64 in {0, 1}, undefined without a label column
  std::vector<std::string> columns;  ///< names of the D value columns
  int64_t filled_gaps = 0;           ///< cells filled by interpolation
};

/// Reads a series from a CSV file with a header row. Timestamps must increase strictly unless
/// duplicate_timestamps / backward_timestamps say what to do (an error names the first row that does
/// not, and the option that would get past it).
LoadedSeries load_series_csv(const std::string& path, const SeriesCsvOptions& options = {});

/// Reads a series from a .npy file of shape T or T x D; NaN cells are an error naming row
/// and column unless `interpolate_gaps`.
LoadedSeries load_series_npy(const std::string& path, bool interpolate_gaps = false);

/// Seconds since 1970-01-01 UTC of an ISO 8601 date-time ("2014-02-14 14:30:00",
/// "2014-02-14T14:30:00.5Z", "2014-02-14T14:30+02:00", "2014-02-14"); false if `text` is not one.
bool parse_iso8601(const std::string& text, double& seconds);

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
