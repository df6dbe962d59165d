#pragma once
// An ensemble of detectors: each member's scores are normalised on held-out normal data
// (z-score, or the empirical CDF), then combined by their mean, maximum or a weighted sum.
// Members are named by registry name in `members`; a member's own options go under
// "<name>." keys (make_detector("ensemble", {{"members", "vae,rotation"}, {"vae.latent", "8"}})).
// The model file holds every member, so one file restores the whole ensemble.
#include <adx/detectors/detector.hpp>

#include <torch/torch.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace adx {

enum class EnsembleNormalization {
  ZScore,  ///< (s - mean) / std of the member's scores on held-out normal data
  Rank,    ///< the share of held-out normal scores below s (ties count half), in [0, 1]
};
ADX_ENUM_NAMES(EnsembleNormalization, {EnsembleNormalization::ZScore, "zscore"}, {EnsembleNormalization::Rank, "rank"});

enum class EnsembleCombination { Mean, Max, Weighted };
ADX_ENUM_NAMES(EnsembleCombination, {EnsembleCombination::Mean, "mean"}, {EnsembleCombination::Max, "max"},
               {EnsembleCombination::Weighted, "weighted"});

struct EnsembleOptions {
  ADX_OPTIONS_STRUCT;
  /// Member detectors by registry name, comma-separated, each at most once. The default pair takes
  /// rows and images: reconstruction error and a likelihood, which fail on different items.
  ADX_ARG(std::string, members) = "autoencoder,vae";
  /// How each member's scores are put on one scale.
  ADX_ARG(EnsembleNormalization, normalization) = EnsembleNormalization::ZScore;
  /// How the normalised scores are combined.
  ADX_ARG(EnsembleCombination, combination) = EnsembleCombination::Mean;
  /// Weighted: one non-negative weight per member, comma-separated, in the order of `members`.
  ADX_ARG(std::string, weights) = "";
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  void check(const std::string& prefix) const;
};

class Ensemble : public DetectorWithOptions<EnsembleOptions> {
 public:
  using Options = EnsembleOptions;
  /// Members made from `member_options` (name -> that member's options); a member named in
  /// options.members() without an entry gets its defaults. Members run on the ensemble's device.
  explicit Ensemble(Options options, const std::map<std::string, OptionMap>& member_options = {});
  /// Members given as detectors, fitted or not: fit() fits only those not yet fitted, and
  /// sets the normalisation of all of them. options.members() is filled from their types.
  Ensemble(Options options, std::vector<std::unique_ptr<Detector>> members);
  /// The registry's factory: splits "<member>.key" entries from the ensemble's own options.
  static std::unique_ptr<Detector> create(const OptionMap& map);

  std::string type() const override { return "ensemble"; }
  OptionMap options_map() const override;
  std::vector<std::string> input_kinds() const override;
  void validate_options() const override;
  const std::vector<std::unique_ptr<Detector>>& members() const { return members_; }

  /// Each member's normalised scores on `data` (items x members), before they are combined.
  torch::Tensor member_scores(const Data& data);

 protected:
  void build(const std::vector<int64_t>&, const InputKind&) override {}
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  bool score_needs_grad() const override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  std::vector<std::string> member_names() const;
  std::vector<double> weights() const;
  torch::Tensor normalised(const Batch& batch);
  std::vector<std::unique_ptr<Detector>> members_;
  /// Per member: z-score mean and std, or the sorted held-out scores for the rank.
  std::vector<torch::Tensor> reference_;
};

}  // namespace adx
