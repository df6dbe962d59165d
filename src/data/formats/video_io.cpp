#include <adx/data/formats/video_io.hpp>

#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/io/files.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace adx {
namespace fs = std::filesystem;

namespace {
bool is_frame_file(const fs::path& p) {
  auto ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}
}  // namespace

VideoReader::VideoReader(std::string path, int64_t size, int channels)
    : path_(std::move(path)), size_(size), channels_(channels) {
  ADX_CHECK_AS(ValueError, channels == 1 || channels == 3, "video frames load as 1 or 3 channels, not {}", channels);
  ADX_CHECK_AS(ValueError, size >= 0, "frame size must be >= 0, got {}", size);
  if (fs::is_directory(path_)) {
    for (const auto& entry : fs::directory_iterator(path_))
      if (entry.is_regular_file() && is_frame_file(entry.path())) files_.push_back(entry.path().string());
    std::sort(files_.begin(), files_.end());
    ADX_CHECK_AS(IoError, !files_.empty(), "video folder {} holds no frames (png, jpg or bmp)", path_);
    frames_ = static_cast<int64_t>(files_.size());
    return;
  }
  ADX_CHECK_AS(IoError, fs::exists(path_), "video {} does not exist (expected a folder of frames or an .npy file)",
               path_);
  auto a = load_npy(path_);
  ADX_CHECK_AS(ShapeError, a.dim() == 3 || a.dim() == 4, "video {}: an NPY video is T x H x W or T x H x W x C, got {}",
               path_, shape_string(a.sizes().vec()));
  if (a.dim() == 3) a = a.unsqueeze(3);
  ADX_CHECK_AS(ShapeError, a.size(0) >= 1 && a.size(3) >= 1 && a.size(3) <= 4,
               "video {}: T x H x W x C with 1 to 4 channels and at least one frame, got {}", path_,
               shape_string(a.sizes().vec()));
  const bool bytes = a.scalar_type() == torch::kUInt8;
  a = a.permute({0, 3, 1, 2}).to(torch::kFloat32);
  if (bytes) a = a / 255.0;
  check_finite(a, ("video " + path_).c_str(), "frame");
  if (size_ > 0) a = fit_image_size(a, ImageSize{size_, 0});
  array_ = a.contiguous();
  frames_ = array_.size(0);
}

at::Tensor VideoReader::read(int64_t begin, int64_t end) const {
  ADX_CHECK_AS(ValueError, 0 <= begin && begin <= end && end <= frames_,
               "video {}: frames [{}, {}) asked for, but it has {}", path_, begin, end, frames_);
  if (array_.defined()) return array_.slice(0, begin, end);
  std::vector<at::Tensor> frames;
  for (int64_t t = begin; t < end; ++t) {
    auto frame = decode_image(read_regular_file(files_[t], "video frame"), files_[t], channels_).unsqueeze(0);
    if (size_ > 0) frame = fit_image_size(frame, ImageSize{size_, 0});
    ADX_CHECK_AS(ShapeError, frames.empty() || frame.sizes() == frames.front().sizes(),
                 "video {}: frame {} is {} x {} but frame {} is {} x {}; give a size to resize them all", path_,
                 files_[t], frame.size(2), frame.size(3), files_[begin], frames.front().size(2), frames.front().size(3));
    frames.push_back(frame);
  }
  return frames.empty() ? torch::zeros({0}) : torch::cat(frames);
}

at::Tensor load_video(const std::string& path, int64_t size, int channels) {
  return VideoReader(path, size, channels).read_all();
}

at::Tensor load_frame_labels(const std::string& path, int64_t frames) {
  at::Tensor labels;
  if (fs::path(path).extension() == ".npy") {
    labels = load_npy(path).to(torch::kDouble).reshape({-1});
  } else {
    std::string text = read_regular_file(path, "frame labels");
    std::replace(text.begin(), text.end(), ',', ' ');
    std::istringstream in(text);
    std::vector<double> values;
    std::string token;
    while (in >> token) {
      char* end = nullptr;
      const double v = std::strtod(token.c_str(), &end);
      ADX_CHECK_AS(ValueError, end != token.c_str() && *end == '\0',
                   "frame labels {}: '{}' (value {}) is not a number", path, token, values.size());
      values.push_back(v);
    }
    labels = torch::tensor(values, torch::kDouble);
  }
  ADX_CHECK_AS(ShapeError, labels.numel() == frames, "frame labels {}: {} labels for a video of {} frames", path,
               labels.numel(), frames);
  const auto bad = (labels.ne(0) & labels.ne(1)).nonzero();
  if (bad.numel() > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    throw ValueError(fmt::format("frame labels {}: label of frame {} is {}, not 0 or 1", path, i, labels[i].item<double>()));
  }
  return labels.to(torch::kLong);
}

void write_frame_folder(const std::string& folder, const at::Tensor& frames) {
  ADX_CHECK_AS(ShapeError, frames.dim() == 4, "frames must be T x C x H x W, got {}", shape_string(frames.sizes().vec()));
  fs::create_directories(folder);
  for (int64_t t = 0; t < frames.size(0); ++t) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%06lld.png", static_cast<long long>(t));
    write_png((fs::path(folder) / name).string(), frames[t]);
  }
}

}  // namespace adx
