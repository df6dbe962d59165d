#include <adx/detectors/matrix_profile/matrix_profile.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {
namespace {

// stumpy's threshold for a constant subsequence (config.STUMPY_STDDEV_THRESHOLD).
constexpr double kConstantStd = 1e-7;
constexpr const char* kProfileStatePrefix = "matrix_profile.";

}  // namespace

void MatrixProfileOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).at_least("block", block(), 1);
}

torch::Tensor matrix_profile_rows(const torch::Tensor& windows, bool normalize) {
  ADX_CHECK_AS(ShapeError, windows.dim() == 3, "matrix profile: windows must be B x W x D, got {}",
               shape_string(windows.sizes().vec()));
  auto w = windows.to(torch::kFloat64);
  if (normalize) {
    const auto mean = w.mean(1, true);
    const auto centred = w - mean;
    const auto std = centred.pow(2).mean(1, true).sqrt();
    const auto varying = std >= kConstantStd;
    w = torch::where(varying, centred / std.clamp_min(kConstantStd), torch::zeros_like(centred));
  }
  return w.reshape({w.size(0), -1}).contiguous();
}

namespace {

// ||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r for every pair, from the rows' squared norms: one matrix product.
torch::Tensor squared_distances(const torch::Tensor& q, const torch::Tensor& q_norms, const torch::Tensor& r,
                                const torch::Tensor& r_norms) {
  return torch::addmm(q_norms.unsqueeze(1) + r_norms.unsqueeze(0), q, r.t(), 1.0, -2.0);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> nearest_rows(const torch::Tensor& queries, const torch::Tensor& reference,
                                                     int64_t block) {
  ADX_CHECK_AS(ShapeError,
               queries.dim() == 2 && reference.dim() == 2 && queries.size(1) == reference.size(1) &&
                   reference.size(0) >= 1,
               "matrix profile: {} query rows against {} reference rows", shape_string(queries.sizes().vec()),
               shape_string(reference.sizes().vec()));
  const auto q = queries.to(reference.options());
  const auto query_norms = q.pow(2).sum(1);
  auto best = torch::full({q.size(0)}, std::numeric_limits<double>::infinity(), q.options());
  auto index = torch::zeros({q.size(0)}, q.options().dtype(torch::kLong));
  for (int64_t begin = 0; begin < reference.size(0); begin += block) {
    const auto r = reference.slice(0, begin, begin + block);
    const auto [value, at] = squared_distances(q, query_norms, r, r.pow(2).sum(1)).min(1);
    const auto better = value < best;
    best = torch::where(better, value, best);
    index = torch::where(better, at + begin, index);
  }
  // Rounding can leave a tiny negative square for a window equal to its match.
  return {best.clamp_min(0.0).sqrt(), index};
}

torch::Tensor nearest_rows_apart(const torch::Tensor& rows, const torch::Tensor& starts, int64_t min_gap,
                                 int64_t block) {
  ADX_CHECK_AS(ShapeError, rows.dim() == 2 && starts.dim() == 1 && starts.size(0) == rows.size(0),
               "matrix profile self-join: {} rows with {} window starts", shape_string(rows.sizes().vec()),
               shape_string(starts.sizes().vec()));
  const int64_t n = rows.size(0);
  const auto s = starts.to(rows.device(), torch::kLong);
  const auto norms = rows.pow(2).sum(1);
  auto best = torch::full({n}, std::numeric_limits<double>::infinity(), rows.options());
  // Query rows per pass, so that one pass holds at most 2^22 distances besides the block's.
  const int64_t queries_per_pass = std::max<int64_t>(1, (int64_t{1} << 22) / block);
  for (int64_t q0 = 0; q0 < n; q0 += queries_per_pass) {
    const int64_t q1 = std::min(n, q0 + queries_per_pass);
    const auto q = rows.slice(0, q0, q1), q_norms = norms.slice(0, q0, q1), q_starts = s.slice(0, q0, q1);
    auto q_best = best.slice(0, q0, q1);
    for (int64_t r0 = 0; r0 < n; r0 += block) {
      const int64_t r1 = std::min(n, r0 + block);
      auto squared = squared_distances(q, q_norms, rows.slice(0, r0, r1), norms.slice(0, r0, r1));
      // The exclusion zone: windows this close overlap the query (trivial matches).
      const auto near = (q_starts.unsqueeze(1) - s.slice(0, r0, r1).unsqueeze(0)).abs() < min_gap;
      squared.masked_fill_(near, std::numeric_limits<double>::infinity());
      q_best.copy_(torch::minimum(q_best, std::get<0>(squared.min(1))));
    }
  }
  return best.clamp_min(0.0).sqrt();
}

void MatrixProfile::rebuild_reference() {
  const int64_t window = item_shape().at(0);
  // steps_.unfold: one row per possible start, T - W + 1 x D x W; the training windows' rows, as B x W x D.
  const auto windows =
      steps_.unfold(0, window, 1).index_select(0, starts_.to(steps_.device())).permute({0, 2, 1});
  reference_ = matrix_profile_rows(windows, options_.normalize()).to(device());
}

void MatrixProfile::fit_model(const Data& train, const Data&) {
  const auto starts = train.items.cpu();
  ADX_CHECK_AS(ValueError, starts.numel() >= 1, "matrix_profile: no training windows");
  const int64_t lo = starts.min().item<int64_t>();
  const int64_t hi = starts.max().item<int64_t>() + item_shape().at(0);
  steps_ = train.x.slice(0, lo, hi).to(torch::kCPU, torch::kFloat64).contiguous();
  starts_ = starts - lo;
  rebuild_reference();
  // The threshold's scores: the self-join with an exclusion zone of one window, per step as scored.
  Scores left_out;
  left_out.per_item = nearest_rows_apart(reference_, starts_, item_shape().at(0), options_.block())
                          .to(torch::kCPU, torch::kFloat32);
  train.input_kind().assemble(train, left_out, step_assembly());
  set_left_out_scores(left_out.per_step);
}

Scores MatrixProfile::score_model(const Batch& batch) {
  Scores s;
  s.per_item = nearest_rows(matrix_profile_rows(batch.x, options_.normalize()), reference_, options_.block())
                   .first.to(torch::kCPU, torch::kFloat32);
  return s;
}

void MatrixProfile::save_extra(TensorMap& state) const {
  state[std::string(kProfileStatePrefix) + "steps"] = steps_;
  state[std::string(kProfileStatePrefix) + "starts"] = starts_;
}

void MatrixProfile::load_extra(const TensorMap& state) {
  const std::string steps_key = std::string(kProfileStatePrefix) + "steps", starts_key = std::string(kProfileStatePrefix) + "starts";
  ADX_CHECK_AS(IoError, state.count(steps_key) && state.count(starts_key), "model file lacks '{}' or '{}'",
               steps_key, starts_key);
  const auto& steps = state.at(steps_key);
  const auto& starts = state.at(starts_key);
  const int64_t window = item_shape().at(0);
  ADX_CHECK_AS(IoError,
               steps.dim() == 2 && steps.scalar_type() == torch::kFloat64 && item_shape().size() == 2 &&
                   steps.size(1) == item_shape()[1] && steps.size(0) >= window,
               "model file's '{}' has shape {}, not T x {} with T >= {}", steps_key,
               shape_string(steps.sizes().vec()), item_shape().size() == 2 ? item_shape()[1] : 0, window);
  ADX_CHECK_AS(IoError, starts.dim() == 1 && starts.scalar_type() == torch::kLong && starts.numel() >= 1,
               "model file's '{}' is not a list of window starts", starts_key);
  ADX_CHECK_AS(IoError, starts.min().item<int64_t>() >= 0 && starts.max().item<int64_t>() + window <= steps.size(0),
               "model file's window starts leave its {} steps", steps.size(0));
  ADX_CHECK_AS(IoError, steps.isfinite().all().item<bool>(), "model file's '{}' holds non-finite values", steps_key);
  steps_ = steps.contiguous();
  starts_ = starts.contiguous();
  rebuild_reference();
}

ADX_BUILTIN_DETECTOR(matrix_profile, factory_for<MatrixProfile>(),
                     "matrix-profile discord: distance to the nearest training window (raw, or z-normalised)")

}  // namespace adx
