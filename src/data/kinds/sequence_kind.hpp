#pragma once
// What the series and video kinds share: several sequences stacked along the
// first dimension of x, items that are windows (clips) inside one sequence,
// a hold-out taken from the tail of every sequence, and per-step scores
// assembled from every item that covers a step.
#include <adx/data/input_kind.hpp>

namespace adx {

class SequenceKind : public InputKind {
 public:
  int64_t size(const Data& data) const override { return data.items.defined() ? data.items.size(0) : 0; }
  std::vector<int64_t> item_shape(const Data& data) const override;
  Data select(const Data& data, const at::Tensor& indices) const override;
  /// Narrows x to the steps the selected items cover, so that preprocessing a chunk stays small.
  Data slice(const Data& data, int64_t begin, int64_t end) const override;
  Batch collate(const Data& data) const override;
  /// The last `fraction` of every sequence: random windows would leak the future into training.
  /// Windows that straddle the cut belong to neither part.
  std::pair<Data, Data> holdout(const Data& data, double fraction) const override;
  at::Tensor fit_values(const Data& data) const override;
  InputKindTraits traits() const override {
    InputKindTraits t;
    t.steps = true;
    return t;
  }
  void accumulate_steps(const Data& data, int64_t first, const Scores& part, StepSums& sums) const override;
  void finish_steps(const StepSums& sums, Scores& scores) const override;

 protected:
  /// Words for messages: "series"/"step"/"window" or "video"/"frame"/"clip".
  virtual const char* sequence_word() const = 0;
  virtual const char* step_word() const = 0;
  virtual const char* item_word() const = 0;
  /// Checks x (of `rank` dimensions, `layout`), lengths, windows, items and labels.
  void validate_sequences(const Data& data, const char* what, int64_t rank, const char* layout) const;
};

/// Stacks sequences into one Data of `kind` and places its windows. `unit` and `step`
/// ("video", "frame") name them in the error when their step shapes differ.
Data stack_sequences(const std::vector<at::Tensor>& sequences, Windows windows, const InputKind& kind,
                     const char* unit, const char* step);

}  // namespace adx
