#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include "detectors/builtin_detector.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <numeric>
#include <random>

namespace adx {
namespace {

constexpr const char* kForestStatePrefix = "isolation_forest.";

// The rows an isolation forest sees: one per item, flattened (a window's steps and channels, a node's
// features), as contiguous float64 on the CPU.
torch::Tensor item_rows(const Batch& batch) {
  auto x = batch.targets.defined() ? batch.x.index_select(0, batch.targets.to(batch.x.device())) : batch.x;
  return x.reshape({x.size(0), -1}).to(torch::kCPU, torch::kFloat64).contiguous();
}

struct Tree {
  std::vector<int64_t> feature, left, right, size;
  std::vector<double> split;
};

// Grows one tree on the rows `sample` of `data` (rows x features, row-major), depth first: a node's
// children are appended after it, so every walk moves to higher node numbers.
Tree grow_tree(const double* data, int64_t features, std::vector<int64_t> sample, int64_t max_depth,
               std::mt19937_64& rng) {
  Tree tree;
  std::vector<int64_t> order(static_cast<size_t>(features));
  std::iota(order.begin(), order.end(), 0);
  struct Pending {
    int64_t begin, end, depth, parent;
    bool is_left;
  };
  std::vector<Pending> stack{{0, static_cast<int64_t>(sample.size()), 0, -1, false}};
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  while (!stack.empty()) {
    const Pending p = stack.back();
    stack.pop_back();
    const auto node = static_cast<int64_t>(tree.feature.size());
    if (p.parent >= 0) (p.is_left ? tree.left : tree.right)[static_cast<size_t>(p.parent)] = node;
    const int64_t n = p.end - p.begin;
    int64_t chosen = -1;
    double lo = 0.0, hi = 0.0;
    if (n > 1 && p.depth < max_depth) {
      // Features in random order until one varies among the node's rows (scikit-learn's random splitter
      // skips constant features the same way); none varies: a leaf.
      for (int64_t j = 0; j < features && chosen < 0; ++j) {
        std::uniform_int_distribution<int64_t> pick(j, features - 1);
        std::swap(order[static_cast<size_t>(j)], order[static_cast<size_t>(pick(rng))]);
        const int64_t f = order[static_cast<size_t>(j)];
        lo = hi = data[sample[static_cast<size_t>(p.begin)] * features + f];
        for (int64_t i = p.begin + 1; i < p.end; ++i) {
          const double v = data[sample[static_cast<size_t>(i)] * features + f];
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
        if (hi > lo) chosen = f;
      }
    }
    tree.feature.push_back(chosen);
    tree.left.push_back(-1);
    tree.right.push_back(-1);
    tree.size.push_back(n);
    tree.split.push_back(0.0);
    if (chosen < 0) continue;
    double split = lo + (hi - lo) * uniform(rng);
    if (split >= hi) split = lo;  // rounding reached the maximum: no row would go right
    tree.split.back() = split;
    const auto middle = std::partition(sample.begin() + p.begin, sample.begin() + p.end,
                                       [&](int64_t row) { return data[row * features + chosen] <= split; });
    const auto mid = static_cast<int64_t>(middle - sample.begin());
    // The right child is pushed first so that the left one is numbered next (preorder).
    stack.push_back({mid, p.end, p.depth + 1, node, false});
    stack.push_back({p.begin, mid, p.depth + 1, node, true});
  }
  return tree;
}

}  // namespace

void IsolationForestOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).at_least("trees", trees(), 1).at_least("max_samples", max_samples(), 2);
}

double isolation_average_path_length(double n) {
  if (n <= 1.0) return 0.0;
  if (n <= 2.0) return 1.0;
  constexpr double kEuler = 0.5772156649015329;
  return 2.0 * (std::log(n - 1.0) + kEuler) - 2.0 * (n - 1.0) / n;
}

IsolationForestModel grow_isolation_forest(const torch::Tensor& rows, int64_t trees, int64_t max_samples,
                                           uint64_t seed) {
  ADX_CHECK_AS(ShapeError, rows.dim() == 2, "isolation forest: rows must be N x F, got {} dimensions", rows.dim());
  const int64_t n = rows.size(0), features = rows.size(1);
  ADX_CHECK_AS(ValueError, n >= 2, "isolation forest: needs at least 2 training items, got {}", n);
  ADX_CHECK_AS(ValueError, features >= 1, "isolation forest: items have no values");
  ADX_CHECK_AS(OptionError, trees >= 1 && max_samples >= 2, "isolation forest: trees {} and max_samples {}", trees,
               max_samples);
  const auto data_tensor = rows.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* data = data_tensor.data_ptr<double>();
  const int64_t psi = std::min(max_samples, n);
  const auto max_depth = static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(std::max<int64_t>(psi, 2)))));

  // Each tree draws from its own generator, seeded by (seed, tree): the forest does not depend on the
  // thread count.
  std::vector<Tree> grown(static_cast<size_t>(trees));
  at::parallel_for(0, trees, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    for (int64_t t = begin; t < end; ++t) {
      std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(t)};
      std::mt19937_64 rng(seq);
      std::iota(all.begin(), all.end(), 0);
      for (int64_t i = 0; i < psi; ++i) {  // the first psi of a partial Fisher-Yates shuffle
        std::uniform_int_distribution<int64_t> pick(i, n - 1);
        std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(pick(rng))]);
      }
      grown[static_cast<size_t>(t)] =
          grow_tree(data, features, std::vector<int64_t>(all.begin(), all.begin() + psi), max_depth, rng);
    }
  });

  IsolationForestModel forest;
  forest.samples_per_tree = psi;
  forest.features = features;
  for (const auto& tree : grown) {
    const auto offset = static_cast<int64_t>(forest.feature.size());
    forest.roots.push_back(offset);
    for (size_t k = 0; k < tree.feature.size(); ++k) {
      forest.feature.push_back(tree.feature[k]);
      forest.left.push_back(tree.left[k] < 0 ? -1 : tree.left[k] + offset);
      forest.right.push_back(tree.right[k] < 0 ? -1 : tree.right[k] + offset);
      forest.size.push_back(tree.size[k]);
      forest.split.push_back(tree.split[k]);
    }
  }
  return forest;
}

torch::Tensor isolation_path_lengths(const IsolationForestModel& forest, const torch::Tensor& rows) {
  ADX_CHECK_AS(NotFittedError, !forest.roots.empty(), "isolation forest: no trees grown");
  ADX_CHECK_AS(ShapeError, rows.dim() == 2 && rows.size(1) == forest.features,
               "isolation forest: rows must be N x {}, got {}", forest.features, shape_string(rows.sizes().vec()));
  const auto data_tensor = rows.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* data = data_tensor.data_ptr<double>();
  const int64_t n = rows.size(0), features = forest.features;
  // c(size) of every node once, rather than a logarithm per item and tree.
  std::vector<double> leaf_term(forest.size.size());
  for (size_t k = 0; k < leaf_term.size(); ++k)
    leaf_term[k] = isolation_average_path_length(static_cast<double>(forest.size[k]));
  auto lengths = torch::empty({n}, torch::kFloat64);
  double* out = lengths.data_ptr<double>();
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double* row = data + i * features;
      double total = 0.0;
      for (const int64_t root : forest.roots) {
        int64_t node = root, depth = 0;
        while (forest.feature[static_cast<size_t>(node)] >= 0) {
          const auto k = static_cast<size_t>(node);
          node = row[forest.feature[k]] <= forest.split[k] ? forest.left[k] : forest.right[k];
          ++depth;
        }
        total += static_cast<double>(depth) + leaf_term[static_cast<size_t>(node)];
      }
      out[i] = total / static_cast<double>(forest.roots.size());
    }
  });
  return lengths;
}

torch::Tensor isolation_scores(const IsolationForestModel& forest, const torch::Tensor& rows) {
  const double normaliser = isolation_average_path_length(static_cast<double>(forest.samples_per_tree));
  ADX_CHECK_AS(ValueError, normaliser > 0.0, "isolation forest: trees grown on {} items cannot score",
               forest.samples_per_tree);
  return torch::pow(2.0, -isolation_path_lengths(forest, rows) / normaliser);
}

void IsolationForest::fit_model(const Data& train, const Data&) {
  const auto rows = map_batches(train, options_.runtime().score_batch_size(), item_rows);
  forest_ = grow_isolation_forest(rows, options_.trees(), options_.max_samples(),
                                  static_cast<uint64_t>(options_.runtime().seed()));
}

Scores IsolationForest::score_model(const Batch& batch) {
  Scores s;
  s.per_item = isolation_scores(forest_, item_rows(batch)).to(torch::kFloat32);
  return s;
}

void IsolationForest::save_extra(TensorMap& state) const {
  const auto longs = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  state[std::string(kForestStatePrefix) + "feature"] = longs(forest_.feature);
  state[std::string(kForestStatePrefix) + "left"] = longs(forest_.left);
  state[std::string(kForestStatePrefix) + "right"] = longs(forest_.right);
  state[std::string(kForestStatePrefix) + "size"] = longs(forest_.size);
  state[std::string(kForestStatePrefix) + "roots"] = longs(forest_.roots);
  state[std::string(kForestStatePrefix) + "split"] = torch::tensor(forest_.split, torch::kFloat64);
  state[std::string(kForestStatePrefix) + "shape"] = longs({forest_.samples_per_tree, forest_.features});
}

void IsolationForest::load_extra(const TensorMap& state) {
  const auto get = [&](const char* name, torch::ScalarType type) {
    const std::string key = std::string(kForestStatePrefix) + name;
    ADX_CHECK_AS(IoError, state.count(key) && state.at(key).dim() == 1 && state.at(key).scalar_type() == type,
                 "model file lacks a valid '{}'", key);
    return state.at(key).contiguous();
  };
  const auto longs = [&](const char* name) {
    const auto t = get(name, torch::kLong);
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  };
  IsolationForestModel f;
  f.feature = longs("feature");
  f.left = longs("left");
  f.right = longs("right");
  f.size = longs("size");
  f.roots = longs("roots");
  const auto split = get("split", torch::kFloat64);
  f.split.assign(split.data_ptr<double>(), split.data_ptr<double>() + split.numel());
  const auto shape = longs("shape");
  ADX_CHECK_AS(IoError, shape.size() == 2 && shape[0] >= 2 && shape[1] >= 1, "model file has an invalid '{}shape'",
               kForestStatePrefix);
  f.samples_per_tree = shape[0];
  f.features = shape[1];
  // A walk must end at a leaf inside the arrays: children come after their parent.
  const auto nodes = static_cast<int64_t>(f.feature.size());
  ADX_CHECK_AS(IoError,
               !f.roots.empty() && f.left.size() == f.feature.size() && f.right.size() == f.feature.size() &&
                   f.size.size() == f.feature.size() && f.split.size() == f.feature.size(),
               "model file's isolation forest arrays disagree in length");
  for (int64_t k = 0; k < nodes; ++k) {
    const auto i = static_cast<size_t>(k);
    const bool leaf = f.feature[i] == -1;
    ADX_CHECK_AS(IoError,
                 f.size[i] >= 0 && (leaf || (f.feature[i] >= 0 && f.feature[i] < f.features && f.left[i] > k &&
                                             f.left[i] < nodes && f.right[i] > k && f.right[i] < nodes)),
                 "model file's isolation forest node {} is invalid", k);
  }
  for (const int64_t root : f.roots)
    ADX_CHECK_AS(IoError, root >= 0 && root < nodes, "model file's isolation forest root {} is out of range", root);
  forest_ = std::move(f);
}

ADX_BUILTIN_DETECTOR(isolation_forest, factory_for<IsolationForest>(),
                     "Isolation Forest: mean path length over random trees (rows, windows, node features)")

}  // namespace adx
