#include <adx/core/hash.hpp>
#include <adx/data/drift_features.hpp>
#include <adx/core/distributed.hpp>
#include <adx/detectors/detector.hpp>

#include <ctime>
#include <chrono>
#include <algorithm>
#include <cmath>
#include <tuple>

namespace adx {

void RuntimeOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .in("threads", threads(), 0, 4096)
      .in("validation_fraction", validation_fraction(), 0.0, 1.0, "[)")
      .at_least("score_batch_size", score_batch_size(), 1);
  check_device(device());
}

namespace {

// The seed every rank uses: rank 0's, so that hold-out split and starting weights agree.
uint64_t agreed_seed(int64_t seed) {
  if (auto* group = current_process_group()) {
    auto value = torch::tensor({seed}, torch::kLong);
    group->broadcast(value, 0);
    seed = value.item<int64_t>();
  }
  return static_cast<uint64_t>(seed);
}

}  // namespace

namespace {

// The calibration scores kept for drift monitoring: at most this many, evenly spaced in sorted order.
constexpr size_t kReferenceScores = 5000;

std::vector<double> reference_scores(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  if (values.size() <= kReferenceScores) return values;
  std::vector<double> kept(kReferenceScores);
  for (size_t i = 0; i < kReferenceScores; ++i)
    kept[i] = values[i * (values.size() - 1) / (kReferenceScores - 1)];
  return kept;
}

std::string utc_now(const char* format) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), format, &utc);
  return text;
}

ModelInfo fingerprint(const Data& train, const std::string& type) {
  ModelInfo info;
  info.created_at = utc_now("%Y-%m-%dT%H:%M:%SZ");
  info.version = type + "-" + utc_now("%Y%m%dT%H%M%SZ");
  info.adx_version = adx_version();
  info.training_items = train.size();
  info.training_shape = train.x.sizes().vec();
  const auto values = train.x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  Fnv1a hash;
  hash.update(values.data_ptr(), values.nbytes());
  info.training_hash = hash.hex();
  return info;
}

// Everything a model records of its training data, in one place: the version and fingerprint (model_info)
// and the drift reference (drift_reference).
std::pair<ModelInfo, DriftReference> training_record(const Data& train, const std::string& type) {
  DriftReference reference;
  auto features = drift_features(train);
  reference.features = evenly_spaced_rows(features.values, kDriftReferenceRows).clone();
  reference.feature_names = std::move(features.names);
  return {fingerprint(train, type), std::move(reference)};
}

}  // namespace

bool Detector::accepts(const std::string& kind) const {
  const auto accepted = input_kinds();
  return std::find(accepted.begin(), accepted.end(), kind) != accepted.end();
}

void Detector::check_input(const Data& data, const char* what, bool at_fit) const {
  validate(data, what);
  const auto accepted = input_kinds();
  const auto name = data.kind->name();
  if (!accepts(name)) {
    std::string names;
    for (const auto& k : accepted) names += (names.empty() ? "" : " or ") + k;
    throw ShapeError(fmt::format("{} accepts {} data, got {} data of shape {}", type(), names, name,
                                 shape_string(data.x.sizes().vec())));
  }
  if (!at_fit) {
    ADX_CHECK_AS(ShapeError, name == kind_->name(), "{} was fitted on {} data but got {} data", type(),
                 kind_->name(), name);
    ADX_CHECK_AS(ShapeError, data.item_shape() == item_shape_,
                 "{} was fitted on items of shape {} but got items of shape {} ({})", type(),
                 shape_string(item_shape_), shape_string(data.item_shape()), what);
  }
}

Data Detector::prepare(const Data& data) const {
  Data out = data;
  out.x = transform_.apply(data.x.to(torch::kFloat32));
  return data.input_kind().to_device(out, device());
}

Preprocess Detector::resolved_preprocess(const InputKind& kind) const {
  return preprocess() == Preprocess::Auto ? auto_preprocess(kind) : preprocess();
}

void Detector::apply_threads() const { set_num_threads(static_cast<int>(runtime().threads())); }

void Detector::fit(const Data& train) { fit_impl(train, nullptr); }
void Detector::fit(const Data& train, const Data& validation) { fit_impl(train, &validation); }

void Detector::fit_impl(const Data& train_in, const Data* validation_in) {
  validate_options();
  // Training needs autograd even when the caller holds a NoGradGuard.
  torch::AutoGradMode grad_mode(true);
  check_input(train_in, "training data", true);
  if (learns_from_sequence_labels())
    ADX_CHECK_AS(ValueError, train_in.sequence_labels.defined(),
                 "{} is weakly supervised: fit() needs one label per video in sequence_labels (1 = it holds an "
                 "anomaly, 0 = normal), got none",
                 type());
  else
    ADX_CHECK_AS(ValueError, !train_in.sequence_labels.defined(),
                 "{} learns from normal data only, but the training data has {} sequence labels; pass only normal "
                 "videos and no sequence_labels (they are for weakly supervised detectors such as mil)",
                 type(), train_in.sequence_labels.numel());
  fitted_ = false;
  calibrated_ = false;
  const InputKind& kind = train_in.input_kind();
  kind_ = &kind;
  apply_threads();
  seed_everything(agreed_seed(runtime().seed()));

  Data train = train_in, validation;
  if (validation_in) {
    check_input(*validation_in, "validation data", true);
    ADX_CHECK_AS(ShapeError, validation_in->kind == train_in.kind, "validation data is {} data but training data is {}",
                 validation_in->kind_name(), train_in.kind_name());
    ADX_CHECK_AS(ShapeError, validation_in->item_shape() == train_in.item_shape(),
                 "validation items have shape {} but training items have shape {}",
                 shape_string(validation_in->item_shape()), shape_string(train_in.item_shape()));
    validation = *validation_in;
  } else if (holds_out_validation() && runtime().validation_fraction() > 0) {
    const double fraction = runtime().validation_fraction();
    std::tie(train, validation) = kind.holdout(train_in, fraction);
  }

  std::tie(info_, reference_) = training_record(train_in, type());
  transform_ = Transform(resolved_preprocess(kind));
  transform_.fit(kind.fit_values(train).to(torch::kFloat32));
  item_shape_ = train.item_shape();
  const Data train_prepared = prepare(train);
  const Data val_prepared = validation.size() > 0 ? prepare(validation) : Data{};

  try {
    build(item_shape_, kind);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw OptionError(fmt::format("{}: cannot build the model for items of shape {} with its options: {}", type(),
                                  shape_string(item_shape_), describe_exception(e)));
  }
  left_out_scores_ = torch::Tensor();
  fit_model(train_prepared, val_prepared);
  if (auto* m = model()) m->eval();
  fitted_ = true;

  // Calibrate on held-out normal data, else on left-out training scores, when there are enough;
  // BestF1 needs labels.
  const int64_t needed = min_calibration_samples(threshold_options());
  if (threshold_options().policy() != ThresholdPolicy::BestF1) {
    if (val_prepared.size() >= needed) {
      calibrate_raw(validation);
    } else if (left_out_scores_.defined()) {
      // An item with nothing left to compare against scores infinity; it says nothing about the threshold.
      const auto left_out = left_out_scores_.detach().to(torch::kCPU, torch::kFloat64).contiguous();
      std::vector<double> values;
      for (int64_t i = 0; i < left_out.numel(); ++i)
        if (std::isfinite(left_out.data_ptr<double>()[i])) values.push_back(left_out.data_ptr<double>()[i]);
      if (static_cast<int64_t>(values.size()) >= needed) {
        threshold_ = fit_threshold(values, threshold_options());
        calibrated_ = true;
        reference_.scores = reference_scores(std::move(values));
      }
    }
  }
  left_out_scores_ = torch::Tensor();
}

// Scores raw (validated) data chunk by chunk: preprocessing per chunk keeps the
// working set small and never materialises a second copy of the whole input.
Scores Detector::score_raw(const Data& data) {
  // Only a model left in training mode is switched: scoring threads share the module read-only.
  if (auto* m = model(); m && m->is_training()) m->eval();
  std::unique_ptr<torch::NoGradGuard> no_grad;
  if (!score_needs_grad()) no_grad = std::make_unique<torch::NoGradGuard>();
  const auto& kind = data.input_kind();
  const int64_t n = kind.size(data);
  int64_t requested = std::max<int64_t>(1, runtime().score_batch_size());
  if (const int64_t bound = items_per_scoring_pass(); bound > 0) requested = std::min(requested, bound);
  const int64_t chunk = kind.score_chunk(data, requested);
  std::vector<torch::Tensor> per_item, maps;
  InputKind::StepSums step_sums;
  step_sums.assembly = step_assembly();
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    Scores part = score_model(kind.collate(prepare(kind.slice(data, begin, end))));
    auto to_cpu = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32); };
    per_item.push_back(to_cpu(part.per_item).reshape({-1}));
    ADX_CHECK(per_item.back().size(0) == end - begin, "{} returned {} scores for {} items", type(),
              per_item.back().size(0), end - begin);
    if (part.pixel_map.defined()) maps.push_back(to_cpu(part.pixel_map));
    // Per-step scores are summed chunk by chunk: a long series never holds every window's map.
    kind.accumulate_steps(data, begin, part, step_sums);
  }
  auto join = [](const std::vector<torch::Tensor>& parts) {
    return parts.empty() ? torch::Tensor() : parts.size() == 1 ? parts[0] : torch::cat(parts);
  };
  Scores out;
  out.per_item = join(per_item);
  out.pixel_map = join(maps);
  kind.finish_steps(step_sums, out);
  return out;
}

Scores Detector::score(const Data& data) {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: score() called before fit()", type());
  check_input(data, "scoring data", false);
  apply_threads();
  return score_raw(data);
}

torch::Tensor Detector::predict(const Data& data) {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: predict() called before fit()", type());
  ADX_CHECK_AS(NotFittedError, calibrated_,
               "{}: predict() needs a threshold; call calibrate() on held-out normal data or set_threshold()",
               type());
  const auto scores = score(data);
  // Series and video are judged step by step (a step never scored is not flagged).
  // A step left unscored (before a forecaster's first window) is NaN and not flagged; an item whose
  // score overflowed to NaN is.
  if (scores.per_step.defined()) return scores.per_step > threshold_;
  // is_flagged on every item: above the threshold, or not finite.
  return scores.per_item.gt(threshold_).logical_or(scores.per_item.isfinite().logical_not());
}

void Detector::calibrate_raw(const Data& normal) {
  auto values = judged_scores(score_raw(normal));
  threshold_ = fit_threshold(values, threshold_options());
  calibrated_ = true;
  reference_.scores = reference_scores(std::move(values));
}

void Detector::calibrate(const Data& normal) {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: calibrate() called before fit()", type());
  check_input(normal, "calibration data", false);
  const int64_t needed = min_calibration_samples(threshold_options());
  ADX_CHECK_AS(ValueError, normal.size() >= needed, "{}: calibration needs at least {} normal items, got {}",
               type(), needed, normal.size());
  apply_threads();
  calibrate_raw(normal);
}

void Detector::calibrate(const Data& data, const std::vector<int>& labels) {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: calibrate() called before fit()", type());
  check_input(data, "calibration data", false);
  const auto& kind = data.input_kind();
  const int64_t expected = kind.has_steps() ? data.x.size(0) : data.size();
  ADX_CHECK_AS(ShapeError, static_cast<int64_t>(labels.size()) == expected, "calibration got {} labels for {} {}",
               labels.size(), expected, kind.has_steps() ? "steps" : "items");
  std::vector<int> kept;
  const auto values = judged_scores(score(data), &labels, &kept);
  threshold_ = best_f1_threshold(kept, values);
  calibrated_ = true;
}

void Detector::set_threshold(double threshold) {
  ADX_CHECK_AS(ValueError, std::isfinite(threshold), "threshold must be finite, got {}", threshold);
  threshold_ = threshold;
  calibrated_ = true;
}

double Detector::threshold() const {
  ADX_CHECK_AS(NotFittedError, calibrated_, "{}: no threshold has been calibrated", type());
  return threshold_;
}

void Detector::set_feature_names(const std::vector<std::string>& names) {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: set_feature_names() called before fit()", type());
  ADX_CHECK_AS(ValueError, names.size() == reference_.feature_names.size(),
               "{}: {} feature names given for {} drift features", type(), names.size(),
               reference_.feature_names.size());
  for (const auto& name : names)
    ADX_CHECK_AS(ValueError, !name.empty() && name.find(',') == std::string::npos,
                 "feature name '{}' must be non-empty and hold no comma", name);
  reference_.feature_names = names;
}

void Detector::set_version(const std::string& version) {
  ADX_CHECK_AS(ValueError, !version.empty() && version.size() <= 256,
               "a model version must be 1 to 256 characters, got {}", version.size());
  info_.version = version;
}

void Detector::save(const std::string& path) const {
  // In a distributed run every rank calls save() and rank 0 writes. Every rank assembles the file, since a
  // model spread over the ranks (PatchCore's sharded bank) gathers its parts while it does.
  const auto file = to_model_file();
  if (is_main_rank()) write_model_file(path, file);
}

ModelFile Detector::to_model_file() const {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: save() called before fit()", type());
  ModelFile file;
  file.type = type();
  file.options = options_map();
  file.tensors["meta.item_shape"] = torch::tensor(item_shape_, torch::kLong);
  file.metadata["input_kind"] = kind_->name();
  file.tensors["meta.threshold"] = torch::tensor({threshold_, calibrated_ ? 1.0 : 0.0}, torch::kFloat64);
  transform_.save_state(file.tensors, "preprocess.");
  auto* self = const_cast<Detector*>(this);
  if (auto* m = self->model()) module_state(*m, file.tensors, "model.");
  save_extra(file.tensors);
  info_.to_metadata(file.metadata);
  if (reference_.features.defined()) {
    file.tensors["meta.reference_features"] = reference_.features;
    std::string names;
    for (const auto& name : reference_.feature_names) names += (names.empty() ? "" : ",") + name;
    file.metadata["reference_features"] = names;
  }
  if (!reference_.scores.empty())
    file.tensors["meta.reference_scores"] = torch::tensor(reference_.scores, torch::kFloat64);
  return file;
}

void Detector::restore(const ModelFile& file) {
  ADX_CHECK_AS(IoError, file.type == type(), "model file holds a '{}' detector, not '{}'", file.type, type());
  validate_options();
  auto need = [&](const char* key) -> const torch::Tensor& {
    auto it = file.tensors.find(key);
    ADX_CHECK_AS(IoError, it != file.tensors.end(), "model file lacks '{}'", key);
    return it->second;
  };
  // Non-finite state would only surface later as NaN scores.
  for (const auto& [name, tensor] : file.tensors)
    ADX_CHECK_AS(IoError, !tensor.is_floating_point() || torch::isfinite(tensor).all().item<bool>(),
                 "model file holds non-finite values (NaN or Inf) in '{}'", name);
  const auto shape = need("meta.item_shape").to(torch::kLong).contiguous();
  ADX_CHECK_AS(IoError, shape.dim() == 1 && shape.numel() >= 1 && shape.numel() <= 8,
               "model file has a malformed item shape record of shape {}", shape_string(shape.sizes().vec()));
  item_shape_.assign(shape.data_ptr<int64_t>(), shape.data_ptr<int64_t>() + shape.numel());
  for (const int64_t d : item_shape_)
    ADX_CHECK_AS(IoError, d >= 1, "model file has an item shape {} with a dimension below 1",
                 shape_string(item_shape_));
  std::string kind_name;
  if (auto it = file.metadata.find("input_kind"); it != file.metadata.end()) {
    kind_name = it->second;
  } else {
    // Format 1 stored the kind as a number: 0 tabular, 1 image.
    const auto& modality = need("meta.modality");
    ADX_CHECK_AS(IoError, modality.numel() == 1, "model file has a malformed modality record of {} values",
                 modality.numel());
    const auto code = modality.to(torch::kDouble).item<double>();
    ADX_CHECK_AS(IoError, code == 0 || code == 1, "model file has unknown modality {}", code);
    kind_name = code == 0 ? kinds::kTabular : kinds::kImage;
  }
  try {
    kind_ = &input_kind(kind_name);
  } catch (const OptionError& e) {
    throw IoError(fmt::format("model file was fitted on an input kind this build does not know: {}", e.what()));
  }
  const auto threshold = need("meta.threshold").to(torch::kFloat64).contiguous();
  ADX_CHECK_AS(IoError, threshold.numel() == 2, "model file has a malformed threshold record");
  threshold_ = threshold.data_ptr<double>()[0];
  calibrated_ = threshold.data_ptr<double>()[1] != 0.0;
  transform_ = Transform(resolved_preprocess(*kind_));
  transform_.load_state(file.tensors, "preprocess.");
  apply_threads();
  {
    // The network is rebuilt from the file's options and item shape before its weights
    // are checked; a file that lies about them must not reserve more than it could hold.
    uint64_t stored = 0;
    for (const auto& [name, tensor] : file.tensors) stored += tensor.nbytes();
    CpuAllocationBudget budget(4 * stored + (uint64_t{256} << 20),
                               fmt::format("the model in the file (item shape {})", shape_string(item_shape_)));
    build(item_shape_, *kind_);
  }
  if (auto* m = model()) {
    load_module_state(*m, file.tensors, "model.");
    m->eval();
  }
  load_extra(file.tensors);
  info_ = ModelInfo::from_metadata(file.metadata);
  reference_ = DriftReference();
  if (auto it = file.tensors.find("meta.reference_features"); it != file.tensors.end()) {
    auto names_it = file.metadata.find("reference_features");
    const auto names = names_it == file.metadata.end() ? std::vector<std::string>() : split_commas(names_it->second);
    ADX_CHECK_AS(IoError, it->second.dim() == 2 && it->second.size(1) == static_cast<int64_t>(names.size()),
                 "model file has a drift reference of shape {} for {} feature names",
                 shape_string(it->second.sizes().vec()), names.size());
    reference_.features = it->second.to(torch::kFloat32);
    reference_.feature_names = names;
  }
  if (auto it = file.tensors.find("meta.reference_scores"); it != file.tensors.end()) {
    const auto scores = it->second.to(torch::kFloat64).contiguous().reshape({-1});
    reference_.scores.assign(scores.data_ptr<double>(), scores.data_ptr<double>() + scores.numel());
  }
  fitted_ = true;
}

void module_state(torch::nn::Module& module, TensorMap& state, const std::string& prefix) {
  for (const auto& p : module.named_parameters(true)) state[prefix + p.key()] = p.value().detach().cpu();
  for (const auto& b : module.named_buffers(true)) state[prefix + b.key()] = b.value().detach().cpu();
}

void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& prefix) {
  torch::NoGradGuard no_grad;
  auto load_one = [&](const std::string& name, torch::Tensor& target) {
    auto it = state.find(prefix + name);
    ADX_CHECK_AS(IoError, it != state.end(), "model file lacks parameter '{}{}'", prefix, name);
    ADX_CHECK_AS(IoError, it->second.sizes() == target.sizes(),
                 "parameter '{}{}' has shape {} in the file but {} in the model", prefix, name,
                 shape_string(it->second.sizes().vec()), shape_string(target.sizes().vec()));
    target.copy_(it->second.to(target.device(), target.scalar_type()));
  };
  for (auto& p : module.named_parameters(true)) load_one(p.key(), p.value());
  for (auto& b : module.named_buffers(true)) load_one(b.key(), b.value());
}

}  // namespace adx
