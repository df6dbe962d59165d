// Reading any kind's data from a path: the shared array readers, standard input, and "auto".
#include "reading.hpp"

#include <adx/core/error.hpp>
#include <adx/data/input_kind.hpp>
#include <adx/data/formats/loaders.hpp>

#include <torch/types.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <unistd.h>

namespace adx {
namespace kind_reading {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace {

// Standard input, copied once to a private temporary .csv file that the readers take like any other
// file; removed when done.
class StdinAsFile {
 public:
  StdinAsFile() {
    std::string pattern = (std::filesystem::temp_directory_path() / "adx-stdin-XXXXXX.csv").string();
    const int fd = ::mkstemps(pattern.data(), 4);
    ADX_CHECK_AS(IoError, fd >= 0, "cannot make a temporary file for standard input: {}", std::strerror(errno));
    path_ = pattern;
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    ::close(fd);
    out << std::cin.rdbuf();
    out.flush();
    ADX_CHECK_AS(IoError, out.good(), "cannot copy standard input to {} (disk full?)", path_);
  }
  ~StdinAsFile() { std::remove(path_.c_str()); }
  StdinAsFile(const StdinAsFile&) = delete;
  StdinAsFile& operator=(const StdinAsFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

at::Tensor read_array(const std::string& path, bool csv_otherwise, std::vector<std::string>* columns) {
  ADX_CHECK_AS(IoError, csv_otherwise || is_binary_array_path(path) || ends_with(path, ".csv") || ends_with(path, ".txt"),
               "cannot tell what {} holds: use .csv, .npy, an IDX file or a folder of images", path);
  return load_array(path, {}, columns);
}

at::Tensor table_values(at::Tensor x, const std::string& path) {
  ADX_CHECK_AS(ShapeError, x.dim() == 2, "{} holds a tensor of shape {}; a table is N x D", path,
               shape_string(x.sizes().vec()));
  return x.to(torch::kFloat32);
}

at::Tensor image_values(at::Tensor x, const std::string& path) {
  ADX_CHECK_AS(ShapeError, x.dim() == 3 || x.dim() == 4,
               "{} holds a tensor of shape {}; images are N x H x W or N x C x H x W", path,
               shape_string(x.sizes().vec()));
  if (x.scalar_type() == torch::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
  if (x.dim() == 3) x = x.unsqueeze(1);
  return x.to(torch::kFloat32);
}

}  // namespace kind_reading

Data read_input(const std::string& path, const std::string& kind_name, const ReadOptions& options,
                std::vector<std::string>* columns) {
  using namespace kind_reading;
  if (columns != nullptr) columns->clear();
  if (path == "-") {
    const StdinAsFile input;
    try {
      return read_input(input.path(), kind_name, options, columns);
    } catch (const Error& e) {
      throw IoError(fmt::format("standard input ('-'), read as CSV text as {} data: {}", kind_name, e.what()));
    }
  }
  if (kind_name != "auto") return input_kind(kind_name).read(path, options, columns);
  // auto: a graph when an edge list comes with it, images from a folder, else what the file's rank says.
  if (!options.edges.empty()) return input_kind(kinds::kGraph).read(path, options, columns);
  if (std::filesystem::is_directory(path)) return input_kind(kinds::kImage).read(path, options, columns);
  auto x = read_array(path, /*csv_otherwise=*/false, columns);
  if (x.dim() >= 3) {
    if (columns != nullptr) columns->clear();
    return input_kind(kinds::kImage).items_from(image_values(std::move(x), path));
  }
  return input_kind(kinds::kTabular).items_from(table_values(std::move(x), path));
}

}  // namespace adx
