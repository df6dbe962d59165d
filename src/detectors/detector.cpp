#include <adx/detectors/detector.hpp>

#include <algorithm>

namespace adx {

std::vector<double> Scores::to_vector() const {
  const auto s = per_item.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

void Detector::check_input(const Data& data, const char* what, bool at_fit) const {
  validate(data, what);
  const auto accepted = modalities();
  if (std::find(accepted.begin(), accepted.end(), data.modality) == accepted.end()) {
    std::string names;
    for (auto m : accepted) names += (names.empty() ? "" : " or ") + std::string(modality_name(m));
    throw ShapeError(fmt::format("{} accepts {} data, got {} data of shape {}", type(), names,
                                 modality_name(data.modality), shape_string(data.x.sizes().vec())));
  }
  if (!at_fit) {
    ADX_CHECK_AS(ShapeError, data.modality == modality_,
                 "{} was fitted on {} data but got {} data", type(), modality_name(modality_),
                 modality_name(data.modality));
    ADX_CHECK_AS(ShapeError, data.item_shape() == item_shape_,
                 "{} was fitted on items of shape {} but got items of shape {} ({})", type(),
                 shape_string(item_shape_), shape_string(data.item_shape()), what);
  }
}

Data Detector::prepare(const Data& data) const {
  Data out = data;
  out.x = transform_.apply(data.x.to(torch::kFloat32)).to(device());
  if (out.masks.defined()) out.masks = out.masks.to(device());
  return out;
}

Preprocess Detector::resolved_preprocess(Modality modality) const {
  return preprocess() == Preprocess::Auto ? auto_preprocess(modality) : preprocess();
}

void Detector::apply_threads() const {
  set_num_threads(static_cast<int>(runtime().threads()), thread_placement(modality_));
}

void Detector::fit(const Data& train) { fit_impl(train, nullptr); }
void Detector::fit(const Data& train, const Data& validation) { fit_impl(train, &validation); }

void Detector::fit_impl(const Data& train_in, const Data* validation_in) {
  check_device(runtime().device());
  check_input(train_in, "training data", true);
  fitted_ = false;
  calibrated_ = false;
  modality_ = train_in.modality;
  apply_threads();
  seed_everything(static_cast<uint64_t>(runtime().seed()));

  Data train = train_in, validation;
  if (validation_in) {
    check_input(*validation_in, "validation data", true);
    ADX_CHECK_AS(ShapeError, validation_in->item_shape() == train_in.item_shape(),
                 "validation items have shape {} but training items have shape {}",
                 shape_string(validation_in->item_shape()), shape_string(train_in.item_shape()));
    validation = *validation_in;
  } else if (runtime().validation_fraction() > 0) {
    const double fraction = runtime().validation_fraction();
    ADX_CHECK_AS(OptionError, fraction < 1.0, "validation_fraction must be in [0, 1), got {}", fraction);
    const int64_t n = train_in.size();
    const int64_t n_val = static_cast<int64_t>(std::floor(fraction * static_cast<double>(n)));
    if (n_val >= 1 && n - n_val >= 2) {
      const auto order = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong));
      validation = train_in.select(order.slice(0, 0, n_val));
      train = train_in.select(order.slice(0, n_val, n));
    }
  }

  transform_ = Transform(resolved_preprocess(train.modality));
  transform_.fit(train.x.to(torch::kFloat32));
  item_shape_ = train.item_shape();
  const Data train_prepared = prepare(train);
  const Data val_prepared = validation.x.defined() ? prepare(validation) : Data{};

  build(item_shape_, modality_);
  fit_model(train_prepared, val_prepared);
  if (auto* m = model()) m->eval();
  fitted_ = true;

  // Calibrate on held-out normal data when there is enough of it; BestF1 needs labels.
  if (threshold_options().policy() != ThresholdPolicy::BestF1 && val_prepared.x.defined() &&
      val_prepared.size() >= min_calibration_samples(threshold_options())) {
    calibrate_raw(validation);
  }
}

// Scores raw (validated) data chunk by chunk: preprocessing per chunk keeps the
// working set small and never materialises a second copy of the whole input.
Scores Detector::score_raw(const Data& data) {
  if (auto* m = model()) m->eval();
  std::unique_ptr<torch::NoGradGuard> no_grad;
  if (!score_needs_grad()) no_grad = std::make_unique<torch::NoGradGuard>();
  const int64_t n = data.size();
  const int64_t chunk = std::max<int64_t>(1, runtime().score_batch_size());
  std::vector<torch::Tensor> per_item, maps;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    Scores part = score_model(prepare(data.slice(begin, std::min(n, begin + chunk))));
    per_item.push_back(part.per_item.detach().to(torch::kCPU, torch::kFloat32).reshape({-1}));
    if (part.pixel_map.defined()) maps.push_back(part.pixel_map.detach().to(torch::kCPU, torch::kFloat32));
  }
  Scores out;
  out.per_item = per_item.size() == 1 ? per_item[0] : torch::cat(per_item);
  if (!maps.empty()) out.pixel_map = maps.size() == 1 ? maps[0] : torch::cat(maps);
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
  return score(data).per_item > threshold_;
}

void Detector::calibrate_raw(const Data& normal) {
  const auto scores = score_raw(normal).to_vector();
  threshold_ = fit_threshold(scores, threshold_options());
  calibrated_ = true;
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
  ADX_CHECK_AS(ShapeError, static_cast<int64_t>(labels.size()) == data.size(),
               "calibration got {} labels for {} items", labels.size(), data.size());
  threshold_ = best_f1_threshold(labels, score(data).to_vector());
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

void Detector::save(const std::string& path) const {
  ADX_CHECK_AS(NotFittedError, fitted_, "{}: save() called before fit()", type());
  ModelFile file;
  file.type = type();
  file.options = options_map();
  file.tensors["meta.item_shape"] = torch::tensor(item_shape_, torch::kLong);
  file.tensors["meta.modality"] = torch::tensor({static_cast<int64_t>(modality_)}, torch::kLong);
  file.tensors["meta.threshold"] = torch::tensor({threshold_, calibrated_ ? 1.0 : 0.0}, torch::kFloat64);
  transform_.save_state(file.tensors, "preprocess.");
  auto* self = const_cast<Detector*>(this);
  if (auto* m = self->model()) module_state(*m, file.tensors, "model.");
  save_extra(file.tensors);
  write_model_file(path, file);
}

void Detector::restore(const ModelFile& file) {
  ADX_CHECK_AS(IoError, file.type == type(), "model file holds a '{}' detector, not '{}'", file.type, type());
  auto need = [&](const char* key) -> const torch::Tensor& {
    auto it = file.tensors.find(key);
    ADX_CHECK_AS(IoError, it != file.tensors.end(), "model file lacks '{}'", key);
    return it->second;
  };
  const auto shape = need("meta.item_shape").to(torch::kLong).contiguous();
  item_shape_.assign(shape.data_ptr<int64_t>(), shape.data_ptr<int64_t>() + shape.numel());
  const auto modality = need("meta.modality").item<int64_t>();
  ADX_CHECK_AS(IoError, modality == 0 || modality == 1, "model file has unknown modality {}", modality);
  modality_ = static_cast<Modality>(modality);
  const auto threshold = need("meta.threshold").to(torch::kFloat64);
  ADX_CHECK_AS(IoError, threshold.numel() == 2, "model file has a malformed threshold record");
  threshold_ = threshold[0].item<double>();
  calibrated_ = threshold[1].item<double>() != 0.0;
  transform_ = Transform(resolved_preprocess(modality_));
  transform_.load_state(file.tensors, "preprocess.");
  check_device(runtime().device());
  apply_threads();
  build(item_shape_, modality_);
  if (auto* m = model()) {
    load_module_state(*m, file.tensors, "model.");
    m->eval();
  }
  load_extra(file.tensors);
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
