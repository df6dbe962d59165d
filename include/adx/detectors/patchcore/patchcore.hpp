#pragma once
// PatchCore (Roth et al., CVPR 2022), as anomalib implements it: locally
// aware patch features (layer 2 and layer 3 of a Wide-ResNet-50-2, each
// averaged over its 3 x 3 neighbourhood, layer 3 upsampled and concatenated),
// a memory bank reduced by greedy k-center coreset selection on a sparse
// random projection, the distance of every test patch to its nearest memory
// patch as the anomaly map (upsampled, Gaussian blur sigma 4), and the image
// score re-weighted by the softmax over the 9 nearest memory neighbours.
// The memory comes from every training image; the threshold is set on each
// training image's score against the memory without its own patches.
// Under a process group the fit is shared among the ranks, and with shard_bank
// each rank keeps only a shard of the memory bank (see the option).
#include <adx/core/distributed.hpp>
#include <adx/detectors/components/algorithms/memory_bank.hpp>
#include <adx/detectors/components/bases/feature_memory.hpp>

#include <torch/torch.h>

namespace adx {

/// Settings PatchCore starts from: the paper's, or the real-time preset.
enum class PatchcorePreset { Paper, Realtime };
// "" is how model files written before the enum name the paper's settings.
ADX_ENUM_NAMES(PatchcorePreset, {PatchcorePreset::Paper, "paper"}, {PatchcorePreset::Realtime, "realtime"},
               {PatchcorePreset::Paper, ""});

struct PatchcoreOptions {
  ADX_OPTIONS_STRUCT;
  ADX_BACKBONE_OPTIONS("wide_resnet50_2", "layer2,layer3");
  /// paper: the paper's settings. realtime: under 50 ms per 256 x 256 image on 2 cores (ResNet-18, coreset 1%, channels-last); options
  /// left at their defaults take the preset's values, options set otherwise keep theirs.
  ADX_ARG(PatchcorePreset, preset) = PatchcorePreset::Paper;
  /// Fraction of the training patches kept in the memory bank.
  ADX_ARG(double, coreset_ratio) = 0.1;
  /// Distortion of the random projection used for coreset selection (Johnson-Lindenstrauss eps).
  ADX_ARG(double, projection_eps) = 0.9;
  /// Memory neighbours in the image-score re-weighting.
  ADX_ARG(int64_t, neighbours) = 9;
  /// Nearest-memory search at score time: its kind (exact, flat, ivf or hnsw) and their settings.
  ADX_ARG(BankSearch, search) = BankSearch();
  /// Under a process group, each rank keeps only its shard of the memory bank (after fit, or on loading a
  /// model); scoring is then collective (every rank scores the same images; each patch's nearest distance is
  /// the least over the shards), and so is save(), where rank 0 writes the file one process would.
  ADX_ARG(bool, shard_bank) = false;
  ADX_DETECTOR_OPTIONS(Preprocess::None);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
  /// The keys the search settings had before they nested under `search.`, so that model files and scripts
  /// written then still read.
  static const OptionRenames& renamed_options();
};

/// PatchCore's scores of patch features `patches` (n x P x D) against a memory bank.
struct PatchcoreScores {
  torch::Tensor image;    ///< n: the worst patch's distance re-weighted by eq. 7
  torch::Tensor patches;  ///< n x P: each patch's distance to its nearest memory patch
};
/// Each patch's nearest-memory distance, and each image's score: the largest patch distance
/// s* times 1 - softmax_0 of the worst patch's distances to m* and its `neighbours` - 1
/// nearest memory neighbours (Roth et al., eq. 7). With `image_ids` (n) and `bank_images` (one per row of
/// bank.rows(), the training image each came from), an image never uses memory rows of its own id: the
/// leave-one-image-out score of a training image. The bank's index finds each patch's nearest row (every
/// row is searched when ids are given and the index cannot take them). A sharded bank scores collectively:
/// every rank passes the same patches and gets the scores the whole bank gives.
PatchcoreScores patchcore_scores(const torch::Tensor& patches, const MemoryBank& bank, int64_t neighbours,
                                 const torch::Tensor& image_ids = {}, const torch::Tensor& bank_images = {});
/// The same against the rows of `memory_bank` (M x D), every row searched.
PatchcoreScores patchcore_scores(const torch::Tensor& patches, const torch::Tensor& memory_bank, int64_t neighbours,
                                 const torch::Tensor& image_ids = {}, const torch::Tensor& bank_images = {});

class Patchcore : public BackboneDetector<PatchcoreOptions> {
 public:
  using Options = PatchcoreOptions;
  explicit Patchcore(Options options = Options());
  std::string type() const override { return "patchcore"; }
  /// Rows x features of the fitted memory bank (this rank's shard when sharded()).
  const torch::Tensor& memory_bank() const { return bank_.rows(); }
  /// The memory bank with its index, whole or this rank's shard of it.
  const MemoryBank& bank() const { return bank_; }
  /// Whether this rank holds only a shard of the memory bank; scoring and save() are then collective.
  bool sharded() const { return bank_.sharded(); }
  /// Splits the whole memory bank of a fitted or loaded model over `group` (collective: every rank holds the
  /// same bank, as after adx::load of one file, and keeps a contiguous slice of it). Sets shard_bank, so a
  /// file saved from the shards loads back into shards under a group.
  void shard_across(ProcessGroup& group);
  /// Coverage radius of the coreset in the projected space, from the last fit.
  double coverage_radius() const { return coverage_radius_; }
  /// The nearest-neighbour index scoring searches (its kind, its note when it fell back, its bytes).
  const BankIndex& index() const { return bank_.index(); }
  /// Switches a fitted detector to another search (the search options) and rebuilds its index from
  /// the memory bank; no refit. Saved models keep the new search. Exact search with cells regroups the
  /// bank's rows, so memory_bank() may change order (not content).
  void set_search(const BankSearch& search);
  /// The locally aware patch features of `images` (N x P x D), as scoring compares them with the bank.
  torch::Tensor patch_features(const Data& images);

 protected:
  void build_head(const std::vector<int64_t>& item_shape) override;
  void fit_model(const Data& train, const Data& validation) override;
  Scores score_model(const Batch& batch) override;
  void save_extra(TensorMap& state) const override;
  void load_extra(const TensorMap& state) override;

 private:
  torch::Tensor embed(const std::map<std::string, torch::Tensor>& features) const;
  /// The locally aware patch features of `images` (N x P x D; undefined for no image) and their grid.
  torch::Tensor embed_patches(const torch::Tensor& images, int64_t* height, int64_t* width);
  /// Scores of `patches` against the bank (collective when sharded).
  PatchcoreScores scores_of(const torch::Tensor& patches, const torch::Tensor& image_ids = {},
                            const torch::Tensor& bank_images = {}) const;
  /// Leave-one-image-out scores of the training images, of which this rank embedded `per_image` (from image
  /// `first_image` on), for `images` in all; `bank_images` names the image each bank row came from.
  torch::Tensor left_out_scores(const torch::Tensor& per_image, int64_t first_image, int64_t images,
                                const torch::Tensor& bank_images) const;
  MemoryBank bank_;
  double coverage_radius_ = 0.0;
};

}  // namespace adx
