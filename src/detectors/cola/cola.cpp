#include <adx/detectors/cola/cola.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {
namespace {

torch::Tensor uniform(std::vector<int64_t> shape, c10::optional<at::Generator> generator,
                      const torch::TensorOptions& options) {
  return generator ? torch::rand(shape, *generator, options) : torch::rand(shape, options);
}

}  // namespace

namespace graph {

torch::Tensor sample_subgraphs(const GraphStructure& g, const torch::Tensor& targets, int64_t size,
                               c10::optional<at::Generator> generator) {
  const int64_t b = targets.size(0), need = size - 1;
  const auto long_options = targets.options().dtype(torch::kLong);
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat64);
  auto found = targets.unsqueeze(1).repeat({1, std::max<int64_t>(need, 1)});  // placeholders
  auto count = torch::zeros({b}, long_options);
  const auto degree = g.degree();
  const auto col = g.symmetric[1];
  auto position = targets.clone();
  const int64_t single_steps = 3 * need, walk_steps = 50;
  for (int64_t step = 0; step < single_steps + walk_steps && need > 0; ++step) {
    if ((count >= need).all().item<bool>()) break;
    // Restart: always during the first phase, with the reference's probability 0.9 afterwards, so that
    // the subgraph stays close to the target.
    if (step < single_steps) {
      position = targets.clone();
    } else {
      const auto restart = uniform({b}, generator, float_options).to(targets.device()) < 0.9;
      position = torch::where(restart, targets, position);
    }
    const auto deg = degree.index_select(0, position);
    const auto pick = (uniform({b}, generator, float_options).to(targets.device()) * deg.to(torch::kDouble))
                          .floor()
                          .to(torch::kLong)
                          .clamp_max((deg - 1).clamp_min(0));
    const auto has_neighbours = deg > 0;
    const auto next = torch::where(has_neighbours,
                                   col.index_select(0, (g.row_start.index_select(0, position) + pick).clamp_max(std::max<int64_t>(0, col.size(0) - 1))),
                                   targets);
    position = next;
    // Keep it when it is new: not the target, not already found.
    const auto seen = (found == next.unsqueeze(1)) & (torch::arange(found.size(1), long_options).unsqueeze(0) < count.unsqueeze(1));
    const auto is_new = (next != targets) & seen.any(1).logical_not() & (count < need);
    const auto rows = is_new.nonzero().reshape({-1});
    if (rows.numel() > 0) {
      found.index_put_({rows, count.index_select(0, rows)}, next.index_select(0, rows));
      count.index_add_(0, rows, torch::ones_like(rows));
    }
  }
  // Too small a neighbourhood: repeat what was found (or the target itself).
  const auto slot = torch::arange(std::max<int64_t>(need, 1), long_options).unsqueeze(0);
  const auto source = torch::remainder(slot, count.clamp_min(1).unsqueeze(1));
  auto filled = torch::where(count.unsqueeze(1) > 0, found.gather(1, source), targets.unsqueeze(1).expand_as(found));
  if (need == 0) filled = filled.slice(1, 0, 0);
  return torch::cat({filled, targets.unsqueeze(1)}, 1);
}

}  // namespace graph

namespace {

// The network after its GCN's linear map: propagation, readout and the discriminator's logits for the
// positive and the negative pairs. The linear map has no bias, so it commutes with selecting rows: scoring
// projects every node once instead of every subgraph's copy of it.
torch::Tensor propagate_and_discriminate(ColaNetImpl& net, const torch::Tensor& projected,
                                         const torch::Tensor& adjacency) {
  const auto h = net.activation->forward(torch::bmm(adjacency, projected) + net.gcn_bias);  // B x (S+1) x E
  const auto readout = h.narrow(1, 0, h.size(1) - 1).mean(1);                            // the subgraph
  const auto node = h.select(1, h.size(1) - 1);                                           // the target alone
  // Negative pairs, as the reference shifts the batch: row i takes row i - 1's subgraph, and row 0 the
  // second-to-last row's (one row alone is its own negative).
  const int64_t b = readout.size(0);
  const auto shifted = b < 2 ? readout : torch::cat({readout.narrow(0, b - 2, 1), readout.narrow(0, 0, b - 1)});
  return torch::cat({net.discriminator->forward(node, readout), net.discriminator->forward(node, shifted)})
      .reshape({-1});
}

// The reference's inputs for subgraphs `nodes` (B x S, the target last) of rows `x` (raw or projected
// features): the normalised adjacency among the subgraph's nodes, and the features with the target
// anonymised.
std::pair<torch::Tensor, torch::Tensor> subgraph_inputs(const torch::Tensor& x, const GraphStructure& g,
                                                        const torch::Tensor& nodes) {
  const int64_t b = nodes.size(0), s = nodes.size(1);
  const auto targets = nodes.select(1, s - 1);
  // Adjacency among the subgraph's nodes, normalised as the reference does: D^-1/2 A D^-1/2
  // with the full graph's degrees, plus I; an extra isolated node carries the target alone.
  const auto u = nodes.unsqueeze(2).expand({b, s, s}), v = nodes.unsqueeze(1).expand({b, s, s});
  const auto degree = g.degree().to(x.scalar_type()).clamp_min(1);
  auto a = g.has_edge(u.reshape({-1}), v.reshape({-1})).reshape({b, s, s}).to(x.scalar_type()) *
           degree.index_select(0, u.reshape({-1})).rsqrt().reshape({b, s, s}) *
           degree.index_select(0, v.reshape({-1})).rsqrt().reshape({b, s, s});
  // + I on the whole graph, as the reference adds it before slicing: a node repeated in a small
  // neighbourhood's subgraph is joined to its copies.
  a = a + (u == v).to(a.scalar_type());
  auto adjacency = torch::zeros({b, s + 1, s + 1}, a.options());
  adjacency.narrow(1, 0, s).narrow(2, 0, s).copy_(a);
  adjacency.select(1, s).select(1, s).fill_(1.0);
  // Features: the subgraph with the target anonymised (zeros), then the target itself.
  auto features = x.index_select(0, nodes.reshape({-1})).reshape({b, s, -1});
  features = torch::cat({features.narrow(1, 0, s - 1), torch::zeros_like(features.narrow(1, 0, 1)),
                         x.index_select(0, targets).unsqueeze(1)},
                        1);
  return {features, adjacency};
}

// A round's score per subgraph from the logits of its positive, then its negative pairs: how much less
// the target agrees with its own neighbourhood than with another node's.
torch::Tensor round_scores(const torch::Tensor& logits) {
  const auto out = torch::sigmoid(logits);
  const int64_t b = out.size(0) / 2;
  return out.narrow(0, b, b) - out.narrow(0, 0, b);
}

}  // namespace

ColaNetImpl::ColaNetImpl(int64_t features, int64_t embedding) {
  gcn = register_module("gcn", torch::nn::Linear(torch::nn::LinearOptions(features, embedding).bias(false)));
  gcn_bias = register_parameter("gcn_bias", torch::zeros({embedding}));
  activation = register_module("activation", torch::nn::PReLU());
  discriminator = register_module("discriminator", torch::nn::Bilinear(embedding, embedding, 1));
  // The reference's initialisation: Xavier-uniform weights, zero biases.
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(gcn->weight);
  torch::nn::init::xavier_uniform_(discriminator->weight);
  discriminator->bias.zero_();
}

torch::Tensor ColaNetImpl::forward(const torch::Tensor& features, const torch::Tensor& adjacency) {
  return propagate_and_discriminate(*this, gcn->forward(features), adjacency);
}

void ColaOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .at_least("embedding", embedding(), 1)
      .at_least("subgraph_size", subgraph_size(), 2)
      .at_least("rounds", rounds(), 1);
}

Cola::Cola(Options options) : GraphDetector(std::move(options)) {}

torch::Tensor cola_logits(ColaNetImpl& net, const torch::Tensor& x, const GraphStructure& g, const torch::Tensor& nodes) {
  const auto [features, adjacency] = subgraph_inputs(x, g, nodes);
  return net.forward(features, adjacency);
}

torch::Tensor cola_round_scores(ColaNetImpl& net, const torch::Tensor& x, const GraphStructure& g,
                                const torch::Tensor& nodes) {
  return round_scores(cola_logits(net, x, g, nodes));
}

torch::Tensor Cola::logits(const Batch& batch, c10::optional<at::Generator> generator) {
  const auto& g = graphs_.of(batch);
  const auto nodes = graph::sample_subgraphs(g, batch_targets(batch), options_.subgraph_size(), generator);
  return cola_logits(*net_, batch.x, g, nodes);
}

void Cola::fit_model(const Data& train, const Data& validation) {
  train_module(*net_, train, validation, options_.train(),
               [this](const Batch& batch, bool) {
                 const auto out = logits(batch, c10::nullopt);
                 const int64_t b = out.size(0) / 2;
                 auto labels = torch::cat({torch::ones({b}, out.options()), torch::zeros({b}, out.options())});
                 return torch::binary_cross_entropy_with_logits(out, labels);
               },
               progress(), type());
}

Scores Cola::score_model(const Batch& batch) {
  auto generator = at::detail::createCPUGenerator(static_cast<uint64_t>(options_.runtime().seed()) + 29);
  const auto& g = graphs_.of(batch);
  const auto targets = batch_targets(batch);
  const int64_t b = targets.size(0);
  torch::Tensor total = torch::zeros({b}, batch.x.options());
  // Every node's features through the GCN's linear map once, rather than once per subgraph and round.
  const auto projected = net_->gcn->forward(batch.x);
  for (int64_t r = 0; r < options_.rounds(); ++r) {
    // A fresh order every round, as the reference shuffles the nodes before each round: the negatives
    // (the shifted order) are other nodes' subgraphs each time.
    const auto order = torch::randperm(b, generator, torch::TensorOptions().dtype(torch::kLong)).to(targets.device());
    const auto nodes = graph::sample_subgraphs(g, targets.index_select(0, order), options_.subgraph_size(), generator);
    const auto [features, adjacency] = subgraph_inputs(projected, g, nodes);
    total.index_add_(0, order, round_scores(propagate_and_discriminate(*net_, features, adjacency)));
  }
  Scores s;
  s.per_item = total / static_cast<double>(options_.rounds());
  return s;
}

ADX_BUILTIN_DETECTOR(cola, factory_for<Cola>(),
                     "CoLA: node against sampled neighbourhood subgraphs, contrastive discriminator")

}  // namespace adx
