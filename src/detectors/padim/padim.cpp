#include <adx/detectors/padim/padim.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

void PadimOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_backbone_options(*this, c);
  c.at_least("channels", channels(), 0).above("regularization", regularization(), 0.0);
}

Padim::Padim(Options options) : BackboneDetector(std::move(options)) {}

void Padim::build_head(const std::vector<int64_t>& item_shape) {
  // The feature-map size and channel count follow from one forward pass of an empty image.
  torch::NoGradGuard no_grad;
  backbone_->eval();
  const auto probe = embed(backbone_->forward(torch::zeros({1, item_shape[0], item_shape[1], item_shape[2]})));
  total_channels_ = probe.size(1);
  const int64_t paper = options_.backbone() == "resnet18" ? 100 : 550;
  const int64_t d = std::min(options_.channels() > 0 ? options_.channels() : paper, total_channels_);
  map_height_ = probe.size(2);
  map_width_ = probe.size(3);
  const int64_t positions = map_height_ * map_width_;
  channel_index_ = container().register_buffer("channel_index", torch::arange(d, torch::kLong));
  mean_ = container().register_buffer("mean", torch::zeros({positions, d}));
  inverse_covariance_ = container().register_buffer("inverse_covariance", torch::zeros({positions, d, d}));
}

torch::Tensor Padim::embed(const std::map<std::string, torch::Tensor>& features) const {
  return concat_layers(features, backbone_->layers(), /*bilinear=*/false, /*neighbourhood_average=*/false);
}

void Padim::fit_model(const Data& train, const Data&) {
  load_backbone_weights();
  const int64_t n = train.size(), d = channel_index_.size(0), positions = map_height_ * map_width_;
  ADX_CHECK_AS(ShapeError, n >= 2, "padim needs at least 2 training images for a covariance, got {}", n);
  torch::NoGradGuard no_grad;
  // A random subset of channels, drawn once (seeded by runtime.seed) and stored with the model.
  channel_index_.copy_(torch::randperm(total_channels_, torch::kLong).slice(0, 0, d).to(channel_index_.device()));
  // Positions x items x channels, filled chunk by chunk.
  auto embeddings = torch::empty({positions, n, d}, train.x.options());
  for_each_feature_batch(train.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t begin) {
    const auto e = embed(f).index_select(1, channel_index_);
    embeddings.slice(1, begin, begin + e.size(0)).copy_(e.flatten(2).permute({2, 0, 1}));
  });
  const auto gaussian = padim_gaussian(embeddings, options_.regularization());
  mean_.copy_(gaussian.mean);
  inverse_covariance_.copy_(gaussian.inverse_covariance);
  if (n < 3) return;  // one image left out of two leaves no covariance
  const auto left_out = padim_left_out_distances(padim_distances(embeddings, mean_, inverse_covariance_), n);
  set_left_out_scores(scores_by_batch(n, [&](int64_t begin, int64_t end) {
    return scores_from_distances(left_out.slice(1, begin, end), train.x.size(2), train.x.size(3)).per_item;
  }));
}

Scores Padim::scores_from_distances(const torch::Tensor& distances, int64_t height, int64_t width) const {
  Scores s;
  s.pixel_map = upsample_and_blur(distances.t().reshape({distances.size(1), 1, map_height_, map_width_}), height,
                                  width, options_.blur_sigma());
  s.per_item = s.pixel_map.flatten(1).amax(1);
  return s;
}

Scores Padim::score_model(const Batch& batch) {
  std::vector<torch::Tensor> distances;
  for_each_feature_batch(batch.x, [&](const std::map<std::string, torch::Tensor>& f, int64_t) {
    const auto e = embed(f).index_select(1, channel_index_);  // n x d x h x w
    distances.push_back(padim_distances(e.flatten(2).permute({2, 0, 1}), mean_, inverse_covariance_));  // P x n
  });
  return scores_from_distances(torch::cat(distances, 1), batch.x.size(2), batch.x.size(3));
}

ADX_BUILTIN_DETECTOR(padim, factory_for<Padim>(),
                     "PaDiM: per-position Gaussian of backbone features, Mahalanobis map")

}  // namespace adx
