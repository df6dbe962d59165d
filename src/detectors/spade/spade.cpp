#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/spade/spade.hpp>
#include "detectors/builtin_detector.hpp"

#include <limits>

namespace adx {

void SpadeOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_backbone_options(*this, c);
  c.at_least("image_neighbours", image_neighbours(), 1).at_least("pixel_neighbours", pixel_neighbours(), 1);
}

Spade::Spade(Options options) : BackboneDetector(std::move(options)) {}

std::vector<std::string> Spade::backbone_layers() const {
  auto layers = split_layers(options_.layers());
  if (std::find(layers.begin(), layers.end(), options_.image_layer()) == layers.end())
    layers.push_back(options_.image_layer());
  return layers;
}

void Spade::fit_model(const Data& train, const Data&) {
  load_backbone_weights();
  const auto pyramid_layers = split_layers(options_.layers());
  std::vector<torch::Tensor> pooled;
  std::vector<std::vector<torch::Tensor>> pyramid(pyramid_layers.size());
  for_each_feature_batch(train.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    pooled.push_back(f.at(options_.image_layer()).mean({2, 3}));
    for (size_t l = 0; l < pyramid_layers.size(); ++l) pyramid[l].push_back(f.at(pyramid_layers[l]));
  });
  pooled_ = torch::cat(pooled);
  pyramid_.clear();
  for (auto& parts : pyramid) pyramid_.push_back(torch::cat(parts));

  // Threshold calibration: each training image scored against the other training images.
  const int64_t n = pooled_.size(0);
  if (n < 2) return;
  set_left_out_scores(scores_by_batch(n, [&](int64_t begin, int64_t end) {
    std::vector<torch::Tensor> pyramid_part;
    for (const auto& layer : pyramid_) pyramid_part.push_back(layer.slice(0, begin, end));
    const auto own = torch::arange(begin, end, torch::TensorOptions(torch::kLong).device(pooled_.device()));
    return score_features(pooled_.slice(0, begin, end), pyramid_part, train.x.size(2), train.x.size(3), own).per_item;
  }));
}

Scores Spade::score_features(const torch::Tensor& pooled, const std::vector<torch::Tensor>& pyramid, int64_t height,
                             int64_t width, const torch::Tensor& own_index) const {
  // A training image scored left-out has one neighbour fewer to choose from.
  const int64_t available = pooled_.size(0) - (own_index.defined() ? 1 : 0);
  const int64_t k_image = std::min(options_.image_neighbours(), available);
  const int64_t k_pixel = std::min(options_.pixel_neighbours(), available);
  const auto [image_score, near_index] = spade_image_scores(pooled, pooled_, k_image, own_index);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < pooled.size(0); ++i) {
    const auto gallery_images = near_index[i].slice(0, 0, k_pixel);
    torch::Tensor sum;
    for (size_t l = 0; l < pyramid.size(); ++l) {
      const auto distance = spade_pixel_distances(pyramid[l][i], pyramid_[l].index_select(0, gallery_images));
      const auto map = upsample_and_blur(distance.unsqueeze(0).unsqueeze(0), height, width, 0.0);
      sum = sum.defined() ? sum + map : map;
    }
    maps.push_back(sum / static_cast<double>(pyramid.size()));
  }
  Scores s;
  s.per_item = image_score;
  s.pixel_map = upsample_and_blur(torch::cat(maps), height, width, options_.blur_sigma());
  return s;
}

Scores Spade::score_model(const Batch& batch) {
  ADX_CHECK_AS(NotFittedError, pooled_.defined(), "spade has no training features; fit it first");
  const auto pyramid_layers = split_layers(options_.layers());
  std::vector<Scores> parts;
  for_each_feature_batch(batch.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    std::vector<torch::Tensor> pyramid;
    for (const auto& layer : pyramid_layers) pyramid.push_back(f.at(layer));
    parts.push_back(score_features(f.at(options_.image_layer()).mean({2, 3}), pyramid, batch.x.size(2),
                                   batch.x.size(3)));
  });
  Scores s;
  std::vector<torch::Tensor> items, maps;
  for (const auto& part : parts) items.push_back(part.per_item), maps.push_back(part.pixel_map);
  s.per_item = torch::cat(items);
  s.pixel_map = torch::cat(maps);
  return s;
}

std::pair<torch::Tensor, torch::Tensor> spade_image_scores(const torch::Tensor& pooled_test,
                                                           const torch::Tensor& pooled_train, int64_t k,
                                                           const torch::Tensor& own_index) {
  auto distance = torch::cdist(pooled_test, pooled_train);
  if (own_index.defined())
    distance.scatter_(1, own_index.reshape({-1, 1}), std::numeric_limits<float>::infinity());
  const auto [near_distance, near_index] = distance.topk(k, 1, /*largest=*/false);
  return {near_distance.mean(1), near_index};
}

torch::Tensor spade_pixel_distances(const torch::Tensor& test, const torch::Tensor& gallery) {
  const auto queries = test.flatten(1).t().contiguous();  // hw x C
  const auto bank = gallery.permute({0, 2, 3, 1}).reshape({-1, test.size(0)}).contiguous();
  torch::Tensor distance, unused;
  nearest_neighbours(queries, bank, &distance, &unused);
  return distance.reshape({test.size(1), test.size(2)});
}

void Spade::save_extra(TensorMap& state) const {
  state["spade.pooled"] = pooled_.detach().cpu();
  for (size_t l = 0; l < pyramid_.size(); ++l) state[fmt::format("spade.pyramid{}", l)] = pyramid_[l].detach().cpu();
}

void Spade::load_extra(const TensorMap& state) {
  auto pooled = state.find("spade.pooled");
  ADX_CHECK_AS(IoError, pooled != state.end(), "model file lacks spade's training features");
  pooled_ = pooled->second.to(device());
  pyramid_.clear();
  for (size_t l = 0; l < split_layers(options_.layers()).size(); ++l) {
    auto it = state.find(fmt::format("spade.pyramid{}", l));
    ADX_CHECK_AS(IoError, it != state.end(), "model file lacks spade's pyramid layer {}", l);
    pyramid_.push_back(it->second.to(device()));
  }
}

ADX_BUILTIN_DETECTOR(spade, factory_for<Spade>(),
                     "SPADE: image kNN on pooled features, pixel kNN over a feature pyramid")

}  // namespace adx
