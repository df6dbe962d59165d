#include <adx/core/distributed.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include "detectors/builtin_detector.hpp"

#include <utility>

namespace adx {

namespace {

// The real-time preset, chosen by latency_benchmark: ResNet-18's layers 2 and 3 cost a fifth of
// Wide-ResNet-50-2's, a 1% coreset a tenth of the search, and the channels-last layout a third of
// ResNet-18's convolution time, at the same image AUROC on the synthetic set.
PatchcoreOptions with_preset(PatchcoreOptions options) {
  if (options.preset() != PatchcorePreset::Realtime) return options;
  const PatchcoreOptions defaults;
  if (options.backbone() == defaults.backbone()) options.backbone("resnet18");
  if (options.coreset_ratio() == defaults.coreset_ratio()) options.coreset_ratio(0.01);
  if (options.channels_last() == defaults.channels_last()) options.channels_last(true);
  return options;
}

}  // namespace

void PatchcoreOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_backbone_options(*this, c);
  c.in("coreset_ratio", coreset_ratio(), 0.0, 1.0, "(]")
      .in("projection_eps", projection_eps(), 0.0, 1.0, "()")
      .at_least("neighbours", neighbours(), 1);
}

const OptionRenames& PatchcoreOptions::renamed_options() {
  static const OptionRenames renames{{"search", "search.kind"},
                                     {"exact_cells", "search.exact_cells"},
                                     {"compression", "search.compression"},
                                     {"ivf_lists", "search.ivf_lists"},
                                     {"ivf_probes", "search.ivf_probes"},
                                     {"hnsw_m", "search.hnsw_m"},
                                     {"hnsw_ef_search", "search.hnsw_ef_search"}};
  return renames;
}

Patchcore::Patchcore(Options options) : BackboneDetector(with_preset(std::move(options))) {}

void Patchcore::shard_across(ProcessGroup& group) {
  ADX_CHECK_AS(NotFittedError, bank_.defined(), "patchcore has no memory bank to shard; fit or load it first");
  bank_.shard_over(&group);
  options_.shard_bank(true);
}

void Patchcore::build_head(const std::vector<int64_t>&) { bank_.clear(); }

torch::Tensor Patchcore::embed(const std::map<std::string, torch::Tensor>& features) const {
  return concat_layers(features, backbone_->layers(), /*bilinear=*/true, /*neighbourhood_average=*/true);
}

void Patchcore::fit_model(const Data& train, const Data&) {
  load_backbone_weights();
  // Under a process group each rank embeds its share of the images (the backbone is the cost), and the
  // coreset is chosen over every rank's patches at once. Every rank then ends with the whole memory bank (the
  // bank one process would build), or with shard_bank, with the chosen rows it holds. Alone, the share is
  // every image and nothing meets.
  ProcessGroup* group = current_process_group();
  const int64_t images = train.size();
  const auto [first_image, last_image] = share_of(group, images);
  int64_t height = 0, width = 0;
  const auto patches = embed_patches(train.x.slice(0, first_image, last_image), &height, &width);
  auto sizes = torch::tensor({height * width, patches.defined() ? patches.size(2) : 0}, torch::kLong);
  max_over_ranks(group, sizes);  // a rank with no image learns the sizes from the others
  const int64_t patches_per_image = sizes[0].item<int64_t>(), dims = sizes[1].item<int64_t>();
  const auto mine = patches.defined() ? patches.reshape({-1, dims}) : torch::zeros({0, dims}, train.x.options());
  const int64_t n = images * patches_per_image, first_row = first_image * patches_per_image;
  const int64_t size = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * options_.coreset_ratio()));
  torch::Tensor chosen;  // the rows of the whole patch matrix kept in the memory bank
  if (size >= n) {
    chosen = torch::arange(n, torch::TensorOptions(torch::kLong).device(mine.device()));
    coverage_radius_ = 0.0;
  } else {
    // Select on a random projection (cheap distances), keep the full features of the chosen rows.
    const int64_t components = std::min(dims, johnson_lindenstrauss_dim(n, options_.projection_eps()));
    const auto projection = sparse_random_projection(dims, components).to(mine.device());
    const auto projected = torch::mm(mine, projection).cpu();
    const int64_t start = torch::randint(n, {1}, torch::kLong).item<int64_t>();
    const auto coreset = greedy_coreset_over(group, projected, size, start);
    coverage_radius_ = coreset.coverage_radius;
    chosen = torch::tensor(coreset.indices, torch::kLong).to(mine.device());
  }
  const auto rows = bank_.assemble(mine, chosen, first_row, group, options_.shard_bank(), options_.search());

  // Threshold calibration: each training image scored against the memory without its own patches.
  if (images < 2) return;
  const auto per_image = mine.reshape({last_image - first_image, patches_per_image, dims});
  set_left_out_scores(left_out_scores(per_image, first_image, images, rows.div(patches_per_image, "floor")));
}

PatchcoreScores Patchcore::scores_of(const torch::Tensor& patches, const torch::Tensor& image_ids,
                                    const torch::Tensor& bank_images) const {
  return patchcore_scores(patches, bank_, options_.neighbours(), image_ids, bank_images);
}

torch::Tensor Patchcore::left_out_scores(const torch::Tensor& per_image, int64_t first_image, int64_t images,
                                         const torch::Tensor& bank_images) const {
  const int64_t own = per_image.size(0), chunk = options_.feature_batch_size();
  const auto ids = [&](int64_t begin, int64_t end) {
    return torch::arange(first_image + begin, first_image + end, torch::kLong).to(bank_images.device());
  };
  if (!bank_.sharded()) {
    // Each rank scores its own images (alone: all of them), and the scores meet in image order.
    const auto mine = scores_by_batch(own, [&](int64_t begin, int64_t end) {
      return scores_of(per_image.slice(0, begin, end), ids(begin, end), bank_images).image;
    });
    return gather_parts(current_process_group(), mine.cpu());
  }
  // Every shard must search for every image, so the ranks' batches meet: at each step each rank adds up to
  // feature_batch_size of its own images, and every rank scores them all.
  ProcessGroup* group = bank_.group();
  auto most_steps = torch::tensor({(own + chunk - 1) / chunk}, torch::kLong);
  max_over_ranks(group, most_steps);
  auto scores = torch::empty({images}, torch::kFloat32);
  for (int64_t step = 0; step < most_steps.item<int64_t>(); ++step) {
    const int64_t begin = std::min(own, step * chunk), end = std::min(own, begin + chunk);
    const auto queries = gather_parts(group, per_image.slice(0, begin, end));
    const auto query_ids = gather_parts(group, ids(begin, end).cpu()).to(bank_images.device());
    const auto image = scores_of(queries, query_ids, bank_images).image;
    scores.index_put_({query_ids.cpu()}, image.cpu().to(torch::kFloat32));
  }
  return scores;
}

PatchcoreScores patchcore_scores(const torch::Tensor& patches, const MemoryBank& bank, int64_t neighbours,
                                 const torch::Tensor& image_ids, const torch::Tensor& bank_images) {
  const int64_t n = patches.size(0), p = patches.size(1);
  const int64_t k = std::min(neighbours, bank.total_rows());
  const bool left_out = image_ids.defined() && bank_images.defined();
  const auto own_images = left_out ? image_ids : torch::Tensor();
  const auto bank_groups = left_out ? bank_images : torch::Tensor();
  const auto nearest = bank.nearest(patches.reshape({n * p, patches.size(2)}),
                                    left_out ? image_ids.repeat_interleave(p) : torch::Tensor(), bank_groups);
  const auto patch_scores = nearest.distance.reshape({n, p});
  // Re-weighting (Roth et al., eq. 7): the most anomalous patch m_test of each image, its nearest memory
  // patch m*, and the softmax over m_test's distances to the k memory neighbours of m*.
  const auto [score, where] = patch_scores.max(1);
  const auto image_rows = torch::arange(n, where.options());
  const auto worst = image_rows * p + where;  // each image's worst patch among the n * p queries
  const MemoryBank::Nearest worst_nearest{nearest.distance.index_select(0, worst),
                                          nearest.local_distance.index_select(0, worst),
                                          nearest.local_row.index_select(0, worst)};
  const auto worst_patch = patches.index({image_rows, where});  // n x D
  const auto star = bank.nearest_rows(worst_nearest);           // n x D
  const auto to_support = bank.distances_to_neighbours(star, worst_patch, k, own_images, bank_groups);  // n x k
  const auto weight = 1.0 - torch::softmax(to_support, 1).select(1, 0);
  return {weight * score, patch_scores};
}

PatchcoreScores patchcore_scores(const torch::Tensor& patches, const torch::Tensor& memory_bank, int64_t neighbours,
                                 const torch::Tensor& image_ids, const torch::Tensor& bank_images) {
  MemoryBank bank;
  bank.assign(memory_bank, BankSearch().exact_cells(1));
  return patchcore_scores(patches, bank, neighbours, image_ids, bank_images);
}

void Patchcore::set_search(const BankSearch& search) {
  bank_.set_search(search);  // checks the settings first, so a refused search leaves the options as they were
  options_.search(search);
}

torch::Tensor Patchcore::patch_features(const Data& images) {
  ADX_CHECK_AS(NotFittedError, fitted(), "patchcore: patch_features() called before fit()");
  check_input(images, "images", false);
  int64_t h = 0, w = 0;
  return embed_patches(prepare(images).x, &h, &w);
}

torch::Tensor Patchcore::embed_patches(const torch::Tensor& images, int64_t* height, int64_t* width) {
  std::vector<torch::Tensor> parts;
  for_each_feature_batch(images, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    const auto e = embed(f);
    *height = e.size(2);
    *width = e.size(3);
    parts.push_back(e.permute({0, 2, 3, 1}).reshape({e.size(0), e.size(2) * e.size(3), e.size(1)}));
  });
  return parts.empty() ? torch::Tensor() : torch::cat(parts);
}

Scores Patchcore::score_model(const Batch& batch) {
  ADX_CHECK_AS(NotFittedError, bank_.defined(), "patchcore has no memory bank; fit it first");
  const int64_t n = batch.x.size(0);
  // A sharded bank scores collectively, and the ranks must be scoring the same images: each embeds its share
  // of them (the backbone is the cost), and the features meet, since every shard must search every patch. A
  // whole bank scores alone, its share every image.
  ProcessGroup* group = bank_.group();
  const auto [least, largest] = range_over_ranks(group, n);
  ADX_CHECK_AS(ValueError, least == n && largest == n,
               "rank {}: a sharded patchcore scores collectively, and every rank must pass the same images; "
               "this rank has a batch of {}, others between {} and {}",
               distributed_rank(), n, least, largest);
  const auto [first, last] = share_of(group, n);
  int64_t h = 0, w = 0;
  auto mine = embed_patches(batch.x.slice(0, first, last), &h, &w);
  auto grid = torch::tensor({h, w}, torch::kLong);
  max_over_ranks(group, grid);  // a rank with no image learns the grid from the others
  h = grid[0].item<int64_t>();
  w = grid[1].item<int64_t>();
  const auto& rows = bank_.rows();
  if (!mine.defined()) mine = torch::zeros({0, h * w, rows.size(1)}, rows.options());
  const auto features = gather_parts(group, mine);  // n x P x D
  std::vector<torch::Tensor> maps, image_scores;
  for (int64_t b = 0; b < n; b += options_.feature_batch_size()) {
    const auto part = features.slice(0, b, std::min(n, b + options_.feature_batch_size()));
    const auto scores = scores_of(part);
    image_scores.push_back(scores.image);
    maps.push_back(scores.patches.reshape({part.size(0), 1, h, w}));
  }
  Scores s;
  s.per_item = torch::cat(image_scores);
  s.pixel_map = upsample_and_blur(torch::cat(maps), batch.x.size(2), batch.x.size(3), options_.blur_sigma());
  return s;
}

void Patchcore::save_extra(TensorMap& state) const {
  state["patchcore.coverage_radius"] = torch::tensor(coverage_radius_, torch::kFloat64);
  bank_.save(state, "patchcore.");  // collective when sharded: the shards meet on rank 0
}

void Patchcore::load_extra(const TensorMap& state) {
  bank_.load(state, "patchcore.", options_.search(), device());
  auto radius = state.find("patchcore.coverage_radius");
  ADX_CHECK_AS(IoError, radius == state.end() || radius->second.numel() == 1,
               "model file has a malformed patchcore coverage record of {} values", radius->second.numel());
  coverage_radius_ = radius != state.end() ? radius->second.to(torch::kDouble).item<double>() : 0.0;
  if (options_.shard_bank()) bank_.shard_over(current_process_group());
}

ADX_BUILTIN_DETECTOR(patchcore, factory_for<Patchcore>(),
                     "PatchCore: coreset memory of backbone patch features, nearest-patch map")

}  // namespace adx
