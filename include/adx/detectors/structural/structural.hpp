#pragma once
// Structural indicators as a detector: the degree, clustering, triangle and neighbour-
// degree indicators of graph::structural_features, each turned into a robust z-score
// (median and median absolute deviation over the training nodes), combined as their
// root mean square. Nodes in an injected dense community (many triangles, high
// clustering) and hubs of stars (high degree, no triangles) stand out; no training, no
// node features. Also a baseline for the learned graph detectors.
#include <adx/data/graphs.hpp>
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

namespace adx {

struct StructuralOptions {
  ADX_OPTIONS_STRUCT;
  /// Floor of the median absolute deviation, so that a constant indicator does not divide by 0.
  ADX_ARG(double, min_spread) = 1e-3;
  ADX_DETECTOR_OPTIONS(Preprocess::None);
};

class Structural : public DetectorWithOptions<StructuralOptions> {
 public:
  using Options = StructuralOptions;
  explicit Structural(Options options = Options()) : DetectorWithOptions(std::move(options)) {
    ADX_CHECK_AS(OptionError, options_.min_spread() > 0, "min_spread must be > 0, got {}", options_.min_spread());
  }
  std::string type() const override { return "structural"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kGraph}; }

 protected:
  void build(const std::vector<int64_t>&, const InputKind&) override {}
  void fit_model(const Data& train, const Data&) override {
    const auto features =
        graph::structural_features(train.edge_index, train.x.size(0)).index_select(0, train.items.cpu());
    median_ = std::get<0>(features.median(0));
    spread_ = (1.4826 * std::get<0>((features - median_).abs().median(0))).clamp_min(options_.min_spread());
  }
  Scores score_model(const Batch& batch) override {
    auto z = (graph::structural_features(batch.edge_index, batch.x.size(0)) - median_) / spread_;
    if (batch.targets.defined()) z = z.index_select(0, batch.targets.cpu());
    Scores s;
    s.per_item = z.pow(2).mean(1).sqrt();
    return s;
  }
  void save_extra(TensorMap& state) const override {
    state["structural.median"] = median_;
    state["structural.spread"] = spread_;
  }
  void load_extra(const TensorMap& state) override {
    for (const char* key : {"structural.median", "structural.spread"})
      ADX_CHECK_AS(IoError, state.count(key) && state.at(key).numel() == 4, "model file lacks a valid '{}'", key);
    median_ = state.at("structural.median");
    spread_ = state.at("structural.spread");
  }

 private:
  torch::Tensor median_, spread_;
};

}  // namespace adx
