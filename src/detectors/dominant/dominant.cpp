#include <adx/detectors/dominant/dominant.hpp>

namespace adx {
namespace {

std::vector<int64_t> widths(int64_t first, int64_t hidden, int64_t layers, int64_t last) {
  std::vector<int64_t> w{first};
  for (int64_t i = 0; i + 1 < layers; ++i) w.push_back(hidden);
  w.push_back(last);
  return w;
}

}  // namespace

DominantNetImpl::DominantNetImpl(int64_t features, const DominantOptions& o) {
  const int64_t encoder_layers = std::max<int64_t>(1, o.layers() / 2);
  const int64_t decoder_layers = std::max<int64_t>(1, o.layers() - encoder_layers);
  encoder = register_module("encoder", nn::GcnStack(widths(features, o.hidden(), encoder_layers, o.hidden()), o.dropout()));
  attribute_decoder = register_module(
      "attribute_decoder", nn::GcnStack(widths(o.hidden(), o.hidden(), decoder_layers, features), o.dropout()));
  structure_decoder = register_module(
      "structure_decoder",
      nn::GcnStack(widths(o.hidden(), o.hidden(), std::max<int64_t>(1, decoder_layers - 1), o.hidden()), o.dropout()));
}

std::pair<torch::Tensor, torch::Tensor> DominantNetImpl::forward(const torch::Tensor& x, const torch::Tensor& adjacency) {
  const auto h = torch::relu(encoder->forward(x, adjacency));
  return {structure_decoder->forward(h, adjacency), attribute_decoder->forward(h, adjacency)};
}

Dominant::Dominant(Options options) : GraphDetector(std::move(options)) {
  const auto& o = options_;
  ADX_CHECK_AS(OptionError, o.hidden() > 0 && o.layers() >= 2, "hidden must be > 0 and layers >= 2, got {} and {}",
               o.hidden(), o.layers());
  ADX_CHECK_AS(OptionError, o.alpha() >= 0 && o.alpha() <= 1, "alpha must be in [0, 1], got {}", o.alpha());
  ADX_CHECK_AS(OptionError, o.negative_samples() >= 1, "negative_samples must be >= 1, got {}", o.negative_samples());
  ADX_CHECK_AS(OptionError, o.dropout() >= 0 && o.dropout() < 1, "dropout must be in [0, 1), got {}", o.dropout());
}

torch::Tensor Dominant::node_scores(const Batch& batch, c10::optional<at::Generator> generator) {
  const auto& g = graphs_.of(batch);
  const int64_t nodes = batch.x.size(0);
  const auto targets = batch.targets.defined() ? batch.targets
                                               : torch::arange(nodes, torch::TensorOptions().dtype(torch::kLong).device(batch.x.device()));
  const auto [z, x_hat] = net_->forward(batch.x, g.adjacency);
  const auto attribute = (batch.x.index_select(0, targets) - x_hat.index_select(0, targets)).pow(2).sum(1).sqrt();

  // Edges: (1 - a)^2 - a^2 for every neighbour j of a target i, summed per target.
  const auto [rows, owner] = g.edges_from(targets);
  const auto src = g.symmetric[0].index_select(0, rows), dst = g.symmetric[1].index_select(0, rows);
  const auto a_edge = torch::sigmoid((z.index_select(0, src) * z.index_select(0, dst)).sum(1));
  auto structure = torch::zeros({targets.size(0)}, z.options()).index_add(0, owner, (1 - a_edge).pow(2) - a_edge.pow(2));
  // All other nodes: (N - 1) / k * sum of a^2 over k uniformly drawn nodes j != i, a chunk
  // of targets at a time (each chunk gathers chunk x k embeddings).
  const int64_t k = options_.negative_samples();
  const auto long_options = torch::TensorOptions().dtype(torch::kLong);
  std::vector<torch::Tensor> others_sum;
  for (int64_t begin = 0; begin < targets.size(0); begin += kTargetChunk) {
    const int64_t n = std::min(kTargetChunk, targets.size(0) - begin);
    const auto chunk = targets.narrow(0, begin, n);
    const int64_t high = std::max<int64_t>(2, nodes);
    auto offsets = generator ? torch::randint(1, high, {n, k}, *generator, long_options)
                             : torch::randint(1, high, {n, k}, long_options);
    const auto others = torch::remainder(chunk.unsqueeze(1) + offsets.to(chunk.device()), nodes);  // never i itself
    const auto z_others = z.index_select(0, others.reshape({-1})).reshape({n, k, -1});
    const auto a = torch::sigmoid(torch::bmm(z_others, z.index_select(0, chunk).unsqueeze(2)).squeeze(2));
    others_sum.push_back(a.pow(2).sum(1));
  }
  structure = structure + static_cast<double>(nodes - 1) / static_cast<double>(k) * torch::cat(others_sum);
  const auto structure_error = structure.clamp_min(0).add(1e-12).sqrt();
  return options_.alpha() * structure_error + (1 - options_.alpha()) * attribute;
}

void Dominant::fit_model(const Data& train, const Data& validation) {
  train_module(*net_, train, validation, options_.train(),
               [this](const Batch& batch, bool) { return node_scores(batch, c10::nullopt).mean(); }, progress(),
               type());
}

Scores Dominant::score_model(const Batch& batch) {
  Scores s;
  auto generator = at::detail::createCPUGenerator(static_cast<uint64_t>(options_.runtime().seed()) + 17);
  s.per_item = node_scores(batch, generator);
  return s;
}

}  // namespace adx
