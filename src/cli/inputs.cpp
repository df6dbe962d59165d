#include "inputs.hpp"

#include <adx/core/error.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/input_kind.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/io/files.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace adx::cli {
namespace fs = std::filesystem;

Data read_data(const std::string& path, const InputOptions& options, std::vector<std::string>* columns) {
  ReadOptions read_options;
  read_options.edges = options.edges;
  read_options.windows = Windows{options.window, options.stride};
  read_options.image_size = options.image_size;
  read_options.channels = options.channels;
  return read_input(path, options.kind, read_options, columns);
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
  auto raw = load_array(path, CsvOptions{',', 0});
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
