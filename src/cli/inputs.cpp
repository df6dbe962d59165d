#include "inputs.hpp"

#include <adx/core/error.hpp>
#include <adx/data/graphs.hpp>
#include <adx/data/images.hpp>
#include <adx/data/loaders.hpp>
#include <adx/io/files.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

namespace adx::cli {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_idx(const std::string& path) {
  return path.find("-ubyte") != std::string::npos || path.find(".idx") != std::string::npos;
}

// An image stack N x H x W (grey) or N x C x H x W; uint8 pixels become [0, 1].
Data images_from(torch::Tensor x) {
  if (x.scalar_type() == torch::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
  if (x.dim() == 3) x = x.unsqueeze(1);
  return Data::images(x.to(torch::kFloat32));
}

}  // namespace

// Standard input, copied once to a private temporary .csv file that the readers take like any other
// file; removed when done.
class StdinAsFile {
 public:
  StdinAsFile() {
    std::string pattern = (fs::temp_directory_path() / "adx-stdin-XXXXXX.csv").string();
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

Data read_data(const std::string& path, const InputOptions& options, std::vector<std::string>* columns) {
  if (columns != nullptr) columns->clear();
  if (path == "-") {
    ADX_CHECK_AS(OptionError, options.kind == "auto" || options.kind == "tabular" || options.kind == "series",
                 "standard input ('-') is read as CSV text: a table or (--kind series) a series, not {}", options.kind);
    const StdinAsFile input;
    return read_data(input.path(), options, columns);
  }
  const auto& kind = options.kind;
  ADX_CHECK_AS(OptionError,
               kind == "auto" || kind == "tabular" || kind == "image" || kind == "series" || kind == "graph",
               "--kind takes auto, tabular, image, series or graph, got '{}'", kind);
  if (kind == "graph" || !options.edges.empty()) {
    ADX_CHECK_AS(OptionError, !options.edges.empty(), "graph data needs --edges FILE (src,dst[,weight] rows)");
    const auto x = ends_with(path, ".npy") ? load_npy(path) : load_csv(path);
    ADX_CHECK_AS(ShapeError, x.dim() == 2, "{} holds node features of shape {}; they are N x F", path,
                 shape_string(x.sizes().vec()));
    graph::EdgeListOptions edge_options;
    edge_options.num_nodes = x.size(0);
    const auto edges = graph::load_edge_list(options.edges, edge_options);
    return Data::graph(x.to(torch::kFloat32), edges.edge_index, edges.edge_weight);
  }
  if (fs::is_directory(path)) {
    ADX_CHECK_AS(OptionError, kind == "auto" || kind == "image", "{} is a folder: only images are read from folders",
                 path);
    return Data::images(load_image_folder(path, options.image_size, options.channels).images);
  }
  if (kind == "series") {
    ADX_CHECK_AS(OptionError, options.window >= 1, "series data needs --window (steps per window)");
    const auto series = ends_with(path, ".npy") ? load_series_npy(path) : load_series_csv(path);
    if (columns != nullptr && !ends_with(path, ".npy")) *columns = series.columns;
    return Data::series(series.values, Windows{options.window, options.stride}, series.timestamps);
  }
  torch::Tensor x;
  if (ends_with(path, ".npy")) x = load_npy(path);
  else if (is_idx(path)) x = load_idx(path);
  else if (ends_with(path, ".csv") || ends_with(path, ".txt") || kind == "tabular") {
    auto table = load_csv_table(path);
    x = table.values;
    if (columns != nullptr) *columns = std::move(table.columns);
  } else
    throw IoError(fmt::format("cannot tell what {} holds: use .csv, .npy, an IDX file or a folder of images", path));
  if (kind == "image" || (kind == "auto" && x.dim() >= 3)) {
    ADX_CHECK_AS(ShapeError, x.dim() == 3 || x.dim() == 4, "{} holds a tensor of shape {}; images are N x H x W or "
                 "N x C x H x W", path, shape_string(x.sizes().vec()));
    return images_from(x);
  }
  ADX_CHECK_AS(ShapeError, x.dim() == 2, "{} holds a tensor of shape {}; a table is N x D", path,
               shape_string(x.sizes().vec()));
  return Data::tabular(x.to(torch::kFloat32));
}

bool is_mvtec_test_folder(const std::string& path) {
  return path != "-" && fs::is_directory(path) && fs::is_directory(fs::path(path) / "good") &&
         list_image_files(path).empty();
}

MvtecTest read_mvtec_test(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  ADX_CHECK_AS(ShapeError, (channels == 1 || channels == 3) && height == width,
               "an MVTec folder is read for square 1- or 3-channel image models, not items of {} x {} x {}", channels,
               height, width);
  // <category>/test/<defect>/<name>.png has its mask at <category>/ground_truth/<defect>/<name>_mask.png.
  const fs::path root = fs::absolute(path).lexically_normal();
  const fs::path truth = root.parent_path() / "ground_truth";
  std::vector<std::string> folders;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) folders.push_back(entry.path().filename().string());
  std::sort(folders.begin(), folders.end());
  MvtecTest out;
  std::vector<at::Tensor> images, masks;
  const ImageSize size{height, 0};
  for (const auto& defect : folders) {
    for (const auto& file : list_image_files((root / defect).string())) {
      const auto image = fit_image_size(read_image(file, static_cast<int>(channels)).unsqueeze(0), size);
      at::Tensor mask = torch::zeros({1, 1, height, width});
      if (defect != "good") {
        const auto mask_path = truth / defect / (fs::path(file).stem().string() + "_mask.png");
        ADX_CHECK_AS(IoError, fs::exists(mask_path), "{} has no ground-truth mask: expected {}", file,
                     mask_path.string());
        mask = fit_image_size(read_mask(mask_path.string()).unsqueeze(0), size, /*is_mask=*/true);
      }
      images.push_back(image);
      masks.push_back(mask);
      out.labels.push_back(defect == "good" ? 0 : 1);
      out.paths.push_back(file);
    }
  }
  ADX_CHECK_AS(IoError, !images.empty(), "the MVTec test folder {} holds no images", path);
  out.images = Data::images(torch::cat(images));
  out.masks = torch::cat(masks);
  return out;
}

std::vector<int> read_labels(const InputOptions& options, int64_t expected) {
  ADX_CHECK_AS(OptionError, !options.labels.empty(), "labels are needed: give --labels FILE");
  const auto& path = options.labels;
  torch::Tensor raw;
  if (ends_with(path, ".npy")) raw = load_npy(path);
  else if (is_idx(path)) raw = load_idx(path);
  else raw = load_csv(path, CsvOptions{',', 0});
  raw = raw.reshape({-1}).to(torch::kFloat64).contiguous();
  ADX_CHECK_AS(ShapeError, raw.numel() == expected, "{} holds {} labels for {} items", path, raw.numel(), expected);
  double normal = 0.0;
  const bool by_class = !options.normal_label.empty();
  if (by_class) detail::option_from_string("--normal-label", options.normal_label, normal);
  std::vector<int> labels(static_cast<size_t>(expected));
  for (int64_t i = 0; i < expected; ++i) {
    const double v = raw.data_ptr<double>()[i];
    ADX_CHECK_AS(ValueError, std::isfinite(v), "{}: label {} is not a number", path, i);
    labels[static_cast<size_t>(i)] = by_class ? (v != normal) : (v != 0.0);
  }
  return labels;
}

OptionMap read_option_arguments(const std::vector<std::string>& pairs, const std::string& json_file) {
  OptionMap map;
  if (!json_file.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_regular_file(json_file, "options file"));
    } catch (const nlohmann::json::exception& e) {
      throw OptionError(fmt::format("options file {} is not valid JSON: {}", json_file, e.what()));
    }
    ADX_CHECK_AS(OptionError, j.is_object(), "options file {} must hold a JSON object", json_file);
    // {"train": {"epochs": 5}} and {"train.epochs": 5} both give train.epochs=5.
    std::function<void(const nlohmann::json&, const std::string&)> flatten = [&](const nlohmann::json& node,
                                                                                const std::string& prefix) {
      for (const auto& [key, value] : node.items()) {
        const std::string name = prefix + key;
        if (value.is_object()) flatten(value, name + ".");
        else if (value.is_string()) map[name] = value.get<std::string>();
        else if (value.is_array()) {
          std::string joined;
          for (const auto& item : value) joined += (joined.empty() ? "" : ",") + (item.is_string() ? item.get<std::string>() : item.dump());
          map[name] = joined;
        } else map[name] = value.dump();
      }
    };
    flatten(j, "");
  }
  for (const auto& [key, value] : parse_key_values(pairs)) map[key] = value;
  return map;
}

std::string read_token_file(const std::string& path) {
  const auto text = read_regular_file(path, "token file");
  const auto first = text.find_first_not_of(" \t\r\n");
  ADX_CHECK_AS(OptionError, first != std::string::npos, "token file {} is empty", path);
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace adx::cli
