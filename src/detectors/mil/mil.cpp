#include <adx/detectors/mil/mil.hpp>
#include <adx/nn/resnet.hpp>
#include "detectors/builtin_detector.hpp"

#include <chrono>

namespace adx {

std::vector<int64_t> segment_bounds(int64_t frames, int64_t segments) {
  // Fewer frames than segments: one frame per segment.
  const int64_t parts = std::max<int64_t>(1, std::min(frames, segments));
  std::vector<int64_t> bounds;
  for (int64_t k = 0; k <= parts; ++k) bounds.push_back(k * frames / parts);
  return bounds;
}

torch::Tensor mil_ranking_loss(const torch::Tensor& anomalous, const torch::Tensor& normal, double smoothness,
                               double sparsity) {
  const auto ranking = torch::relu(1.0 - std::get<0>(anomalous.max(1)) + std::get<0>(normal.max(1)));
  const auto smooth = (anomalous.slice(1, 1) - anomalous.slice(1, 0, -1)).pow(2).sum(1);
  const auto sparse = anomalous.sum(1);
  return (ranking + smoothness * smooth + sparsity * sparse).mean();
}

MilNetImpl::MilNetImpl(const std::vector<int64_t>& item_shape, const MilOptions& o)
    : motion(o.motion()), max_pooling(o.pooling() == FramePooling::Max) {
  const int64_t channels = item_shape.at(1);
  int64_t frame_width = 0;
  if (o.backbone() == "none") {
    frame_width = channels * item_shape.at(2) * item_shape.at(3);
  } else if (o.backbone() == "pixels") {
    grid = o.grid();
    frame_width = channels * grid * grid;
  } else {
    backbone = register_module("backbone", Backbone(o.backbone(), std::vector<std::string>{o.layer()}));
    if (!o.weights().empty()) backbone->load_weights(o.weights());
    frame_width = backbone->net->channels(o.layer());
  }
  description_width = frame_width * (motion ? 2 : 1);
  description_mean = register_buffer("description_mean", torch::zeros({description_width}));
  description_std = register_buffer("description_std", torch::ones({description_width}));
  torch::nn::Sequential net;
  int64_t in = description_width;
  for (const auto width : o.hidden()) {
    net->push_back(torch::nn::Linear(in, width));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::Dropout(o.dropout()));
    in = width;
  }
  net->push_back(torch::nn::Linear(in, 1));
  net->push_back(torch::nn::Sigmoid());
  mlp = register_module("mlp", net);
}

torch::Tensor MilNetImpl::frame_features(const torch::Tensor& frames, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  if (grid > 0) return torch::adaptive_avg_pool2d(frames, {grid, grid}).flatten(1);
  if (!backbone) return frames.flatten(1);
  // The backbone is frozen: evaluation mode whatever mode the MLP is in.
  backbone->eval();
  const auto layer = backbone->layers().front();
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < frames.size(0); b += batch_size) {
    const auto maps = backbone->forward(frames.slice(0, b, b + batch_size)).at(layer);
    parts.push_back(max_pooling ? maps.amax({2, 3}) : maps.mean({2, 3}));
  }
  return parts.empty() ? torch::zeros({0, description_width / (motion ? 2 : 1)}, frames.options()) : torch::cat(parts);
}

torch::Tensor MilNetImpl::describe(const torch::Tensor& appearance, const torch::Tensor& motion_features) const {
  auto d = appearance.mean(0);
  if (motion) {
    d = torch::cat({d, motion_features.size(0) > 0 ? motion_features.mean(0) : torch::zeros_like(d)});
  }
  // As the paper's C3D features: unit length, so a video's brightness or size does not scale its scores.
  return d / d.norm().clamp_min(1e-12);
}

torch::Tensor MilNetImpl::forward(const torch::Tensor& descriptions) {
  return mlp->forward((descriptions - description_mean) / description_std).squeeze(-1);
}

void MilOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  if (backbone() != "none" && backbone() != "pixels") {
    try {
      nn::resnet_arch_from_name(backbone());
    } catch (const OptionError& e) {
      c.that(false, "backbone", "must be none, pixels or a ResNet: {}", e.what());
    }
  }
  c.at_least("grid", grid(), 1)
      .at_least("segments", segments(), 1)
      .each_at_least("hidden", hidden(), 1, 0)
      .in("dropout", dropout(), 0.0, 1.0, "[)")
      .at_least("smoothness", smoothness(), 0.0)
      .at_least("sparsity", sparsity(), 0.0)
      .at_least("feature_batch_size", feature_batch_size(), 1);
  c.that(train().batch_size() >= 2, "train.batch_size", "must be >= 2 (half anomalous, half normal bags), got {}",
         train().batch_size());
}

Mil::Mil(Options options) : DetectorWithOptions(std::move(options)) {}

Preprocess Mil::auto_preprocess(const InputKind&) const {
  const bool cnn = options_.backbone() != "pixels" && options_.backbone() != "none";
  return cnn ? Preprocess::GlobalMinMax : Preprocess::MinMax;
}

void Mil::build(const std::vector<int64_t>& item_shape, const InputKind&) {
  net_ = MilNet(item_shape, options_);
  net_->to(device());
}

namespace {

// Frame features of clips B x L x C x H x W (B x L x F), and features of the differences of consecutive
// frames (B x (L - 1) x F; undefined without motion): what both training and scoring describe segments with.
std::pair<torch::Tensor, torch::Tensor> clip_features(MilNet& net, const torch::Tensor& clips, int64_t batch_size) {
  const int64_t b = clips.size(0), length = clips.size(1);
  const auto appearance = net->frame_features(clips.flatten(0, 1), batch_size).view({b, length, -1});
  if (!net->motion) return {appearance, torch::Tensor()};
  if (length < 2) return {appearance, appearance.slice(1, 0, 0)};
  const auto differences = (clips.slice(1, 1) - clips.slice(1, 0, -1)).abs();
  return {appearance, net->frame_features(differences.flatten(0, 1), batch_size).view({b, length - 1, -1})};
}

}  // namespace

torch::Tensor Mil::describe_clips(const torch::Tensor& clips) {
  const auto [appearance, motion] = clip_features(net_, clips, options_.feature_batch_size());
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < clips.size(0); ++i)
    rows.push_back(net_->describe(appearance[i], motion.defined() ? motion[i] : torch::Tensor()));
  return torch::stack(rows);
}

void Mil::fit_model(const Data& train, const Data&) {
  const auto labels = train.sequence_labels.cpu().to(torch::kLong).reshape({-1});
  const int64_t anomalous_videos = labels.sum().item<int64_t>();
  const int64_t videos = labels.numel();
  ADX_CHECK_AS(ValueError, anomalous_videos > 0 && anomalous_videos < videos,
               "mil ranks anomalous videos above normal ones: it needs both, got {} anomalous of {} videos",
               anomalous_videos, videos);
  // The bags: every video's segments described once (the backbone is frozen).
  std::vector<torch::Tensor> bags;
  int64_t offset = 0;
  for (const auto length : train.lengths) {
    const auto [video_appearance, video_motion] = clip_features(net_, train.x.slice(0, offset, offset + length).unsqueeze(0), options_.feature_batch_size());
    const auto appearance = video_appearance[0];
    const auto motion = video_motion.defined() ? video_motion[0] : torch::Tensor();
    const auto bounds = segment_bounds(length, options_.segments());
    std::vector<torch::Tensor> segments;
    for (size_t k = 0; k + 1 < bounds.size(); ++k) {
      const int64_t a = bounds[k], e = bounds[k + 1];
      // Differences inside the segment: frame t against t - 1 for a < t < e (index t - 1 in `motion`).
      const auto inside = motion.defined() ? motion.slice(0, a, std::max(a, e - 1)) : torch::Tensor();
      segments.push_back(net_->describe(appearance.slice(0, a, e), inside));
    }
    // Short videos have fewer segments: repeat the last so that every bag has the same size.
    while (static_cast<int64_t>(segments.size()) < options_.segments()) segments.push_back(segments.back());
    bags.push_back(torch::stack(segments));
    offset += length;
  }
  const auto all = torch::stack(bags);  // videos x segments x F
  {
    // Standardised descriptions: a static scene dominates every frame's features, and what tells
    // segments apart is small beside it (the paper's C3D features vary far more between clips).
    torch::NoGradGuard no_grad;
    const auto flat = all.reshape({-1, all.size(2)});
    net_->description_mean.copy_(flat.mean(0));
    net_->description_std.copy_(flat.std(0, /*unbiased=*/false).clamp_min(1e-6));
  }
  const auto on_device = [&](const torch::Tensor& idx) { return idx.to(all.device()); };
  const auto anomalous = on_device(labels.eq(1).nonzero().reshape({-1}));
  const auto normal = on_device(labels.eq(0).nonzero().reshape({-1}));

  const auto& t = options_.train();
  auto optimizer = make_optimizer(net_->mlp->parameters(), t);
  const int64_t half = t.batch_size() / 2;
  net_->mlp->train();
  for (int64_t iteration = 0; iteration < t.epochs(); ++iteration) {
    const auto started = std::chrono::steady_clock::now();
    set_learning_rate(*optimizer, scheduled_lr(t, iteration));
    // Bags drawn with replacement: the paper's 30 anomalous and 30 normal videos per batch.
    const auto pick = [&](const torch::Tensor& pool) {
      return pool.index_select(0, on_device(torch::randint(pool.size(0), {half}, torch::kLong)));
    };
    const auto a = net_->forward(all.index_select(0, pick(anomalous)));
    const auto n = net_->forward(all.index_select(0, pick(normal)));
    auto loss = mil_ranking_loss(a, n, options_.smoothness(), options_.sparsity());
    ADX_CHECK_AS(TrainingError, std::isfinite(loss.item<double>()), "mil: the ranking loss became {} at iteration {}",
                 loss.item<double>(), iteration + 1);
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    if (progress()) {
      EpochReport r;
      r.epoch = iteration + 1;
      r.epochs = t.epochs();
      r.train_loss = loss.item<double>();
      r.learning_rate = scheduled_lr(t, iteration);
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      r.last = iteration + 1 == t.epochs();
      r.stage = type();
      progress()(r);
    }
  }
  net_->eval();
  torch::NoGradGuard no_grad;
  // The threshold comes from the normal training videos' segment scores.
  set_left_out_scores(net_->forward(all.index_select(0, normal)).reshape({-1}).to(torch::kDouble));
}

Scores Mil::score_model(const Batch& batch) {
  Scores s;
  s.per_item = net_->forward(describe_clips(batch.x));
  // Every frame of a clip gets the clip's score, as every frame of a segment gets the segment's in the paper.
  s.step_map = s.per_item.unsqueeze(1).expand({-1, batch.x.size(1)}).contiguous();
  return s;
}

ADX_BUILTIN_DETECTOR(mil, factory_for<Mil>(),
                     "MIL ranking on segment features, weakly supervised by video-level labels")

}  // namespace adx
