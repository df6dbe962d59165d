#pragma once
// Isolation Forest (Liu, Ting and Zhou, ICDM 2008), as scikit-learn computes it: each tree grows on
// `max_samples` items drawn without replacement, splitting a node on a random feature (one that is not
// constant among the node's items) at a value drawn uniformly between its minimum and maximum, items
// with a value <= the split going left, until a node holds one item or the depth reaches
// ceil(log2(max_samples)). An item's path length in a tree is the depth of the leaf it reaches plus
// c(items the leaf held while growing), c(n) being the average path length of an unsuccessful search
// in a binary search tree of n items; its score is 2^(-mean path length / c(max_samples)), in (0, 1],
// about 0.5 for ordinary items and near 1 for items isolated in a few splits (scikit-learn's
// score_samples, negated).
//
// Items are rows (tabular), windows (series: the W x D steps of a window as one row; a step's score
// is the mean over the windows covering it, or their largest with step_score max) or node features
// (graph: the edges are not used).
// Growing and scoring run on the CPU, parallel over trees and items; scores come back on the CPU as
// every detector's do, whatever the device option.
//
//   adx::IsolationForest forest;
//   forest.fit(adx::Data::tabular(normal_rows));
//   auto scores = forest.score(adx::Data::tabular(rows)).per_item;
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>

namespace adx {

struct IsolationForestOptions {
  ADX_OPTIONS_STRUCT;
  /// Trees in the forest (scikit-learn's default).
  ADX_ARG(int64_t, trees) = 100;
  /// Items drawn without replacement to grow each tree, at most the training items (scikit-learn's
  /// "auto": 256). It also sets the depth limit, ceil(log2(max_samples)).
  ADX_ARG(int64_t, max_samples) = 256;
  /// Series: a step's score, the mean of the windows covering it or their largest (`max`).
  ADX_ARG(StepAssembly, step_score) = StepAssembly::Mean;
  // Splits are drawn between each feature's extremes, so rescaling a feature changes nothing.
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  void check(const std::string& prefix) const;
};

/// A grown forest in flat arrays: node k of any tree splits on `feature[k]` at `split[k]` (items with a
/// value <= split go to `left[k]`, the others to `right[k]`), or is a leaf when `feature[k]` is -1.
/// `size[k]` counts the items that reached node k while the tree grew; `roots` holds each tree's root.
struct IsolationForestModel {
  std::vector<int64_t> feature, left, right, size, roots;
  std::vector<double> split;
  int64_t samples_per_tree = 0;  ///< items each tree grew on (psi)
  int64_t features = 0;          ///< the width of a row
};

/// c(n): the average path length of an unsuccessful search in a binary search tree of n items,
/// 2 H(n - 1) - 2 (n - 1) / n with H(i) ~ ln(i) + 0.5772156649 (Euler's constant); c(n <= 1) = 0, c(2) = 1.
double isolation_average_path_length(double n);

/// Grows `trees` trees on the rows of `rows` (N x F, any floating type), each on min(max_samples, N)
/// rows drawn without replacement; the same seed grows the same forest.
IsolationForestModel grow_isolation_forest(const torch::Tensor& rows, int64_t trees, int64_t max_samples,
                                           uint64_t seed);

/// The mean path length of every row of `rows` (N x F) over the forest's trees (N, float64).
torch::Tensor isolation_path_lengths(const IsolationForestModel& forest, const torch::Tensor& rows);

/// 2^(-mean path length / c(samples_per_tree)) for every row (N, float64).
torch::Tensor isolation_scores(const IsolationForestModel& forest, const torch::Tensor& rows);

class IsolationForest : public DetectorWithOptions<IsolationForestOptions> {
 public:
  using Options = IsolationForestOptions;
  explicit IsolationForest(Options options = Options()) : DetectorWithOptions(std::move(options)) {}
  std::string type() const override { return "isolation_forest"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kSeries, kinds::kGraph}; }
  const IsolationForestModel& forest() const { return forest_; }
  StepAssembly step_assembly() const override { return options_.step_score(); }

 protected:
  void build(const std::vector<int64_t>&, const InputKind&) override { forest_ = IsolationForestModel(); }
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  IsolationForestModel forest_;
};

}  // namespace adx
