#pragma once
// Scoring of one long video (or series) as its frames arrive. Only one chunk of clips
// and the frames they cover are held, so memory stays bounded however long the video
// is. Frame t's score is the mean over the clips covering it, as Detector::score on the
// whole video gives; a frame comes out once no later clip can cover it. Scores are raw:
// per-video min-max normalisation needs the whole video and is not applied.
//
//   adx::SequenceStream stream(detector, {8, 1});
//   while (reader has frames) for (float s : to_vector(stream.push(next_frames))) ...;
//   auto tail = stream.finish();
#include <adx/detectors/detector.hpp>

namespace adx {

class SequenceStream {
 public:
  /// `detector` must be fitted on video or series data; `clips` as the batch scoring would use;
  /// `chunk_clips` clips are scored per call of Detector::score.
  SequenceStream(Detector& detector, Windows clips, int64_t chunk_clips = 256);
  /// Appends steps (T x C x H x W frames, or T x D series steps); returns the scores of the
  /// steps that are now final, in order (possibly none). NaN where no clip scored a step.
  at::Tensor push(const at::Tensor& steps);
  /// Ends the sequence and returns the scores of the steps still pending. The stream can then
  /// take a new sequence.
  at::Tensor finish();
  /// Steps received and emitted so far in this sequence.
  int64_t received() const { return received_; }
  int64_t emitted() const { return emitted_; }
  /// Steps held in memory now (the bound the stream keeps).
  int64_t buffered() const { return buffer_.defined() ? buffer_.size(0) : 0; }

 private:
  void score_span(int64_t begin, int64_t end);  ///< scores the clips of steps [begin, end), as a sequence of its own
  at::Tensor emit(int64_t end);                  ///< the scores of steps [emitted_, end)
  void trim();

  Detector& detector_;
  Windows clips_;
  int64_t chunk_clips_;
  at::Tensor buffer_;          ///< steps [buffer_begin_, received_)
  int64_t buffer_begin_ = 0;
  int64_t received_ = 0, emitted_ = 0;
  int64_t next_start_ = 0;     ///< first clip not yet scored (a multiple of the stride)
  std::vector<double> sums_, counts_;  ///< steps [emitted_, received_): sums (or maxima) and counts
};

}  // namespace adx
