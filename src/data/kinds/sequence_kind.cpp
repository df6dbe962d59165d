#include "sequence_kind.hpp"

#include <adx/core/error.hpp>

#include <torch/types.h>

#include <limits>

namespace adx {
namespace {

const auto kLong = torch::TensorOptions().dtype(torch::kLong);

// Exclusive end of every sequence in x.
at::Tensor sequence_ends(const Data& data) {
  return torch::tensor(data.lengths, kLong).cumsum(0);
}

// Index of the sequence each item lies in (CPU).
at::Tensor sequence_of(const Data& data, const at::Tensor& starts) {
  return torch::searchsorted(sequence_ends(data), starts.cpu(), /*out_int32=*/false, /*right=*/true);
}

// Steps covered by every item: items x length indices into x.
at::Tensor step_indices(const at::Tensor& items, int64_t length) {
  return items.unsqueeze(1) + torch::arange(length, items.options().dtype(torch::kLong)).unsqueeze(0);
}

// Window starts of every sequence: every `stride` steps, plus one that ends at the sequence's end.
at::Tensor window_starts(const std::vector<int64_t>& lengths, Windows w) {
  std::vector<int64_t> starts;
  int64_t offset = 0;
  for (int64_t len : lengths) {
    if (w.length >= 1 && w.stride >= 1 && len >= w.length) {
      int64_t s = 0;
      for (; s + w.length <= len; s += w.stride) starts.push_back(offset + s);
      if (starts.back() != offset + len - w.length) starts.push_back(offset + len - w.length);
    }
    offset += len;
  }
  return torch::tensor(starts, kLong);
}

}  // namespace

Data stack_sequences(const std::vector<at::Tensor>& sequences, Windows windows, const InputKind& kind,
                     const char* unit, const char* step) {
  ADX_CHECK_AS(ShapeError, !sequences.empty(), "no {} given", unit);
  Data d;
  d.kind = &kind;
  d.windows = windows;
  for (size_t k = 0; k < sequences.size(); ++k) {
    const auto& s = sequences[k];
    ADX_CHECK_AS(ShapeError, s.defined() && s.dim() >= 1, "{} {} is undefined or has no dimensions", unit, k);
    const auto first = sequences[0].sizes().slice(1).vec(), mine = s.sizes().slice(1).vec();
    ADX_CHECK_AS(ShapeError, mine == first, "{} {} has {}s of shape {} but {} 0 has {}s of shape {}", unit, k, step,
                 shape_string(mine), unit, step, shape_string(first));
    d.lengths.push_back(s.size(0));
  }
  d.x = sequences.size() == 1 ? sequences[0] : torch::cat(sequences);
  d.items = window_starts(d.lengths, windows);
  return d;
}

std::vector<int64_t> SequenceKind::item_shape(const Data& data) const {
  if (!data.x.defined()) return {};
  auto sizes = data.x.sizes().vec();
  sizes[0] = data.windows.length;
  return sizes;
}

Data SequenceKind::select(const Data& data, const at::Tensor& indices) const {
  Data d = data;
  d.items = data.items.index_select(0, indices.to(data.items.device()));
  return d;
}

Data SequenceKind::slice(const Data& data, int64_t begin, int64_t end) const {
  Data d = data;
  d.items = data.items.slice(0, begin, end);
  if (d.items.numel() == 0) return d;
  const int64_t lo = d.items.min().item<int64_t>();
  const int64_t hi = d.items.max().item<int64_t>() + data.windows.length;
  d.x = data.x.slice(0, lo, hi);
  for (at::Tensor* t : {&d.labels, &d.timestamps})
    if (t->defined()) *t = t->slice(0, lo, hi);
  d.items = d.items - lo;
  d.sequence_labels = at::Tensor();  // the sequences are cut: their labels no longer apply
  // The sequences that [lo, hi) overlaps, cut to it: items never cross their boundaries.
  d.lengths.clear();
  int64_t offset = 0;
  for (int64_t len : data.lengths) {
    const int64_t a = std::max(offset, lo), b = std::min(offset + len, hi);
    if (b > a) d.lengths.push_back(b - a);
    offset += len;
  }
  return d;
}

Batch SequenceKind::collate(const Data& data) const {
  Batch b;
  const auto idx = step_indices(data.items.to(data.x.device()), data.windows.length);
  auto shape = data.x.sizes().vec();
  shape[0] = data.windows.length;
  shape.insert(shape.begin(), data.items.size(0));
  b.x = data.x.index_select(0, idx.reshape({-1})).reshape(shape);
  return b;
}

std::pair<Data, Data> SequenceKind::holdout(const Data& data, double fraction) const {
  const auto starts = data.items.cpu();
  const auto seq = sequence_of(data, starts);
  const auto lengths = torch::tensor(data.lengths, kLong);
  const auto tail = (lengths.to(torch::kDouble) * fraction).floor().to(torch::kLong);
  const auto cut = (sequence_ends(data) - tail).index_select(0, seq);
  const auto train = (starts + data.windows.length <= cut).nonzero().reshape({-1});
  const auto validation = (starts >= cut).nonzero().reshape({-1});
  if (validation.numel() == 0 || train.numel() < 2) return {data, select(data, torch::zeros({0}, kLong))};
  return {select(data, train), select(data, validation)};
}

at::Tensor SequenceKind::fit_values(const Data& data) const {
  const int64_t steps = data.x.size(0);
  const auto starts = data.items.cpu();
  // A difference array marks every step some item covers, without materialising the windows.
  auto diff = torch::zeros({steps + 1}, kLong);
  const auto ones = torch::ones({starts.size(0)}, kLong);
  diff.index_add_(0, starts, ones);
  diff.index_add_(0, starts + data.windows.length, -ones);
  const auto covered = diff.cumsum(0).slice(0, 0, steps).gt(0).nonzero().reshape({-1});
  return data.x.index_select(0, covered.to(data.x.device()));
}

void SequenceKind::accumulate_steps(const Data& data, int64_t first, const Scores& part, StepSums& sums) const {
  const int64_t steps = data.x.size(0), length = data.windows.length;
  const bool max = sums.assembly == StepAssembly::Max;
  if (!sums.counts.defined()) {
    sums.counts = torch::zeros({steps}, torch::kDouble);
    if (max)
      sums.maxima = torch::full({steps}, -std::numeric_limits<double>::infinity(), torch::kDouble);
    else
      sums.sums = torch::zeros({steps}, torch::kDouble);
  }
  const int64_t n = part.per_item.numel();
  if (n == 0) return;
  const auto idx = step_indices(data.items.slice(0, first, first + n).cpu(), length).reshape({-1});
  auto values = part.step_map.defined()
                    ? part.step_map.detach().cpu().to(torch::kDouble).reshape({n, length})
                    : part.per_item.detach().cpu().to(torch::kDouble).reshape({n, 1}).expand({n, length});
  values = values.reshape({-1});
  // Steps a detector leaves unscored (NaN in step_map) do not count.
  const auto finite = values.isfinite();
  sums.counts.index_add_(0, idx, finite.to(torch::kDouble));
  if (max)
    sums.maxima.scatter_reduce_(
        0, idx, torch::where(finite, values, torch::full_like(values, -std::numeric_limits<double>::infinity())),
        "amax");
  else
    sums.sums.index_add_(0, idx, torch::where(finite, values, torch::zeros_like(values)));
}

void SequenceKind::finish_steps(const StepSums& sums, Scores& scores) const {
  if (!sums.counts.defined()) return;
  const auto nan = torch::full_like(sums.counts, std::numeric_limits<double>::quiet_NaN());
  const auto combined =
      sums.assembly == StepAssembly::Max ? sums.maxima : sums.sums / sums.counts.clamp_min(1);
  scores.per_step = torch::where(sums.counts > 0, combined, nan).to(torch::kFloat32);
  scores.per_step_count = sums.counts.to(torch::kFloat32);
}

void SequenceKind::validate_sequences(const Data& data, const char* what, int64_t rank, const char* layout) const {
  validate_values(data, what, rank, layout);
  const int64_t steps = data.x.size(0), length = data.windows.length;
  ADX_CHECK_AS(ValueError, length >= 1 && data.windows.stride >= 1,
               "{}: {} length and stride must be >= 1, got {} and {}", what, item_word(), length,
               data.windows.stride);
  ADX_CHECK_AS(ShapeError, !data.lengths.empty(), "{}: no {} lengths given", what, sequence_word());
  int64_t total = 0;
  for (size_t k = 0; k < data.lengths.size(); ++k) {
    ADX_CHECK_AS(ShapeError, data.lengths[k] >= length,
                 "{}: {} {} has {} {}s, shorter than one {} of {} {}s", what, sequence_word(), k, data.lengths[k],
                 step_word(), item_word(), length, step_word());
    total += data.lengths[k];
  }
  ADX_CHECK_AS(ShapeError, total == steps, "{}: the {} lengths add up to {} {}s but x has {}", what,
               sequence_word(), total, step_word(), steps);
  ADX_CHECK_AS(ShapeError, data.items.defined() && data.items.dim() == 1 && data.items.scalar_type() == torch::kLong,
               "{}: items must be a 1-D int64 tensor of {} starts", what, item_word());
  const auto starts = data.items.cpu();
  if (starts.numel() > 0) {
    const auto seq = sequence_of(data, starts);
    const auto ends = sequence_ends(data);
    const auto in_range = (starts >= 0) & (seq < static_cast<int64_t>(data.lengths.size()));
    const auto end_of_seq = ends.index_select(0, seq.clamp_max(static_cast<int64_t>(data.lengths.size()) - 1));
    const auto bad = (in_range.logical_not() | (starts + length > end_of_seq)).nonzero();
    if (bad.numel() > 0) {
      const int64_t i = bad[0][0].item<int64_t>();
      throw ShapeError(fmt::format("{}: {} {} starts at {} {} and does not fit inside one {} of the {} {}s",
                                   what, item_word(), i, step_word(), starts[i].item<int64_t>(), sequence_word(),
                                   steps, step_word()));
    }
  }
  if (data.sequence_labels.defined()) {
    ADX_CHECK_AS(ShapeError, data.sequence_labels.numel() == static_cast<int64_t>(data.lengths.size()),
                 "{}: {} sequence labels for {} {}s (one per {})", what, data.sequence_labels.numel(),
                 data.lengths.size(), sequence_word(), sequence_word());
    const auto labels = data.sequence_labels.cpu().to(torch::kDouble).reshape({-1});
    const auto bad = (labels.ne(0) & labels.ne(1)).nonzero();
    if (bad.numel() > 0) {
      const int64_t i = bad[0][0].item<int64_t>();
      throw ValueError(fmt::format("{}: sequence labels must be 0 (normal) or 1 (holds an anomaly), {} {} has {}",
                                   what, sequence_word(), i, labels[i].item<double>()));
    }
  }
  if (data.labels.defined())
    ADX_CHECK_AS(ShapeError, data.labels.numel() == steps, "{}: {} labels for {} {}s", what, data.labels.numel(),
                 steps, step_word());
  check_finite(data.x, what, step_word());
}

}  // namespace adx
