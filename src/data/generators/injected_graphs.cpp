#include <adx/core/error.hpp>
#include <adx/data/generators/injected_graphs.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace adx::graph {
namespace {

const auto kIndexOptions = torch::TensorOptions().dtype(torch::kLong);

at::Generator seeded_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

}  // namespace

InjectedGraph inject_structural(const InjectedGraph& g, int64_t clique_size, int64_t cliques, double drop,
                                uint64_t seed) {
  const int64_t n = g.x.size(0);
  ADX_CHECK_AS(ValueError, clique_size >= 2 && cliques >= 1, "structural injection needs cliques >= 1 of >= 2 nodes, got {} of {}",
               cliques, clique_size);
  ADX_CHECK_AS(ValueError, clique_size * cliques <= n, "structural injection: {} cliques of {} nodes need more than the {} nodes",
               cliques, clique_size, n);
  ADX_CHECK_AS(ValueError, drop >= 0 && drop < 1, "structural injection: drop must be in [0, 1), got {}", drop);
  auto gen = seeded_generator(seed);
  const auto chosen = torch::randperm(n, gen, kIndexOptions).slice(0, 0, clique_size * cliques);
  const auto groups = chosen.reshape({cliques, clique_size});
  // Every unordered pair inside each clique (torch.combinations), as PyGOD lists them.
  const auto first = groups.unsqueeze(2).expand({cliques, clique_size, clique_size}).reshape({-1});
  const auto second = groups.unsqueeze(1).expand({cliques, clique_size, clique_size}).reshape({-1});
  const auto position = torch::arange(clique_size, kIndexOptions);
  const auto upper = (position.unsqueeze(1) < position.unsqueeze(0)).expand({cliques, clique_size, clique_size});
  const auto pairs = upper.reshape({-1}).nonzero().reshape({-1});
  auto src = first.index_select(0, pairs), dst = second.index_select(0, pairs);
  if (drop > 0) {
    // PyGOD keeps int((1 - p) * pairs) whole pairs drawn at random: an undirected edge goes with both copies.
    const auto kept = torch::randperm(src.size(0), gen, kIndexOptions)
                          .slice(0, 0, static_cast<int64_t>((1.0 - drop) * static_cast<double>(src.size(0))));
    src = src.index_select(0, kept);
    dst = dst.index_select(0, kept);
  }
  InjectedGraph out = g;
  out.edge_index = torch::cat({g.edge_index.to(torch::kLong), torch::stack({torch::cat({src, dst}), torch::cat({dst, src})})}, 1);
  out.labels = g.labels.defined() ? g.labels.clone() : torch::zeros({n}, kIndexOptions);
  out.labels.index_fill_(0, chosen, 1);
  return out;
}

InjectedGraph inject_contextual(const InjectedGraph& g, int64_t count, int64_t candidates, uint64_t seed) {
  const int64_t n = g.x.size(0);
  ADX_CHECK_AS(ValueError, count >= 1 && count <= n, "contextual injection: count must be in 1..{}, got {}", n, count);
  ADX_CHECK_AS(ValueError, candidates >= 1, "contextual injection: candidates must be >= 1, got {}", candidates);
  auto gen = seeded_generator(seed);
  const auto chosen = torch::randperm(n, gen, kIndexOptions).slice(0, 0, count);
  const auto pool = torch::randint(n, {count, candidates}, gen, kIndexOptions);
  const auto x = g.x.to(torch::kFloat32);
  // Distance from each chosen node to each of its candidates; the farthest wins.
  const auto d = (x.index_select(0, pool.reshape({-1})).reshape({count, candidates, -1}) -
                  x.index_select(0, chosen).unsqueeze(1))
                     .pow(2)
                     .sum(-1);
  const auto farthest = pool.gather(1, d.argmax(1, true)).reshape({-1});
  InjectedGraph out = g;
  out.x = g.x.clone();
  out.x.index_copy_(0, chosen, g.x.index_select(0, farthest));
  out.labels = g.labels.defined() ? g.labels.clone() : torch::zeros({n}, kIndexOptions);
  out.labels.index_fill_(0, chosen, 1);
  return out;
}

InjectedGraph make_synthetic_graph(const SyntheticGraphOptions& o) {
  ADX_CHECK_AS(OptionError, o.nodes >= 2 && o.edges >= 1 && o.features >= 1 && o.communities >= 1,
               "synthetic graph: nodes >= 2, edges, features and communities >= 1, got {}, {}, {}, {}", o.nodes, o.edges,
               o.features, o.communities);
  ADX_CHECK_AS(OptionError, o.exponent > 1, "synthetic graph: exponent must be > 1, got {}", o.exponent);
  auto gen = seeded_generator(o.seed);
  const int64_t n = o.nodes, k = o.communities;
  const auto community = torch::randint(k, {n}, gen, kIndexOptions);
  // Chung-Lu weights: node of rank r has expected degree ~ r^(-1 / (exponent - 1)).
  const auto rank = torch::randperm(n, gen, kIndexOptions).to(torch::kDouble) + 1.0;
  const auto weight = rank.pow(-1.0 / (o.exponent - 1.0));
  const auto src = torch::multinomial(weight, o.edges, /*replacement=*/true, gen);
  auto dst = torch::multinomial(weight, o.edges, true, gen);
  // Most edges stay inside the source's community: redraw their targets from it.
  const auto inside = torch::rand({o.edges}, gen) < o.within_community;
  const auto src_community = community.index_select(0, src);
  for (int64_t c = 0; c < k; ++c) {
    const auto members = (community == c).nonzero().reshape({-1});
    const auto rows = (inside & (src_community == c)).nonzero().reshape({-1});
    if (members.numel() == 0 || rows.numel() == 0) continue;
    const auto picks = torch::multinomial(weight.index_select(0, members), rows.size(0), true, gen);
    dst.index_copy_(0, rows, members.index_select(0, picks));
  }
  InjectedGraph out;
  const auto keep = (src != dst).nonzero().reshape({-1});
  out.edge_index = torch::stack({src.index_select(0, keep), dst.index_select(0, keep)});
  const auto centres = torch::randn({k, o.features}, gen) * 2.0;
  out.x = (centres.index_select(0, community) + torch::randn({n, o.features}, gen)).to(torch::kFloat32);
  out.labels = torch::zeros({n}, kIndexOptions);
  return out;
}

}  // namespace adx::graph
