#pragma once
// Preprocessing fitted on training data and stored in the detector:
// every transform is x' = (f(x) - shift) * scale, with f the identity or
// global contrast normalisation, so one pair of tensors carries its state.
#include <adx/core/options.hpp>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace adx {

enum class Preprocess {
  Auto,         ///< the detector's choice for the input kind
  None,         ///< identity
  Standardize,  ///< per-feature zero mean, unit variance
  MinMax,       ///< per-feature range [0, 1]
  GlobalMinMax, ///< one range for every value, [0, 1] over the training data (frames scaled as a whole)
  GcnMinMax,    ///< per-sample global contrast normalisation (L1), then global min-max to [0, 1]
};
ADX_ENUM_NAMES(Preprocess, {Preprocess::Auto, "auto"}, {Preprocess::None, "none"}, {Preprocess::Standardize, "standardize"},
               {Preprocess::MinMax, "minmax"}, {Preprocess::GlobalMinMax, "global_minmax"},
               {Preprocess::GcnMinMax, "gcn_minmax"});

/// Global contrast normalisation with the L1 norm (Ruff et al. 2018): per item,
/// subtract the mean and divide by the mean absolute deviation.
at::Tensor global_contrast_normalize(const at::Tensor& x);

class Transform {
 public:
  Transform() = default;
  explicit Transform(Preprocess kind) : kind_(kind) {}

  /// Learns the statistics from training data (N x ...).
  void fit(const at::Tensor& x);
  /// Applies the fitted transform; statistics follow x's device.
  at::Tensor apply(const at::Tensor& x) const;
  bool fitted() const { return kind_ == Preprocess::None || shift_.defined(); }
  Preprocess kind() const { return kind_; }

  /// State for persistence, under keys prefix + "shift" / "scale".
  void save_state(std::map<std::string, at::Tensor>& state, const std::string& prefix) const;
  void load_state(const std::map<std::string, at::Tensor>& state, const std::string& prefix);

 private:
  Preprocess kind_ = Preprocess::None;
  at::Tensor shift_;
  at::Tensor scale_;
};

}  // namespace adx
