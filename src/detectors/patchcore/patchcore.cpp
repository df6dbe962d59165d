#include <adx/core/distributed.hpp>
#include <adx/detectors/components/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include <limits>

namespace adx {

namespace {

// The real-time preset, chosen by latency_benchmark: ResNet-18's layers 2 and 3 cost a fifth of
// Wide-ResNet-50-2's, a 1% coreset a tenth of the search, and the channels-last layout a third of
// ResNet-18's convolution time, at the same image AUROC on the synthetic set.
PatchcoreOptions with_preset(PatchcoreOptions options) {
  if (options.preset().empty()) return options;
  ADX_CHECK_AS(OptionError, options.preset() == "realtime", "preset must be empty or realtime, got '{}'",
               options.preset());
  const PatchcoreOptions defaults;
  if (options.backbone() == defaults.backbone()) options.backbone("resnet18");
  if (options.coreset_ratio() == defaults.coreset_ratio()) options.coreset_ratio(0.01);
  if (options.channels_last() == defaults.channels_last()) options.channels_last(true);
  return options;
}

}  // namespace

Patchcore::Patchcore(Options options) : BackboneDetector(with_preset(std::move(options))) {
  ADX_CHECK_AS(OptionError, options_.coreset_ratio() > 0 && options_.coreset_ratio() <= 1,
               "coreset_ratio must lie in (0, 1], got {}", options_.coreset_ratio());
  ADX_CHECK_AS(OptionError, options_.neighbours() >= 1, "neighbours must be >= 1, got {}", options_.neighbours());
  check_bank_search(bank_search());
}

BankSearch Patchcore::bank_search() const {
  BankSearch s;
  s.kind = options_.search();
  s.compression = options_.compression();
  s.ivf_lists = options_.ivf_lists();
  s.ivf_probes = options_.ivf_probes();
  s.hnsw_m = options_.hnsw_m();
  s.hnsw_ef_search = options_.hnsw_ef_search();
  s.exact_cells = options_.exact_cells();
  return s;
}

void Patchcore::index_bank(torch::Tensor* rows) {
  index_.build(memory_bank_, bank_search());
  if (!index_.order().defined()) return;
  memory_bank_ = index_.bank();  // shared with the index: one copy of the bank
  if (rows) *rows = rows->index_select(0, index_.order().to(rows->device()));
}

void Patchcore::build_head(const std::vector<int64_t>&) { memory_bank_ = torch::Tensor(); }

torch::Tensor Patchcore::embed(const std::map<std::string, torch::Tensor>& features) const {
  return concat_layers(features, backbone_->layers(), /*bilinear=*/true, /*neighbourhood_average=*/true);
}

void Patchcore::fit_model(const Data& train, const Data&) {
  load_backbone_weights();
  // Under a process group each rank embeds its share of the images (the backbone is the cost), the
  // coreset is chosen over every rank's patches at once, and every rank ends with the whole memory bank:
  // the bank one process would build.
  ProcessGroup* group = current_process_group();
  const int64_t images = train.size();
  const int64_t ranks = group ? group->world_size() : 1, rank = group ? group->rank() : 0;
  const int64_t first_image = images * rank / ranks, last_image = images * (rank + 1) / ranks;
  std::vector<torch::Tensor> patches;
  int64_t patches_per_image = 0, dims = 0;
  for_each_feature_batch(train.x.slice(0, first_image, last_image),
                         [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
                           const auto e = embed(f);
                           patches_per_image = e.size(2) * e.size(3);
                           dims = e.size(1);
                           patches.push_back(e.permute({0, 2, 3, 1}).reshape({-1, e.size(1)}));
                         });
  if (group) {  // a rank with no image learns the sizes from the others
    auto sizes = torch::tensor({patches_per_image, dims}, torch::kLong);
    group->all_reduce_max(sizes);
    patches_per_image = sizes[0].item<int64_t>();
    dims = sizes[1].item<int64_t>();
  }
  const auto mine = patches.empty() ? torch::zeros({0, dims}, train.x.options()) : torch::cat(patches);
  const int64_t n = images * patches_per_image, first_row = first_image * patches_per_image;
  const int64_t size = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * options_.coreset_ratio()));
  torch::Tensor rows;  // the rows of the whole patch matrix kept in the memory bank
  if (size >= n) {
    rows = torch::arange(n, torch::TensorOptions(torch::kLong).device(mine.device()));
    coverage_radius_ = 0.0;
  } else {
    // Select on a random projection (cheap distances), keep the full features of the chosen rows.
    const int64_t components = std::min(dims, johnson_lindenstrauss_dim(n, options_.projection_eps()));
    const auto projection = sparse_random_projection(dims, components).to(mine.device());
    const auto projected = torch::mm(mine, projection).cpu();
    const int64_t start = torch::randint(n, {1}, torch::kLong).item<int64_t>();
    const auto coreset = group ? greedy_coreset_distributed(projected, size, start, *group)
                               : greedy_coreset(projected, size, start);
    coverage_radius_ = coreset.coverage_radius;
    rows = torch::tensor(coreset.indices, torch::kLong).to(mine.device());
  }
  if (group) {
    // Each rank contributes the chosen rows it holds, with their places in the bank.
    const auto local = (rows >= first_row) & (rows < first_row + mine.size(0));
    const auto places = torch::nonzero(local).reshape({-1});
    const auto gathered = group->all_gather(mine.index_select(0, rows.index({local}) - first_row));
    const auto gathered_places = group->all_gather(places.to(torch::kCPU)).to(mine.device());
    memory_bank_ = torch::empty({rows.size(0), dims}, mine.options());
    memory_bank_.index_copy_(0, gathered_places, gathered.to(mine.device()));
  } else {
    memory_bank_ = mine.index_select(0, rows).contiguous();
  }
  index_bank(&rows);

  // Threshold calibration: each training image scored against the memory without its own patches (each
  // rank scores its share; the scores meet in image order).
  if (images < 2) return;
  const auto bank_images = rows.div(patches_per_image, "floor");
  const int64_t own = last_image - first_image;
  const auto per_image = mine.reshape({own, patches_per_image, dims});
  // Exact search takes the leave-one-out groups; faiss cannot, so its models calibrate on the full search.
  const BankIndex* exact = index_.kind() == "exact" ? &index_ : nullptr;
  const auto left_out = [&](int64_t begin, int64_t end) {
    return patchcore_scores(per_image.slice(0, begin, end), memory_bank_, options_.neighbours(),
                            torch::arange(first_image + begin, first_image + end, bank_images.options()), bank_images,
                            exact)
        .image;
  };
  if (!group) {
    set_left_out_scores_by_batch(images, left_out);
    return;
  }
  std::vector<torch::Tensor> parts{torch::zeros({0}, mine.options())};
  for (int64_t b = 0; b < own; b += options_.feature_batch_size())
    parts.push_back(left_out(b, std::min(own, b + options_.feature_batch_size())));
  set_left_out_scores(group->all_gather(torch::cat(parts).cpu()));
}

PatchcoreScores patchcore_scores(const torch::Tensor& patches, const torch::Tensor& memory_bank, int64_t neighbours,
                                 const torch::Tensor& image_ids, const torch::Tensor& bank_images,
                                 const BankIndex* index) {
  const int64_t n = patches.size(0), p = patches.size(1);
  const int64_t k = std::min(neighbours, memory_bank.size(0));
  const auto flat = patches.reshape({n * p, patches.size(2)});
  const bool left_out = image_ids.defined() && bank_images.defined();
  torch::Tensor distance, nearest;
  const auto query_groups = left_out ? image_ids.repeat_interleave(p) : torch::Tensor();
  if (index != nullptr)
    index->search(flat, &distance, &nearest, query_groups, left_out ? bank_images : torch::Tensor());
  else
    nearest_neighbours(flat, memory_bank, &distance, &nearest, kNearestNeighbourBlock, query_groups, bank_images);
  const auto patch_scores = distance.reshape({n, p});
  const auto nearest_index = nearest.reshape({n, p});
  // Re-weighting (Roth et al., eq. 7): the most anomalous patch m_test of each image, its nearest memory
  // patch m*, and the softmax over m_test's distances to the k memory neighbours of m*.
  const auto [score, where] = patch_scores.max(1);
  const auto rows = torch::arange(n, where.options());
  const auto worst_patch = patches.index({rows, where});                              // n x D
  const auto star = memory_bank.index_select(0, nearest_index.index({rows, where}));  // n x D
  auto star_to_bank = torch::cdist(star, memory_bank);                               // n x bank
  if (left_out)
    star_to_bank.masked_fill_(image_ids.unsqueeze(1) == bank_images.unsqueeze(0), std::numeric_limits<float>::infinity());
  const auto support = std::get<1>(star_to_bank.topk(k, 1, /*largest=*/false));      // n x k, m* first
  const auto support_features = memory_bank.index_select(0, support.flatten()).reshape({n, k, -1});
  const auto to_support = torch::cdist(worst_patch.unsqueeze(1), support_features).squeeze(1);  // n x k
  const auto weight = 1.0 - torch::softmax(to_support, 1).select(1, 0);
  return {weight * score, patch_scores};
}

void Patchcore::set_search(const BankSearch& search) {
  check_bank_search(search);
  // The same search keeps its index (and exact search its grouping of the bank's rows).
  if (search == bank_search() && index_.built()) return;
  options_.search(search.kind)
      .compression(search.compression)
      .ivf_lists(search.ivf_lists)
      .ivf_probes(search.ivf_probes)
      .hnsw_m(search.hnsw_m)
      .hnsw_ef_search(search.hnsw_ef_search)
      .exact_cells(search.exact_cells);
  if (memory_bank_.defined()) index_bank();
}

torch::Tensor Patchcore::patch_features(const Data& images) {
  ADX_CHECK_AS(NotFittedError, fitted(), "patchcore: patch_features() called before fit()");
  check_input(images, "images", false);
  std::vector<torch::Tensor> parts;
  for_each_feature_batch(prepare(images).x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    const auto e = embed(f);
    parts.push_back(e.permute({0, 2, 3, 1}).reshape({e.size(0), e.size(2) * e.size(3), e.size(1)}));
  });
  return torch::cat(parts);
}

Scores Patchcore::score_model(const Batch& batch) {
  ADX_CHECK_AS(NotFittedError, memory_bank_.defined(), "patchcore has no memory bank; fit it first");
  std::vector<torch::Tensor> maps, image_scores;
  for_each_feature_batch(batch.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    const auto e = embed(f);
    const int64_t n = e.size(0), h = e.size(2), w = e.size(3);
    const auto scores =
        patchcore_scores(e.permute({0, 2, 3, 1}).reshape({n, h * w, e.size(1)}), memory_bank_, options_.neighbours(),
                         {}, {}, &index_);
    image_scores.push_back(scores.image);
    maps.push_back(scores.patches.reshape({n, 1, h, w}));
  });
  Scores s;
  s.per_item = torch::cat(image_scores);
  s.pixel_map = upsample_and_blur(torch::cat(maps), batch.x.size(2), batch.x.size(3), options_.blur_sigma());
  return s;
}

void Patchcore::save_extra(TensorMap& state) const {
  state["patchcore.memory_bank"] = memory_bank_.detach().cpu();
  state["patchcore.coverage_radius"] = torch::tensor(coverage_radius_, torch::kFloat64);
  const auto index = index_.serialize();
  if (index.defined()) state["patchcore.index"] = index;
}

void Patchcore::load_extra(const TensorMap& state) {
  auto bank = state.find("patchcore.memory_bank");
  ADX_CHECK_AS(IoError, bank != state.end() && bank->second.dim() == 2, "model file lacks patchcore's memory bank");
  memory_bank_ = bank->second.to(device(), torch::kFloat32).contiguous();
  auto radius = state.find("patchcore.coverage_radius");
  ADX_CHECK_AS(IoError, radius == state.end() || radius->second.numel() == 1,
               "model file has a malformed patchcore coverage record of {} values", radius->second.numel());
  coverage_radius_ = radius != state.end() ? radius->second.to(torch::kDouble).item<double>() : 0.0;
  // An index is restored as saved (HNSW's graph depends on insertion order; exact search's bank is saved
  // grouped by cell); files without one build it from the bank.
  auto index = state.find("patchcore.index");
  if (index != state.end())
    index_.deserialize(index->second, memory_bank_, bank_search());
  else
    index_bank();
}

}  // namespace adx
