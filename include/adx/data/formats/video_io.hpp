#pragma once
// Videos on disk: a folder of frames (png, jpg, bmp; sorted by file name) or an NPY
// array T x H x W x C (or T x H x W), and frame-level labels from a text or NPY file.
// VideoReader reads frames on demand, so a long video is never held whole.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

class VideoReader {
 public:
  /// `size` > 0 resizes frames to size x size; `channels` 1 or 3 for frame folders (NPY keeps its own).
  explicit VideoReader(std::string path, int64_t size = 0, int channels = 1);
  int64_t frames() const { return frames_; }
  /// Frames [begin, end) as (end - begin) x C x H x W float32 in [0, 1] (uint8 NPY is divided by 255).
  at::Tensor read(int64_t begin, int64_t end) const;
  at::Tensor read_all() const { return read(0, frames_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int64_t size_ = 0;
  int channels_ = 1;
  int64_t frames_ = 0;
  std::vector<std::string> files_;  ///< frame folder
  at::Tensor array_;                ///< NPY, T x C x H x W
};

/// All frames of a video (see VideoReader).
at::Tensor load_video(const std::string& path, int64_t size = 0, int channels = 1);

/// Frame labels (1 = anomalous) of a video of `frames` frames: an NPY vector, or a text file of 0/1
/// values separated by spaces, commas or newlines. A count that differs from `frames` is an error.
at::Tensor load_frame_labels(const std::string& path, int64_t frames);

/// Writes frames T x C x H x W in [0, 1] as a folder of PNGs frame_000000.png, ... (for tests and examples).
void write_frame_folder(const std::string& folder, const at::Tensor& frames);

}  // namespace adx
