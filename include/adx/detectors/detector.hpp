#pragma once
// The detector interface shared by every input kind:
//   fit(train) -> score(data) -> predict(data), calibrate, save; adx::load reads any saved detector.
// A detector implements a handful of hooks (build, fit, score, state); the base
// class does validation, preprocessing, device and thread handling, hold-out
// calibration of the threshold and persistence, so no detector repeats them.
#include <adx/core/error.hpp>
#include <adx/core/options.hpp>
#include <adx/core/progress.hpp>
#include <adx/core/runtime.hpp>
#include <adx/data/data.hpp>
#include <adx/data/input_kind.hpp>
#include <adx/data/transforms.hpp>
#include <adx/io/model_file.hpp>
#include <adx/threshold/threshold.hpp>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

// Only the tensor and device types: the light include base.hpp does not pull in LibTorch's nn,
// optim and autograd front end; each detector header includes that front end itself.
namespace torch::nn {
class Module;
}

namespace adx {

/// Device, threads, seed and the hold-out split; nested in every detector's options as "runtime".
struct RuntimeOptions {
  ADX_OPTIONS_STRUCT;
  /// "cpu", "cuda" or "cuda:N"; the model and every tensor it makes live there.
  ADX_ARG(std::string, device) = "cpu";
  /// Threads for LibTorch and BLAS alike (0 = all hardware threads).
  ADX_ARG(int64_t, threads) = 0;
  /// Seed of every random choice in fit; equal seeds give equal models on CPU.
  ADX_ARG(int64_t, seed) = 0;
  /// Fraction of the training data held out for early stopping and threshold calibration.
  ADX_ARG(double, validation_fraction) = 0.1;
  /// Items per forward pass when scoring.
  ADX_ARG(int64_t, score_batch_size) = 2048;

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// Declares the options every detector has: `preprocess` (with its default),
/// `threshold` and `runtime`.
#define ADX_DETECTOR_OPTIONS(default_preprocess)                                      \
  /** Preprocessing fitted on the training data. */                                   \
  ADX_ARG_IN_SLOT(::adx::Preprocess, preprocess, 0) = default_preprocess;             \
  /** How fit() and calibrate() set the threshold. */                                 \
  ADX_ARG_IN_SLOT(::adx::ThresholdOptions, threshold, 1) = ::adx::ThresholdOptions(); \
  /** Device, threads, seed, hold-out. */                                             \
  ADX_ARG_IN_SLOT(::adx::RuntimeOptions, runtime, 2) = ::adx::RuntimeOptions()

/// What fit() keeps for drift monitoring (serve/production.hpp), saved in the model file.
struct DriftReference {
  at::Tensor features;                  ///< up to kDriftReferenceRows rows of drift_features(training data)
  std::vector<std::string> feature_names;  ///< one per column
  std::vector<double> scores;              ///< the normal scores the threshold was set on (held-out or left-out)
};
inline constexpr int64_t kDriftReferenceRows = 2000;

class Detector {
 public:
  virtual ~Detector() = default;

  /// Registry name, also the type tag in model files.
  virtual std::string type() const = 0;
  /// Options as key/value pairs (what a model file stores).
  virtual OptionMap options_map() const = 0;
  /// Names of the input kinds the detector accepts (kinds::kTabular, ...).
  virtual std::vector<std::string> input_kinds() const = 0;
  /// Whether input_kinds() holds `kind`.
  bool accepts(const std::string& kind) const;

  /// Learns from normal data. Holds out runtime.validation_fraction of it for
  /// early stopping and for calibrating the threshold; detectors that keep every
  /// training item (holds_out_validation() false) calibrate on left-out scores instead.
  void fit(const Data& train);
  /// Learns from `train`; `validation` (normal data) drives early stopping and calibration.
  void fit(const Data& train, const Data& validation);

  /// Anomaly scores (higher = more anomalous): per item, and for series and
  /// video also per time step / frame (Scores::per_step).
  Scores score(const Data& data);
  /// True where score > threshold: per item, where a score that is not finite (an overflow) is flagged
  /// too (is_flagged), or for series and video per step / frame, where NaN marks a step left unscored and
  /// is not flagged.
  /// Throws if not fitted or not calibrated.
  at::Tensor predict(const Data& data);

  /// Sets the threshold from held-out normal data with the options' policy (on per-step
  /// scores for series and video).
  void calibrate(const Data& normal);
  /// Sets the threshold that maximises F1 on labelled data (1 = anomaly): one label per
  /// item, or per step / frame for series and video.
  void calibrate(const Data& data, const std::vector<int>& labels);
  void set_threshold(double threshold);
  double threshold() const;
  bool fitted() const { return fitted_; }
  bool calibrated() const { return calibrated_; }

  /// Writes the detector to one file, atomically. In a distributed run every rank calls it (a sharded
  /// PatchCore bank is gathered) and rank 0 writes.
  void save(const std::string& path) const;
  /// What save() writes (an ensemble nests its members' files in its own).
  ModelFile to_model_file() const;
  /// Names this model for deployments (recorded in the model file; `adx info` shows it).
  /// fit() sets "<type>-<UTC time of fit>".
  void set_version(const std::string& version);
  /// Version, creation time, adx version and training-data fingerprint (empty before fit).
  const ModelInfo& model_info() const { return info_; }
  /// Reference values for drift monitoring (empty before fit, and in files from before they were kept).
  const DriftReference& drift_reference() const { return reference_; }
  /// Names the drift reference's features after fit, e.g. a table's CSV column names (fit names them
  /// x0, x1, ...). One name per feature, each non-empty and without commas; else a ValueError.
  void set_feature_names(const std::vector<std::string>& names);
  /// Restores fitted state from a model file (used by adx::load).
  void restore(const ModelFile& file);
  /// Checks every option's value (ranges, finiteness, the device); the first bad one
  /// is an OptionError naming it. fit() and make_detector() call it before any work.
  virtual void validate_options() const = 0;

  /// Receives one report per training epoch.
  void set_progress(ProgressCallback callback) { progress_ = std::move(callback); }
  /// Shape of one item seen in fit (empty before fit).
  const std::vector<int64_t>& item_shape() const { return item_shape_; }
  /// Input kind seen in fit (nullptr before fit).
  const InputKind* fitted_kind() const { return kind_; }
  c10::Device device() const { return c10::Device(runtime().device()); }
  /// How series and video scores per step are assembled from the windows or clips covering a step.
  virtual StepAssembly step_assembly() const { return StepAssembly::Mean; }

 protected:
  virtual const RuntimeOptions& runtime() const = 0;
  virtual const ThresholdOptions& threshold_options() const = 0;
  virtual Preprocess preprocess() const = 0;

  /// Creates the model for items of `item_shape` of `kind` on device().
  virtual void build(const std::vector<int64_t>& item_shape, const InputKind& kind) = 0;
  /// Trains on preprocessed data already on device(); `validation` may be empty (size() 0).
  virtual void fit_model(const Data& train, const Data& validation) = 0;
  /// Scores one preprocessed batch on device(); returns one score per item (and optionally maps).
  virtual Scores score_model(const Batch& batch) = 0;
  /// The module whose parameters and buffers are the fitted state (nullptr: none).
  virtual torch::nn::Module* model() { return nullptr; }
  /// Fitted state outside the module.
  virtual void save_extra(TensorMap& /*state*/) const {}
  virtual void load_extra(const TensorMap& /*state*/) {}
  /// Whether fit(train) holds out runtime.validation_fraction for early stopping and calibration.
  /// Detectors without gradient training (memory banks, Gaussians) keep every item instead and
  /// calibrate on set_left_out_scores().
  virtual bool holds_out_validation() const { return true; }
  /// Called from fit_model(): per-item scores of the training items (per step for kinds with steps, whose
  /// thresholds are per step), each scored without its own contribution to the fitted state
  /// (leave-one-out). fit(train) sets the threshold on them when no validation data was given or held out.
  void set_left_out_scores(const at::Tensor& per_item) { left_out_scores_ = per_item; }
  /// Weakly supervised detectors learn from Data::sequence_labels (one label per video) and
  /// refuse data without them; every other detector refuses data that has them.
  virtual bool learns_from_sequence_labels() const { return false; }
  /// Scoring needs autograd (e.g. latent search); default scoring runs without it.
  virtual bool score_needs_grad() const { return false; }
  /// The most items one scoring pass of the network takes (0: runtime.score_batch_size alone decides).
  /// Detectors whose items make large activations bound it, so the activations' memory is reused pass
  /// after pass instead of allocated (and faulted in) anew for a whole score batch.
  virtual int64_t items_per_scoring_pass() const { return 0; }
  /// What preprocess = auto means for a kind; the kind's own default unless a detector knows better.
  virtual Preprocess auto_preprocess(const InputKind& kind) const { return kind.default_preprocess(); }
  /// Applies runtime.threads.
  void apply_threads() const;

  const ProgressCallback& progress() const { return progress_; }
  /// Validates `data` against the kind and item shape seen in fit (for detectors that offer
  /// more than score(), e.g. per-edge scores).
  void check_input(const Data& data, const char* what, bool at_fit) const;
  /// Applies the fitted preprocessing and moves the data to device().
  Data prepare(const Data& data) const;

 private:
  void fit_impl(const Data& train, const Data* validation);
  Preprocess resolved_preprocess(const InputKind& kind) const;
  Scores score_raw(const Data& data);
  void calibrate_raw(const Data& normal);

  bool fitted_ = false;
  bool calibrated_ = false;
  double threshold_ = 0.0;
  std::vector<int64_t> item_shape_;
  const InputKind* kind_ = nullptr;
  Transform transform_;
  ProgressCallback progress_;
  at::Tensor left_out_scores_;
  ModelInfo info_;
  DriftReference reference_;
};

/// Base for detectors with an options struct `Options` that nests `runtime`,
/// `threshold` and has `preprocess`.
template <class Options>
class DetectorWithOptions : public Detector {
 public:
  /// Refuses out-of-range options here (check_options), before any work.
  explicit DetectorWithOptions(Options options) : options_(std::move(options)) { check_options(options_); }
  const Options& options() const { return options_; }
  OptionMap options_map() const override { return to_option_map(options_); }
  void validate_options() const override { check_options(options_); }

 protected:
  const RuntimeOptions& runtime() const override { return options_.runtime(); }
  const ThresholdOptions& threshold_options() const override { return options_.threshold(); }
  Preprocess preprocess() const override { return options_.preprocess(); }
  Options options_;
};

/// Copies a module's parameters and buffers into `state` under `prefix`.
void module_state(torch::nn::Module& module, TensorMap& state, const std::string& prefix);
/// Loads parameters and buffers from `state`; a missing or misshapen entry is IoError naming it.
void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& prefix);

}  // namespace adx
