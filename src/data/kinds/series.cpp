// Series input: one or more multivariate series T x D stacked in x; an item is
// a window, scores come back per window and per time step.
#include "reading.hpp"
#include "sequence_kind.hpp"

#include <adx/core/error.hpp>
#include <adx/data/formats/loaders.hpp>

#include <torch/types.h>

namespace adx {
namespace {

class SeriesKind final : public SequenceKind {
 public:
  std::string name() const override { return kinds::kSeries; }
  void validate(const Data& data, const char* what) const override {
    validate_sequences(data, what, 2, "T x D");
    if (!data.timestamps.defined()) return;
    const int64_t steps = data.x.size(0);
    ADX_CHECK_AS(ShapeError, data.timestamps.numel() == steps, "{}: {} timestamps for {} steps", what,
                 data.timestamps.numel(), steps);
    // Strictly increasing within each series; the first step of a series may go back.
    const auto t = data.timestamps.cpu().to(torch::kDouble).reshape({-1});
    auto increasing = t.slice(0, 1).gt(t.slice(0, 0, -1));
    int64_t offset = 0;
    for (size_t k = 0; k + 1 < data.lengths.size(); ++k) {
      offset += data.lengths[k];
      increasing[offset - 1] = true;
    }
    const auto bad = increasing.logical_not().nonzero();
    if (bad.numel() > 0) {
      const int64_t row = bad[0][0].item<int64_t>() + 1;
      throw ValueError(fmt::format("{}: timestamps must increase within each series; row {} has {} after {}",
                                   what, row, t[row].item<double>(), t[row - 1].item<double>()));
    }
  }
  Preprocess default_preprocess() const override { return Preprocess::Standardize; }
  Data from_steps(at::Tensor steps, Windows windows) const override { return Data::series(steps, windows); }
  /// A series CSV with a header (its value columns go to `columns`) or an NPY of T x D.
  Data read(const std::string& path, const ReadOptions& options, std::vector<std::string>* columns) const override {
    ADX_CHECK_AS(OptionError, options.windows.length >= 1,
                 "series data need a window length (steps per window; --window in the adx command)");
    const bool npy = kind_reading::ends_with(path, ".npy");
    const auto series = npy ? load_series_npy(path) : load_series_csv(path);
    if (columns != nullptr && !npy) *columns = series.columns;
    return Data::series(series.values, options.windows, series.timestamps);
  }

 protected:
  const char* sequence_word() const override { return "series"; }
  const char* step_word() const override { return "step"; }
  const char* item_word() const override { return "window"; }
};

}  // namespace

std::shared_ptr<const InputKind> make_series_kind() { return std::make_shared<SeriesKind>(); }

Data Data::series(at::Tensor x, Windows windows, at::Tensor timestamps, at::Tensor labels) {
  if (x.defined() && x.dim() == 1) x = x.unsqueeze(1);  // a univariate series
  Data d = stack_sequences({x}, windows, adx::input_kind(kinds::kSeries), "series", "step");
  d.timestamps = std::move(timestamps);
  d.labels = std::move(labels);
  return d;
}

Data Data::series(const std::vector<at::Tensor>& sequences, Windows windows) {
  std::vector<at::Tensor> columns;
  for (const auto& s : sequences) columns.push_back(s.defined() && s.dim() == 1 ? s.unsqueeze(1) : s);
  return stack_sequences(columns, windows, adx::input_kind(kinds::kSeries), "series", "step");
}

}  // namespace adx
