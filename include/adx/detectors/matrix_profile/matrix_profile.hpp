#pragma once
// Matrix-profile discords (Yeh et al., ICDM 2016; Zhu et al., STOMP, ICDM 2016), exact: a window's
// score is its distance to the nearest training window, the AB-join matrix profile of the scored
// series against the training series. By default the distance is the plain Euclidean one of the raw
// windows (stumpy's normalize=False, the non-normalised matrix profile): on real monitoring series the
// anomalies are mostly changes of level and amplitude, which z-normalisation removes (docs/series.md
// gives the figures). With `normalize`, the classic matrix profile: every channel of a window is
// z-normalised first, so d^2 = 2 W (1 - Pearson correlation) summed over the channels; a constant
// channel (standard deviation below 1e-7) counts as all zeros, so two constant windows are 0 apart and
// a constant and a varying one sqrt(W) per channel, as stumpy defines it.
//
// The dot products of all window pairs are one matrix product per block of windows (BLAS, float64),
// which computes the same numbers as STOMP's sliding recurrence without its sequential dependence;
// the steps the training windows cover and their starts are kept in the model file. A step scores the
// largest distance of the windows covering it (`step_score` max, as discords are read), or their
// mean. Every training window joins the reference (no tail is held out): the threshold is calibrated
// on the self-join matrix profile of the training series, each training window scored against the
// training windows that share no step with it (an exclusion zone of one window length, so a window
// never matches a shifted copy of itself), assembled per step as scoring does. A scored series that
// contains a training window scores 0 there (the window matches itself).
//
//   adx::MatrixProfile profile;
//   profile.fit(adx::Data::series(history, {100, 1}));
//   auto per_step = profile.score(adx::Data::series(recent, {100, 1})).per_step;
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

namespace adx {

struct MatrixProfileOptions {
  ADX_OPTIONS_STRUCT;
  /// Z-normalise each channel of each window before comparing (the classic matrix profile); false
  /// (the default, chosen on real monitoring series) compares raw windows.
  ADX_ARG(bool, normalize) = false;
  /// Training windows compared per matrix product (bounds memory: score_batch_size x block float64).
  ADX_ARG(int64_t, block) = 4096;
  /// A step's score: the largest distance of the windows covering it (`max`, discord style) or their
  /// mean.
  ADX_ARG(StepAssembly, step_score) = StepAssembly::Max;
  // Raw windows keep their units (with normalize, each window is normalised on its own anyway).
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  void check(const std::string& prefix) const;
};

/// The rows the distances are computed on: every window of `windows` (B x W x D) flattened, each
/// channel z-normalised when `normalize` (a constant channel becomes zeros), float64.
torch::Tensor matrix_profile_rows(const torch::Tensor& windows, bool normalize);

/// For every row of `queries`, the Euclidean distance to its nearest row of `reference` (both from
/// matrix_profile_rows), and that row's index; `block` reference rows per matrix product.
std::pair<torch::Tensor, torch::Tensor> nearest_rows(const torch::Tensor& queries, const torch::Tensor& reference,
                                                     int64_t block);

/// The self-join matrix profile: for every row of `rows` (from matrix_profile_rows), the distance to its
/// nearest row whose window start (`starts`, one per row) differs by at least `min_gap` steps; infinity
/// where no row lies that far away. `block` rows per matrix product.
torch::Tensor nearest_rows_apart(const torch::Tensor& rows, const torch::Tensor& starts, int64_t min_gap,
                                 int64_t block);

class MatrixProfile : public DetectorWithOptions<MatrixProfileOptions> {
 public:
  using Options = MatrixProfileOptions;
  explicit MatrixProfile(Options options = Options()) : DetectorWithOptions(std::move(options)) {}
  std::string type() const override { return "matrix_profile"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }
  /// The training windows as compared (matrix_profile_rows of them).
  const torch::Tensor& reference_rows() const { return reference_; }
  StepAssembly step_assembly() const override { return options_.step_score(); }
  /// Keeps every training window and calibrates on the self-join (see above).
  bool holds_out_validation() const override { return false; }

 protected:
  void build(const std::vector<int64_t>&, const InputKind&) override { reference_ = torch::Tensor(); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  void rebuild_reference();
  torch::Tensor steps_, starts_;  // the training steps the windows cover (T x D) and the windows' starts
  torch::Tensor reference_;       // matrix_profile_rows of the training windows, on device()
};

}  // namespace adx
