#include <adx/core/distributed.hpp>
#include <adx/detectors/components/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include <limits>
#include <utility>

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

// The least and the largest of `value` over the ranks, in one all-reduce: collective steps check with it
// that every rank brought the same size.
std::pair<int64_t, int64_t> range_over_ranks(ProcessGroup& group, int64_t value) {
  auto extremes = torch::tensor({-value, value}, torch::kLong);
  group.all_reduce_max(extremes);
  return {-extremes[0].item<int64_t>(), extremes[1].item<int64_t>()};
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
  if (memory_bank_.size(0) == 0) {  // a shard that drew no row: nothing to index
    index_ = BankIndex();
    return;
  }
  index_.build(memory_bank_, bank_search());
  if (!index_.order().defined()) return;
  memory_bank_ = index_.bank();  // shared with the index: one copy of the bank
  if (rows) *rows = rows->index_select(0, index_.order().to(rows->device()));
  if (sharded()) shard_.rows = shard_.rows.index_select(0, index_.order().to(shard_.rows.device()));
}

void Patchcore::shard_across(ProcessGroup& group) {
  ADX_CHECK_AS(NotFittedError, memory_bank_.defined(), "patchcore has no memory bank to shard; fit or load it first");
  ADX_CHECK_AS(ValueError, !sharded(), "patchcore's memory bank is already sharded");
  const int64_t rows = memory_bank_.size(0), ranks = group.world_size(), rank = group.rank();
  const auto [least, largest] = range_over_ranks(group, rows);
  ADX_CHECK_AS(ValueError, least == rows && largest == rows,
               "rank {}: sharding needs the same memory bank on every rank, but the banks hold between {} and {} rows",
               rank, least, largest);
  const int64_t begin = rows * rank / ranks, end = rows * (rank + 1) / ranks;
  memory_bank_ = memory_bank_.slice(0, begin, end).clone();
  shard_ = {&group, torch::arange(begin, end, torch::TensorOptions(torch::kLong).device(memory_bank_.device())), rows};
  options_.shard_bank(true);
  index_bank();
}

void Patchcore::build_head(const std::vector<int64_t>&) {
  memory_bank_ = torch::Tensor();
  shard_ = BankShard();
}

torch::Tensor Patchcore::embed(const std::map<std::string, torch::Tensor>& features) const {
  return concat_layers(features, backbone_->layers(), /*bilinear=*/true, /*neighbourhood_average=*/true);
}

void Patchcore::fit_model(const Data& train, const Data&) {
  load_backbone_weights();
  // Under a process group each rank embeds its share of the images (the backbone is the cost), and the
  // coreset is chosen over every rank's patches at once. Every rank then ends with the whole memory bank (the
  // bank one process would build), or with shard_bank, with the chosen rows it holds.
  ProcessGroup* group = current_process_group();
  const int64_t images = train.size();
  const int64_t ranks = group ? group->world_size() : 1, rank = group ? group->rank() : 0;
  const int64_t first_image = images * rank / ranks, last_image = images * (rank + 1) / ranks;
  int64_t height = 0, width = 0;
  const auto patches = embed_patches(train.x.slice(0, first_image, last_image), &height, &width);
  int64_t patches_per_image = height * width, dims = patches.defined() ? patches.size(2) : 0;
  if (group) {  // a rank with no image learns the sizes from the others
    auto sizes = torch::tensor({patches_per_image, dims}, torch::kLong);
    group->all_reduce_max(sizes);
    patches_per_image = sizes[0].item<int64_t>();
    dims = sizes[1].item<int64_t>();
  }
  const auto mine = patches.defined() ? patches.reshape({-1, dims}) : torch::zeros({0, dims}, train.x.options());
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
  shard_ = BankShard();
  if (group) {
    // The chosen rows this rank holds, and their places in the bank.
    const auto local = (rows >= first_row) & (rows < first_row + mine.size(0));
    const auto places = torch::nonzero(local).reshape({-1});
    const auto held = mine.index_select(0, rows.index({local}) - first_row);
    if (options_.shard_bank()) {  // each rank keeps them: the bank never meets in one place
      shard_ = {group, places, rows.size(0)};
      rows = rows.index({local});
      memory_bank_ = held.contiguous();
    } else {  // every rank gathers the whole bank
      const auto gathered = group->all_gather(held);
      const auto gathered_places = group->all_gather(places.to(torch::kCPU)).to(mine.device());
      memory_bank_ = torch::empty({rows.size(0), dims}, mine.options());
      memory_bank_.index_copy_(0, gathered_places, gathered.to(mine.device()));
    }
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
  if (sharded()) {
    set_left_out_scores(sharded_left_out_scores(per_image, first_image, images, bank_images));
    return;
  }
  const auto left_out = [&](int64_t begin, int64_t end) {
    return scores_of(per_image.slice(0, begin, end),
                     torch::arange(first_image + begin, first_image + end, bank_images.options()), bank_images,
                     /*exact_only=*/true)
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

PatchcoreScores Patchcore::scores_of(const torch::Tensor& patches, const torch::Tensor& image_ids,
                                    const torch::Tensor& bank_images, bool exact_only) const {
  // Exact search takes the leave-one-out groups; faiss cannot, so its models calibrate on the full search.
  const BankIndex* index = !exact_only || index_.kind() == "exact" ? &index_ : nullptr;
  return patchcore_scores(patches, memory_bank_, options_.neighbours(), image_ids, bank_images, index,
                          sharded() ? &shard_ : nullptr);
}

torch::Tensor Patchcore::sharded_left_out_scores(const torch::Tensor& per_image, int64_t first_image, int64_t images,
                                                 const torch::Tensor& bank_images) const {
  // Every rank must search its shard for every image, so the ranks' batches meet: at each step each rank
  // adds up to feature_batch_size of its own images, and every rank scores them all.
  const int64_t own = per_image.size(0), chunk = options_.feature_batch_size();
  auto most_steps = torch::tensor({(own + chunk - 1) / chunk}, torch::kLong);
  shard_.group->all_reduce_max(most_steps);
  const int64_t steps = most_steps.item<int64_t>();
  auto scores = torch::empty({images}, torch::kFloat32);
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t begin = std::min(own, step * chunk), end = std::min(own, begin + chunk);
    const auto queries = shard_.group->all_gather(per_image.slice(0, begin, end));
    const auto ids = shard_.group->all_gather(
        torch::arange(first_image + begin, first_image + end, torch::kLong)).to(bank_images.device());
    const auto image = scores_of(queries, ids, bank_images, /*exact_only=*/true).image;
    scores.index_put_({ids.cpu()}, image.cpu().to(torch::kFloat32));
  }
  return scores;
}

namespace {

// Each query's nearest distance over every shard, from this rank's `distance`.
torch::Tensor least_over_shards(const torch::Tensor& distance, const BankShard* shard) {
  if (!shard) return distance;
  auto least = distance.clone();
  shard->group->all_reduce_min(least);
  return least;
}

// m* of each image, from the shard that holds it (ties: the lower row of the whole bank). `local_distance`
// and `local_row` are this rank's nearest distance and row for each image's worst patch, `distance` the
// least over the shards.
torch::Tensor nearest_memory_rows(const torch::Tensor& memory_bank, const torch::Tensor& local_row,
                                  const torch::Tensor& local_distance, const torch::Tensor& distance,
                                  const BankShard* shard) {
  if (!shard) return memory_bank.index_select(0, local_row);
  const int64_t n = local_row.size(0);
  const auto none = std::numeric_limits<int64_t>::max();
  auto place = torch::full({n}, none, local_row.options());
  auto holds = torch::zeros({n}, local_row.options().dtype(torch::kBool));
  if (memory_bank.size(0) > 0) {
    holds = local_distance == distance;
    place = torch::where(holds, shard->rows.index_select(0, local_row), place);
  }
  auto chosen = place.clone();
  shard->group->all_reduce_min(chosen);
  auto star = torch::zeros({n, memory_bank.size(1)}, memory_bank.options());
  if (memory_bank.size(0) > 0)
    star = torch::where((holds & (place == chosen)).unsqueeze(1), memory_bank.index_select(0, local_row), star);
  shard->group->all_reduce_sum(star);  // one holder per image, zeros elsewhere
  return star;
}

// The distances of each image's worst patch to the k memory neighbours of m*, nearest first: the whole bank's
// k nearest to m*, merged from every shard's k nearest when sharded. Every distance comes from the fixed-order
// kernel (exact_search.hpp), so a shard's candidates carry the bits the whole bank's search gives them.
torch::Tensor distances_to_support(const torch::Tensor& worst_patch, const torch::Tensor& star,
                                   const torch::Tensor& memory_bank, int64_t k, const torch::Tensor& image_ids,
                                   const torch::Tensor& bank_images, const BankShard* shard) {
  const int64_t n = star.size(0), local_k = std::min(k, memory_bank.size(0));
  torch::Tensor to_m_star, support, to_support;
  if (local_k > 0) {
    const bool left_out = image_ids.defined() && bank_images.defined();
    k_nearest_neighbours(star, memory_bank, local_k, &to_m_star, &support, left_out ? image_ids : torch::Tensor(),
                         left_out ? bank_images : torch::Tensor());  // n x k, m* first
    const auto support_features = memory_bank.index_select(0, support.flatten());
    to_support = row_pair_distances(worst_patch.repeat_interleave(local_k, 0), support_features).reshape({n, local_k});
  }
  if (!shard) return to_support;
  // Every shard's candidates (distance to m*, row of the whole bank, distance to the worst patch), exactly
  // in float64, candidate-major so that the gather stacks them.
  auto candidates = torch::zeros({0, n, 3}, star.options().dtype(torch::kFloat64));
  if (local_k > 0)
    candidates = torch::stack({to_m_star.to(torch::kFloat64),
                               shard->rows.index_select(0, support.flatten()).reshape({n, local_k}).to(torch::kFloat64),
                               to_support.to(torch::kFloat64)},
                              2)
                     .transpose(0, 1)
                     .contiguous();
  const auto all = shard->group->all_gather(candidates).transpose(0, 1);  // n x candidates x 3
  // Nearest first, ties to the lower row: sort by row, then stably by distance.
  const auto by_row = std::get<1>(all.select(2, 1).sort(c10::optional<bool>(true), 1));
  const auto distance_by_row = all.select(2, 0).gather(1, by_row);
  const auto order = by_row.gather(1, std::get<1>(distance_by_row.sort(c10::optional<bool>(true), 1)));
  const auto kept = order.slice(1, 0, std::min(k, order.size(1)));
  return all.select(2, 2).gather(1, kept).to(star.scalar_type());
}

}  // namespace

PatchcoreScores patchcore_scores(const torch::Tensor& patches, const torch::Tensor& memory_bank, int64_t neighbours,
                                 const torch::Tensor& image_ids, const torch::Tensor& bank_images,
                                 const BankIndex* index, const BankShard* shard) {
  const int64_t n = patches.size(0), p = patches.size(1);
  const int64_t k = std::min(neighbours, shard ? shard->bank_rows : memory_bank.size(0));
  const auto flat = patches.reshape({n * p, patches.size(2)});
  const bool left_out = image_ids.defined() && bank_images.defined();
  torch::Tensor distance, nearest;
  const auto query_groups = left_out ? image_ids.repeat_interleave(p) : torch::Tensor();
  if (memory_bank.size(0) == 0) {  // a shard that drew no row
    distance = torch::full({n * p}, std::numeric_limits<float>::infinity(), flat.options());
    nearest = torch::zeros({n * p}, flat.options().dtype(torch::kLong));
  } else if (index != nullptr) {
    index->search(flat, &distance, &nearest, query_groups, left_out ? bank_images : torch::Tensor());
  } else {
    nearest_neighbours(flat, memory_bank, &distance, &nearest, kNearestNeighbourBlock, query_groups, bank_images);
  }
  const auto local_scores = distance.reshape({n, p});
  const auto patch_scores = least_over_shards(local_scores, shard);
  // Re-weighting (Roth et al., eq. 7): the most anomalous patch m_test of each image, its nearest memory
  // patch m*, and the softmax over m_test's distances to the k memory neighbours of m*.
  const auto [score, where] = patch_scores.max(1);
  const auto rows = torch::arange(n, where.options());
  const auto worst_patch = patches.index({rows, where});  // n x D
  const auto star = nearest_memory_rows(memory_bank, nearest.reshape({n, p}).index({rows, where}),
                                        local_scores.index({rows, where}), score, shard);  // n x D
  const auto to_support =
      distances_to_support(worst_patch, star, memory_bank, k, left_out ? image_ids : torch::Tensor(),
                           left_out ? bank_images : torch::Tensor(), shard);  // n x k
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
  ADX_CHECK_AS(NotFittedError, memory_bank_.defined(), "patchcore has no memory bank; fit it first");
  const int64_t n = batch.x.size(0);
  int64_t h = 0, w = 0;
  torch::Tensor features;  // n x P x D
  if (!sharded()) {
    features = embed_patches(batch.x, &h, &w);
  } else {
    // Collective: the ranks must be scoring the same images. Each embeds its share of them (the backbone is
    // the cost), and the features meet, since every shard must search every patch.
    ProcessGroup& group = *shard_.group;
    const auto [least, largest] = range_over_ranks(group, n);
    ADX_CHECK_AS(ValueError, least == n && largest == n,
                 "rank {}: a sharded patchcore scores collectively, and every rank must pass the same images; "
                 "this rank has a batch of {}, others between {} and {}",
                 group.rank(), n, least, largest);
    const int64_t ranks = group.world_size(), rank = group.rank();
    auto mine = embed_patches(batch.x.slice(0, n * rank / ranks, n * (rank + 1) / ranks), &h, &w);
    auto shape = torch::tensor({h, w, memory_bank_.size(1)}, torch::kLong);
    group.all_reduce_max(shape);  // a rank with no image learns the grid from the others
    h = shape[0].item<int64_t>();
    w = shape[1].item<int64_t>();
    if (!mine.defined()) mine = torch::zeros({0, h * w, memory_bank_.size(1)}, memory_bank_.options());
    features = group.all_gather(mine);
  }
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
  if (!sharded()) {
    state["patchcore.memory_bank"] = memory_bank_.detach().cpu();
    const auto index = index_.serialize();
    if (index.defined()) state["patchcore.index"] = index;
    return;
  }
  // The shards meet on rank 0 in the whole bank's order, and rank 0 indexes them as one process does.
  const auto places = shard_.group->gather(shard_.rows.cpu());
  const auto rows = shard_.group->gather(memory_bank_.detach().cpu());
  if (shard_.group->rank() != 0) return;  // only rank 0 writes
  ADX_CHECK_AS(ValueError, places.size(0) == shard_.bank_rows,
               "the shards hold {} rows of a bank of {}; was every rank's model sharded from the same one?",
               places.size(0), shard_.bank_rows);
  auto whole = torch::empty({shard_.bank_rows, rows.size(1)}, rows.options());
  whole.index_copy_(0, places, rows);
  BankIndex index;
  index.build(whole, bank_search());
  state["patchcore.memory_bank"] = index.order().defined() ? index.bank() : whole;
  const auto record = index.serialize();
  if (record.defined()) state["patchcore.index"] = record;
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
  shard_ = BankShard();
  if (index != state.end())
    index_.deserialize(index->second, memory_bank_, bank_search());
  else
    index_bank();
  if (ProcessGroup* group = current_process_group(); group && options_.shard_bank()) shard_across(*group);
}

}  // namespace adx
