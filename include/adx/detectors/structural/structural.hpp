#pragma once
// Structural indicators as a detector: the degree, clustering, triangle and neighbour-
// degree indicators of graph::structural_features, each turned into a robust z-score
// (median and median absolute deviation over the training nodes), combined as their
// root mean square. Nodes in an injected dense community (many triangles, high
// clustering) and hubs of stars (high degree, no triangles) stand out; no training, no
// node features. Also a baseline for the learned graph detectors.
#include <adx/data/graphs.hpp>
#include <adx/detectors/detector.hpp>

namespace adx {

struct StructuralOptions {
  ADX_OPTIONS_STRUCT;
  /// Floor of the median absolute deviation, so that a constant indicator does not divide by 0.
  ADX_ARG(double, min_spread) = 1e-3;
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

class Structural : public DetectorWithOptions<StructuralOptions> {
 public:
  using Options = StructuralOptions;
  explicit Structural(Options options = Options());
  std::string type() const override { return "structural"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kGraph}; }

 protected:
  void build(const std::vector<int64_t>&, const InputKind&) override {}
  void fit_model(const Data& train, const Data&) override;
  Scores score_model(const Batch& batch) override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  at::Tensor median_, spread_;
};

}  // namespace adx
