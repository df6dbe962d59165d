#pragma once
// How the `adx` command reads data and labels from the paths it is given.
#include <adx/core/options.hpp>
#include <adx/data/data.hpp>

#include <string>
#include <vector>

namespace adx::cli {

struct InputOptions {
  std::string kind = "auto";  ///< auto or an input kind's name (tabular, image, series, graph, video, ...)
  std::string edges;          ///< graph: the edge list (src,dst[,weight] CSV or NPY); the data are node features
  int64_t window = 0;         ///< series / video: steps (frames) per window (clip)
  int64_t stride = 1;         ///< series / video: steps between windows
  int64_t image_size = 0;     ///< image and frame folders: resize to S x S (0 = keep)
  int channels = 3;           ///< image and frame folders: 1 (grey) or 3 (RGB)
  std::string labels;         ///< a label file: CSV/text (one per line), NPY or IDX
  /// With labels: items whose label equals this are normal, every other label is an anomaly.
  /// Unset (empty): labels are 0 = normal, anything else = anomaly.
  std::string normal_label;
};

/// Reads `path` with its input kind's reader (adx::read_input): a CSV or NPY table, an NPY image stack
/// (N x H x W or N x C x H x W), an IDX image file (the MNIST family, .gz or not), a folder of images,
/// (kind series) a series CSV with a header or an NPY of T x D, (kind video) a frame folder or NPY, or
/// (with an edge list) node features. "-" is standard input, read as CSV text. With `columns`, a CSV
/// header's column names (the value columns of a series) are put there; it is left empty when there are none.
Data read_data(const std::string& path, const InputOptions& options, std::vector<std::string>* columns = nullptr);

/// An MVTec AD test folder, `<category>/test`: one subfolder per defect type, and `good`.
struct MvtecTest {
  Data images;                     ///< resized to the model's size
  std::vector<int> labels;         ///< from the folder names: good = 0, any defect type = 1
  at::Tensor masks;                ///< N x 1 x H x W of 0 / 1, from `<category>/ground_truth` (zero for good)
  std::vector<std::string> paths;  ///< one per image
};
/// Whether `path` is laid out as an MVTec AD test folder: a folder with a `good` subfolder and no
/// images of its own.
bool is_mvtec_test_folder(const std::string& path);
/// Reads an MVTec AD test folder, each image brought to `height` x `width` with `channels` channels (a
/// model's item shape). A defect image without its `<name>_mask.png` is an IoError naming the file.
MvtecTest read_mvtec_test(const std::string& path, int64_t channels, int64_t height, int64_t width);

/// The labels of `options.labels` as 0 (normal) / 1 (anomaly); `expected` items must match.
std::vector<int> read_labels(const InputOptions& options, int64_t expected);

/// `key=value` arguments and a JSON options file (nested objects flatten to "a.b" keys) as one map;
/// key=value entries win over the file.
OptionMap read_option_arguments(const std::vector<std::string>& pairs, const std::string& json_file);

/// The token in a file: its content less surrounding white space; an empty token is an OptionError.
std::string read_token_file(const std::string& path);

}  // namespace adx::cli
