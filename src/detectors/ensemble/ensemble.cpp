#include <adx/detectors/ensemble/ensemble.hpp>
#include <adx/detectors/registry.hpp>
#include "detectors/builtin_detector.hpp"

#include <algorithm>
#include <set>

namespace adx {

void EnsembleOptions::check(const std::string& prefix) const {
  const OptionChecks checks(prefix);
  const auto names = split_commas(members());
  checks.that(!names.empty(), "members", "must name at least one detector");
  std::set<std::string> seen;
  for (const auto& name : names) {
    checks.that(name != "ensemble", "members", "cannot hold an ensemble")
        .that(seen.insert(name).second, "members", "names '{}' twice", name);
  }
  if (combination() == EnsembleCombination::Weighted) {
    const auto items = split_commas(weights());
    checks.that(items.size() == names.size(), "weights", "needs {} weights (one per member), got {}", names.size(),
                items.size());
    double total = 0.0;
    for (const auto& item : items) {
      double w = -1.0;
      detail::option_from_string(checks.key("weights"), item, w);
      checks.that(std::isfinite(w) && w >= 0, "weights", "holds {}, weights must be >= 0", item);
      total += w;
    }
    checks.that(total > 0, "weights", "must not all be 0");
  }
}

namespace {

OptionMap member_defaults(const EnsembleOptions& options, OptionMap member) {
  // Members run where the ensemble runs; threads and seed follow it unless a member sets its own.
  member["runtime.device"] = options.runtime().device();
  member.emplace("runtime.threads", std::to_string(options.runtime().threads()));
  member.emplace("runtime.seed", std::to_string(options.runtime().seed()));
  return member;
}

}  // namespace

Ensemble::Ensemble(Options options, const std::map<std::string, OptionMap>& member_options)
    : DetectorWithOptions(std::move(options)) {
  options_.check("");
  const auto names = member_names();
  for (const auto& [name, map] : member_options)
    ADX_CHECK_AS(OptionError, std::find(names.begin(), names.end(), name) != names.end(),
                 "options given for '{}', which is not a member of the ensemble ({})", name, options_.members());
  for (const auto& name : names) {
    auto it = member_options.find(name);
    members_.push_back(make_detector(name, member_defaults(options_, it == member_options.end() ? OptionMap() : it->second)));
  }
}

Ensemble::Ensemble(Options options, std::vector<std::unique_ptr<Detector>> members)
    : DetectorWithOptions(std::move(options)), members_(std::move(members)) {
  std::string names;
  for (const auto& m : members_) {
    ADX_CHECK_AS(OptionError, m != nullptr, "an ensemble member is null");
    names += (names.empty() ? "" : ",") + m->type();
  }
  options_.members(names);
  options_.check("");
}

std::unique_ptr<Detector> Ensemble::create(const OptionMap& map) {
  const auto own_keys = to_option_map(Options());
  OptionMap own;
  std::map<std::string, OptionMap> per_member;
  std::vector<std::string> names;
  if (auto it = map.find("members"); it != map.end()) names = split_commas(it->second);
  for (const auto& [key, value] : map) {
    if (own_keys.count(key)) {
      own[key] = value;
      continue;
    }
    const auto dot = key.find('.');
    const auto member = key.substr(0, dot);
    if (dot == std::string::npos || std::find(names.begin(), names.end(), member) == names.end()) {
      std::string valid;
      for (const auto& kv : own_keys) valid += (valid.empty() ? "" : ", ") + kv.first;
      throw OptionError(fmt::format("unknown option '{}' for ensemble; valid options: {}, and '<member>.<option>' "
                                    "for the members ({})",
                                    key, valid, names.empty() ? std::string("none named") : map.at("members")));
    }
    per_member[member][key.substr(dot + 1)] = value;
  }
  return std::make_unique<Ensemble>(from_option_map<Options>(own), per_member);
}

std::vector<std::string> Ensemble::member_names() const { return split_commas(options_.members()); }

std::vector<double> Ensemble::weights() const {
  std::vector<double> out;
  for (const auto& item : split_commas(options_.weights())) {
    double w = 0.0;
    detail::option_from_string("weights", item, w);
    out.push_back(w);
  }
  return out;
}

OptionMap Ensemble::options_map() const {
  auto map = to_option_map(options_);
  for (size_t i = 0; i < members_.size(); ++i)
    for (const auto& [key, value] : members_[i]->options_map()) map[members_[i]->type() + "." + key] = value;
  return map;
}

std::vector<std::string> Ensemble::input_kinds() const {
  // A member scores items of the batch as a data set of their own: kinds whose items are rows only.
  std::vector<std::string> out;
  for (const auto& kind : input_kind_names()) {
    bool all = input_kind(kind).traits().rows_are_items;
    for (const auto& m : members_) all = all && m->accepts(kind);
    if (all) out.push_back(kind);
  }
  return out;
}

void Ensemble::validate_options() const {
  check_options(options_);
  for (const auto& m : members_) m->validate_options();
}

bool Ensemble::score_needs_grad() const {
  // Each member's own score() decides whether it needs autograd (AnoGAN's latent search does);
  // the ensemble must not switch it off around them.
  return true;
}

void Ensemble::fit_model(const Data& train, const Data& validation) {
  ADX_CHECK_AS(ValueError, validation.size() >= 2,
               "ensemble: normalising the members' scores needs held-out normal data (at least 2 items, got {}); "
               "set runtime.validation_fraction above 0 or pass validation data to fit",
               validation.size());
  reference_.clear();
  for (auto& m : members_) {
    if (!m->fitted()) {
      if (progress()) m->set_progress(progress());
      m->fit(train);
    }
    const auto held_out = m->score(validation).per_item.to(torch::kFloat64);
    if (options_.normalization() == EnsembleNormalization::ZScore) {
      // A member constant on normal data keeps a unit scale rather than dividing by zero.
      const double std = held_out.std().item<double>();
      reference_.push_back(torch::tensor({held_out.mean().item<double>(), std > 1e-12 ? std : 1.0}, torch::kFloat64));
    } else {
      reference_.push_back(std::get<0>(held_out.sort()).contiguous());
    }
  }
}

torch::Tensor Ensemble::normalised(const Batch& batch) {
  const Data data = fitted_kind()->items_from(batch.x);
  std::vector<torch::Tensor> columns;
  for (size_t i = 0; i < members_.size(); ++i) {
    const auto s = members_[i]->score(data).per_item.to(torch::kFloat64);
    const auto& ref = reference_[i];
    if (options_.normalization() == EnsembleNormalization::ZScore) {
      columns.push_back((s - ref[0]) / ref[1]);
    } else {
      const auto below = torch::searchsorted(ref, s, /*out_int32=*/false, /*right=*/false).to(torch::kFloat64);
      const auto at_or_below = torch::searchsorted(ref, s, false, true).to(torch::kFloat64);
      columns.push_back((below + at_or_below) / (2.0 * static_cast<double>(ref.numel())));
    }
  }
  return torch::stack(columns, 1);
}

torch::Tensor Ensemble::member_scores(const Data& data) {
  ADX_CHECK_AS(NotFittedError, fitted(), "ensemble: member_scores() called before fit()");
  check_input(data, "scoring data", false);
  Batch batch;
  batch.x = data.x.to(torch::kFloat32);
  return normalised(batch);
}

Scores Ensemble::score_model(const Batch& batch) {
  const auto z = normalised(batch);
  Scores s;
  switch (options_.combination()) {
    case EnsembleCombination::Mean: s.per_item = z.mean(1); break;
    case EnsembleCombination::Max: s.per_item = std::get<0>(z.max(1)); break;
    case EnsembleCombination::Weighted: {
      const auto w = torch::tensor(weights(), torch::kFloat64);
      s.per_item = z.matmul(w / w.sum());
      break;
    }
  }
  s.per_item = s.per_item.to(torch::kFloat32);
  return s;
}

void Ensemble::save_extra(TensorMap& state) const {
  for (size_t i = 0; i < members_.size(); ++i) {
    const auto name = members_[i]->type();
    // A member's drift reference is the ensemble's too; its names live in metadata the nesting drops.
    for (const auto& [key, tensor] : members_[i]->to_model_file().tensors)
      if (key != "meta.reference_features") state["member." + name + "." + key] = tensor;
    state["ensemble." + name] = reference_[i];
  }
}

void Ensemble::load_extra(const TensorMap& state) {
  reference_.clear();
  for (auto& m : members_) {
    const auto name = m->type();
    ModelFile file;
    file.type = name;
    file.options = m->options_map();
    file.metadata["input_kind"] = fitted_kind()->name();
    const std::string prefix = "member." + name + ".";
    for (auto it = state.lower_bound(prefix); it != state.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      file.tensors[it->first.substr(prefix.size())] = it->second;
    ADX_CHECK_AS(IoError, !file.tensors.empty(), "model file lacks the state of ensemble member '{}'", name);
    m->restore(file);
    auto ref = state.find("ensemble." + name);
    ADX_CHECK_AS(IoError, ref != state.end() && ref->second.dim() == 1 && ref->second.numel() >= 1,
                 "model file lacks the normalisation of ensemble member '{}'", name);
    const bool zscore = options_.normalization() == EnsembleNormalization::ZScore;
    ADX_CHECK_AS(IoError, !zscore || (ref->second.numel() == 2 && ref->second[1].item<double>() > 0),
                 "model file has a malformed z-score record for ensemble member '{}'", name);
    reference_.push_back(ref->second.to(torch::kFloat64).contiguous());
  }
}

ADX_BUILTIN_DETECTOR(ensemble, &Ensemble::create,
                     "normalised scores of member detectors (z-score or rank), mean/max/weighted")

}  // namespace adx
