#include <adx/detectors/stream.hpp>

#include <limits>

namespace adx {

SequenceStream::SequenceStream(Detector& detector, Windows clips, int64_t chunk_clips)
    : detector_(detector), clips_(clips), chunk_clips_(chunk_clips) {
  ADX_CHECK_AS(NotFittedError, detector.fitted(), "{}: a stream needs a fitted detector", detector.type());
  ADX_CHECK_AS(ShapeError, detector.fitted_kind()->has_steps(),
               "{} was fitted on {} data; a stream scores video or series", detector.type(),
               detector.fitted_kind()->name());
  ADX_CHECK_AS(ValueError, clips.length >= 1 && clips.stride >= 1, "clip length and stride must be >= 1, got {} and {}",
               clips.length, clips.stride);
  ADX_CHECK_AS(ValueError, chunk_clips >= 1, "chunk_clips must be >= 1, got {}", chunk_clips);
}

void SequenceStream::score_span(int64_t begin, int64_t end) {
  const auto steps = buffer_.slice(0, begin - buffer_begin_, end - buffer_begin_);
  const Data data = detector_.fitted_kind()->from_steps(steps, clips_);
  const auto scores = detector_.score(data);
  const auto combined = scores.per_step.to(torch::kDouble).contiguous();
  const auto count = scores.per_step_count.to(torch::kDouble).contiguous();
  const double* m = combined.data_ptr<double>();
  const double* c = count.data_ptr<double>();
  // Chunks overlap by less than a clip: a step's score merges exactly, as a weighted mean or a maximum.
  const bool max = detector_.step_assembly() == StepAssembly::Max;
  for (int64_t t = begin; t < end; ++t) {
    const auto i = static_cast<size_t>(t - emitted_);
    if (c[t - begin] > 0) {
      sums_[i] = max ? (counts_[i] > 0 ? std::max(sums_[i], m[t - begin]) : m[t - begin])
                     : sums_[i] + m[t - begin] * c[t - begin];
      counts_[i] += c[t - begin];
    }
  }
}

at::Tensor SequenceStream::emit(int64_t end) {
  const int64_t n = std::max<int64_t>(0, end - emitted_);
  auto out = torch::empty({n}, torch::kFloat32);
  auto* o = out.data_ptr<float>();
  const bool max = detector_.step_assembly() == StepAssembly::Max;
  for (int64_t i = 0; i < n; ++i)
    o[i] = counts_[i] > 0 ? static_cast<float>(max ? sums_[i] : sums_[i] / counts_[i])
                          : std::numeric_limits<float>::quiet_NaN();
  sums_.erase(sums_.begin(), sums_.begin() + n);
  counts_.erase(counts_.begin(), counts_.begin() + n);
  emitted_ += n;
  return out;
}

void SequenceStream::trim() {
  // Kept: the steps of clips not yet scored, and the last clip's worth, which the final clip
  // (the one that ends where the sequence ends) may need.
  const int64_t keep_from = std::max<int64_t>(0, std::min(next_start_, received_ - clips_.length));
  if (keep_from > buffer_begin_) {
    buffer_ = buffer_.slice(0, keep_from - buffer_begin_).clone();
    buffer_begin_ = keep_from;
  }
}

at::Tensor SequenceStream::push(const at::Tensor& steps) {
  ADX_CHECK_AS(ShapeError, steps.defined() && steps.dim() >= 1, "stream: steps must be a tensor T x ..., got {}",
               steps.defined() ? shape_string(steps.sizes().vec()) : "an undefined tensor");
  if (steps.size(0) == 0) return torch::empty({0}, torch::kFloat32);
  if (buffer_.defined())
    ADX_CHECK_AS(ShapeError, steps.sizes().slice(1) == buffer_.sizes().slice(1),
                 "stream: steps of shape {} after steps of shape {}", shape_string(steps.sizes().slice(1).vec()),
                 shape_string(buffer_.sizes().slice(1).vec()));
  buffer_ = buffer_.defined() ? torch::cat({buffer_, steps.cpu()}) : steps.cpu().clone();
  received_ += steps.size(0);
  sums_.resize(static_cast<size_t>(received_ - emitted_), 0.0);
  counts_.resize(static_cast<size_t>(received_ - emitted_), 0.0);
  // Whole chunks of clips at the stride's starts; each chunk's last clip ends at its end.
  const int64_t chunk_steps = (chunk_clips_ - 1) * clips_.stride + clips_.length;
  while (received_ - next_start_ >= chunk_steps) {
    score_span(next_start_, next_start_ + chunk_steps);
    next_start_ += chunk_clips_ * clips_.stride;
  }
  // Final: steps before the next clip, and before the earliest start the sequence's last clip can have.
  auto out = emit(std::min(next_start_, received_ - clips_.length));
  trim();
  return out;
}

at::Tensor SequenceStream::finish() {
  const int64_t total = received_;
  ADX_CHECK_AS(ShapeError, total >= clips_.length, "stream: the sequence has {} steps, shorter than one clip of {}",
               total, clips_.length);
  if (total - next_start_ >= clips_.length) {
    score_span(next_start_, total);  // the regular clips left and the one that ends at the end
  } else if ((total - clips_.length) % clips_.stride != 0) {
    score_span(total - clips_.length, total);  // only the clip that ends at the end
  }
  auto out = emit(total);
  buffer_ = at::Tensor();
  buffer_begin_ = received_ = emitted_ = next_start_ = 0;
  sums_.clear();
  counts_.clear();
  return out;
}

}  // namespace adx
