#pragma once
// The detector interface shared by every modality:
//   fit(train) -> score(data) -> predict(data), calibrate, save; adx::load reads any saved detector.
// A detector implements a handful of hooks (build, fit, score, state); the base
// class does validation, preprocessing, device and thread handling, hold-out
// calibration of the threshold and persistence, so no detector repeats them.
#include <adx/core/error.hpp>
#include <adx/core/options.hpp>
#include <adx/core/progress.hpp>
#include <adx/core/runtime.hpp>
#include <adx/data/data.hpp>
#include <adx/data/transforms.hpp>
#include <adx/io/model_file.hpp>
#include <adx/threshold/threshold.hpp>

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace adx {

/// Device, threads, seed and the hold-out split; nested in every detector's options as "runtime".
struct RuntimeOptions {
  ADX_OPTIONS_STRUCT;
  /// "cpu", "cuda" or "cuda:N"; the model and every tensor it makes live there.
  ADX_ARG(std::string, device) = "cpu";
  /// Intra-op threads (0 = all hardware threads).
  ADX_ARG(int64_t, threads) = 0;
  /// Seed of every random choice in fit; equal seeds give equal models on CPU.
  ADX_ARG(int64_t, seed) = 0;
  /// Fraction of the training data held out for early stopping and threshold calibration.
  ADX_ARG(double, validation_fraction) = 0.1;
  /// Items per forward pass when scoring.
  ADX_ARG(int64_t, score_batch_size) = 2048;

 public:
  template <class V>
  void visit(V& v) {
    v("device", device_);
    v("threads", threads_);
    v("seed", seed_);
    v("validation_fraction", validation_fraction_);
    v("score_batch_size", score_batch_size_);
  }
};

/// Declares the options every detector has: `preprocess` (with its default),
/// `threshold` and `runtime`. List them in visit() with ADX_VISIT_DETECTOR_OPTIONS(v).
#define ADX_DETECTOR_OPTIONS(default_preprocess)                     \
  /** Preprocessing fitted on the training data. */                   \
  ADX_ARG(::adx::Preprocess, preprocess) = default_preprocess;        \
  /** How fit() and calibrate() set the threshold. */                 \
  ADX_ARG(::adx::ThresholdOptions, threshold) = ::adx::ThresholdOptions(); \
  /** Device, threads, seed, hold-out. */                             \
  ADX_ARG(::adx::RuntimeOptions, runtime) = ::adx::RuntimeOptions()

#define ADX_VISIT_DETECTOR_OPTIONS(v) \
  v("preprocess", preprocess_);       \
  v("threshold", threshold_);         \
  v("runtime", runtime_)

/// Result of score(): higher means more anomalous.
struct Scores {
  torch::Tensor per_item;   ///< N scores (float32, CPU)
  torch::Tensor pixel_map;  ///< optional dense map (N x 1 x H x W for images)
  std::vector<double> to_vector() const;
};

class Detector {
 public:
  virtual ~Detector() = default;

  /// Registry name, also the type tag in model files.
  virtual std::string type() const = 0;
  /// Options as key/value pairs (what a model file stores).
  virtual OptionMap options_map() const = 0;
  /// Which input kinds the detector accepts.
  virtual std::vector<Modality> modalities() const = 0;

  /// Learns from normal data. Holds out runtime.validation_fraction of it for
  /// early stopping and for calibrating the threshold.
  void fit(const Data& train);
  /// Learns from `train`; `validation` (normal data) drives early stopping and calibration.
  void fit(const Data& train, const Data& validation);

  /// Anomaly scores (higher = more anomalous).
  Scores score(const Data& data);
  /// True where score > threshold. Throws if not fitted or not calibrated.
  torch::Tensor predict(const Data& data);

  /// Sets the threshold from held-out normal data with the options' policy.
  void calibrate(const Data& normal);
  /// Sets the threshold that maximises F1 on labelled data (1 = anomaly).
  void calibrate(const Data& data, const std::vector<int>& labels);
  void set_threshold(double threshold);
  double threshold() const;
  bool fitted() const { return fitted_; }
  bool calibrated() const { return calibrated_; }

  /// Writes the detector to one file, atomically.
  void save(const std::string& path) const;
  /// Restores fitted state from a model file (used by adx::load).
  void restore(const ModelFile& file);

  /// Receives one report per training epoch.
  void set_progress(ProgressCallback callback) { progress_ = std::move(callback); }
  /// Shape of one item seen in fit (empty before fit).
  const std::vector<int64_t>& item_shape() const { return item_shape_; }
  torch::Device device() const { return torch::Device(runtime().device()); }

 protected:
  virtual const RuntimeOptions& runtime() const = 0;
  virtual const ThresholdOptions& threshold_options() const = 0;
  virtual Preprocess preprocess() const = 0;

  /// Creates the model for items of `item_shape` on device().
  virtual void build(const std::vector<int64_t>& item_shape, Modality modality) = 0;
  /// Trains on preprocessed data already on device(); `validation` may be empty.
  virtual void fit_model(const Data& train, const Data& validation) = 0;
  /// Scores one preprocessed chunk on device(); returns N scores (and optionally a map).
  virtual Scores score_model(const Data& data) = 0;
  /// The module whose parameters and buffers are the fitted state (nullptr: none).
  virtual torch::nn::Module* model() { return nullptr; }
  /// Fitted state outside the module.
  virtual void save_extra(TensorMap& /*state*/) const {}
  virtual void load_extra(const TensorMap& /*state*/) {}
  /// Scoring needs autograd (e.g. latent search); default scoring runs without it.
  virtual bool score_needs_grad() const { return false; }
  /// Which thread pool gets runtime.threads for inputs of `modality`: BLAS for
  /// dense networks (tabular data), the intra-op pool for convolutional ones (images).
  virtual ThreadPlacement thread_placement(Modality modality) const {
    return modality == Modality::Image ? ThreadPlacement::IntraOp : ThreadPlacement::Blas;
  }
  /// What preprocess = auto means for a modality.
  virtual Preprocess auto_preprocess(Modality modality) const {
    return modality == Modality::Image ? Preprocess::MinMax : Preprocess::Standardize;
  }
  /// Applies runtime.threads with thread_placement() for the modality in use.
  void apply_threads() const;

  const ProgressCallback& progress() const { return progress_; }

 private:
  void fit_impl(const Data& train, const Data* validation);
  void check_input(const Data& data, const char* what, bool at_fit) const;
  Data prepare(const Data& data) const;
  Preprocess resolved_preprocess(Modality modality) const;
  Scores score_raw(const Data& data);
  void calibrate_raw(const Data& normal);

  bool fitted_ = false;
  bool calibrated_ = false;
  double threshold_ = 0.0;
  std::vector<int64_t> item_shape_;
  Modality modality_ = Modality::Tabular;
  Transform transform_;
  ProgressCallback progress_;
};

/// Base for detectors with an options struct `Options` that nests `runtime`,
/// `threshold` and has `preprocess`.
template <class Options>
class DetectorWithOptions : public Detector {
 public:
  explicit DetectorWithOptions(Options options) : options_(std::move(options)) {}
  const Options& options() const { return options_; }
  OptionMap options_map() const override { return to_option_map(options_); }

 protected:
  const RuntimeOptions& runtime() const override { return options_.runtime(); }
  const ThresholdOptions& threshold_options() const override { return options_.threshold(); }
  Preprocess preprocess() const override { return options_.preprocess(); }
  Options options_;
};

/// Applies `fn` to consecutive row chunks of `x` without autograd and concatenates the results
/// (fitting statistics on whole training sets without holding every activation at once).
inline torch::Tensor map_in_chunks(const torch::Tensor& x, int64_t chunk,
                                   const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  chunk = std::max<int64_t>(1, chunk);
  for (int64_t b = 0; b < x.size(0); b += chunk) parts.push_back(fn(x.slice(0, b, std::min(x.size(0), b + chunk))));
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

/// Copies a module's parameters and buffers into `state` under `prefix`.
void module_state(torch::nn::Module& module, TensorMap& state, const std::string& prefix);
/// Loads parameters and buffers from `state`; a missing or misshapen entry is IoError naming it.
void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& prefix);

}  // namespace adx
