// Video input: one or more videos T x C x H x W stacked in x; an item is a
// clip of consecutive frames, scores come back per clip and per frame.
#include "sequence_kind.hpp"

#include <adx/core/error.hpp>
#include <adx/data/formats/video_io.hpp>

#include <torch/types.h>

namespace adx {
namespace {

class VideoKind final : public SequenceKind {
 public:
  std::string name() const override { return kinds::kVideo; }
  void validate(const Data& data, const char* what) const override {
    validate_sequences(data, what, 4, "T x C x H x W");
  }
  Preprocess default_preprocess() const override { return Preprocess::GlobalMinMax; }
  InputKindTraits traits() const override {
    InputKindTraits t = SequenceKind::traits();
    t.image_rows = true;
    return t;
  }
  Data from_steps(at::Tensor steps, Windows clips) const override { return Data::video(steps, clips); }
  /// A folder of frames (resized and converted as the options say) or an NPY of T x [C x] H x W.
  Data read(const std::string& path, const ReadOptions& options, std::vector<std::string>* /*columns*/) const override {
    ADX_CHECK_AS(OptionError, options.windows.length >= 1,
                 "video data need a clip length (frames per clip; --window in the adx command)");
    return Data::video(load_video(path, options.image_size, options.channels), options.windows);
  }

 protected:
  const char* sequence_word() const override { return "video"; }
  const char* step_word() const override { return "frame"; }
  const char* item_word() const override { return "clip"; }
};

}  // namespace

std::shared_ptr<const InputKind> make_video_kind() { return std::make_shared<VideoKind>(); }

Data Data::video(at::Tensor frames, Windows clips, at::Tensor labels) {
  Data d = stack_sequences({frames}, clips, adx::input_kind(kinds::kVideo), "video", "frame");
  d.labels = std::move(labels);
  return d;
}

Data Data::videos(const std::vector<at::Tensor>& videos, Windows clips, at::Tensor video_labels) {
  Data d = stack_sequences(videos, clips, adx::input_kind(kinds::kVideo), "video", "frame");
  d.sequence_labels = std::move(video_labels);
  return d;
}

}  // namespace adx
