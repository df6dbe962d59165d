#include <adx/detectors/components/coreset.hpp>
#include <adx/detectors/spade/spade.hpp>

namespace adx {

Spade::Spade(Options options) : BackboneDetector(std::move(options)) {
  ADX_CHECK_AS(OptionError, options_.image_neighbours() >= 1 && options_.pixel_neighbours() >= 1,
               "image_neighbours and pixel_neighbours must be >= 1, got {} and {}", options_.image_neighbours(),
               options_.pixel_neighbours());
}

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
}

Scores Spade::score_model(const Batch& batch) {
  ADX_CHECK_AS(NotFittedError, pooled_.defined(), "spade has no training features; fit it first");
  const int64_t train_n = pooled_.size(0);
  const int64_t k_image = std::min(options_.image_neighbours(), train_n);
  const int64_t k_pixel = std::min(options_.pixel_neighbours(), train_n);
  const auto pyramid_layers = split_layers(options_.layers());
  std::vector<torch::Tensor> image_scores, maps;
  for_each_feature_batch(batch.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    const auto pooled = f.at(options_.image_layer()).mean({2, 3});
    const auto [image_score, near_index] = spade_image_scores(pooled, pooled_, k_image);
    image_scores.push_back(image_score);
    for (int64_t i = 0; i < pooled.size(0); ++i) {
      const auto gallery_images = near_index[i].slice(0, 0, k_pixel);
      torch::Tensor sum;
      for (size_t l = 0; l < pyramid_layers.size(); ++l) {
        const auto distance =
            spade_pixel_distances(f.at(pyramid_layers[l])[i], pyramid_[l].index_select(0, gallery_images));
        const auto map = upsample_and_blur(distance.unsqueeze(0).unsqueeze(0), batch.x.size(2), batch.x.size(3), 0.0);
        sum = sum.defined() ? sum + map : map;
      }
      maps.push_back(sum / static_cast<double>(pyramid_layers.size()));
    }
  });
  Scores s;
  s.per_item = torch::cat(image_scores);
  s.pixel_map = upsample_and_blur(torch::cat(maps), batch.x.size(2), batch.x.size(3), options_.blur_sigma());
  return s;
}

std::pair<torch::Tensor, torch::Tensor> spade_image_scores(const torch::Tensor& pooled_test,
                                                           const torch::Tensor& pooled_train, int64_t k) {
  const auto [near_distance, near_index] = torch::cdist(pooled_test, pooled_train).topk(k, 1, /*largest=*/false);
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

}  // namespace adx
