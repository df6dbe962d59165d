#include <adx/detectors/structural/structural.hpp>
#include "detectors/builtin_detector.hpp"

#include <torch/torch.h>

namespace adx {

void StructuralOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).above("min_spread", min_spread(), 0.0);
}

Structural::Structural(Options options) : DetectorWithOptions(std::move(options)) {}

void Structural::fit_model(const Data& train, const Data&) {
  const auto features = graph::structural_features(train.edge_index, train.x.size(0)).index_select(0, train.items.cpu());
  median_ = std::get<0>(features.median(0));
  spread_ = (1.4826 * std::get<0>((features - median_).abs().median(0))).clamp_min(options_.min_spread());
}

Scores Structural::score_model(const Batch& batch) {
  auto z = (graph::structural_features(batch.edge_index, batch.x.size(0)) - median_) / spread_;
  if (batch.targets.defined()) z = z.index_select(0, batch.targets.cpu());
  Scores s;
  s.per_item = z.pow(2).mean(1).sqrt();
  return s;
}

void Structural::save_extra(TensorMap& state) const {
  state["structural.median"] = median_;
  state["structural.spread"] = spread_;
}

void Structural::load_extra(const TensorMap& state) {
  for (const char* key : {"structural.median", "structural.spread"})
    ADX_CHECK_AS(IoError, state.count(key) && state.at(key).numel() == 4, "model file lacks a valid '{}'", key);
  median_ = state.at("structural.median");
  spread_ = state.at("structural.spread");
}

ADX_BUILTIN_DETECTOR(structural, factory_for<Structural>(),
                     "robust z-scores of degree, clustering, triangles, neighbour degree")

}  // namespace adx
