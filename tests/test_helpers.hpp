#pragma once
// Shared helpers of the test programs: temp paths and small synthetic data sets.
#include <adx/base.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <fstream>
#include <vector>
#include <string>

namespace adx::test {

/// A tensor's values as plain vectors (for metrics and exact comparisons).
inline std::vector<double> to_doubles(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
inline std::vector<int64_t> to_longs(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}
inline std::vector<int> to_ints(const torch::Tensor& t) {
  const auto v = to_longs(t);
  return std::vector<int>(v.begin(), v.end());
}

/// Writes `bytes` to `path` as they are.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The whole content of `path` ("" when it cannot be read).
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("ADX_TEST_TMP");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

/// Options for a short training run: `epochs` epochs, batches of 64, 2 threads and seed `seed`, then `extra`.
inline adx::OptionMap quick_options(int epochs, adx::OptionMap extra = {}, const std::string& seed = "7") {
  adx::OptionMap o{{"train.epochs", std::to_string(epochs)}, {"train.batch_size", "64"},
                   {"runtime.threads", "2"}, {"runtime.seed", seed}};
  for (auto& kv : extra) o[kv.first] = kv.second;
  return o;
}

/// A training set of normal items and a labelled test set (1 = anomaly).
struct Easy {
  torch::Tensor train, test;
  std::vector<int> labels;
};

/// Assembles train and test sets; test labels are 0 for the normal items, then 1 for the anomalies.
inline Easy make_easy(torch::Tensor train, const torch::Tensor& normal_test, const torch::Tensor& anomalies) {
  Easy e;
  e.train = std::move(train);
  e.test = torch::cat({normal_test, anomalies});
  e.labels.assign(static_cast<size_t>(normal_test.size(0)), 0);
  e.labels.resize(static_cast<size_t>(e.test.size(0)), 1);
  return e;
}

/// Tabular: normal items lie near a 3-dimensional subspace of R^16; anomalies do not.

inline Easy easy_tabular(int64_t n_train = 600, int64_t n_normal_test = 200, int64_t n_anomalies = 50) {
  torch::manual_seed(123);
  const auto basis = torch::randn({3, 16});
  auto normal = [&](int64_t n) { return torch::randn({n, 3}).matmul(basis) + 0.05 * torch::randn({n, 16}); };
  auto train = normal(n_train);
  auto normal_test = normal(n_normal_test);
  return make_easy(train, normal_test, 1.5 * torch::randn({n_anomalies, 16}));
}

/// Images 1 x 16 x 16: normal = horizontal sine stripes of random phase; anomalies = a bright square blob
/// pasted onto a normal image.
inline Easy easy_images(int64_t n_train = 400, int64_t n_normal_test = 100, int64_t n_anomalies = 40) {
  torch::manual_seed(321);
  const auto rows = torch::arange(16, torch::kFloat32).reshape({1, 1, 16, 1});
  auto normal = [&](int64_t n) {
    const auto phase = torch::rand({n, 1, 1, 1}) * 6.283f;
    return (0.5 + 0.4 * torch::sin(rows * 0.8 + phase)).expand({n, 1, 16, 16}).contiguous() +
           0.02 * torch::randn({n, 1, 16, 16});
  };
  auto train = normal(n_train);
  auto anomalies = normal(n_anomalies);
  for (int64_t i = 0; i < n_anomalies; ++i) {
    const int64_t r = (i * 5) % 10, c = (i * 3) % 10;
    anomalies.index_put_({i, 0, torch::indexing::Slice(r, r + 5), torch::indexing::Slice(c, c + 5)}, 1.0);
  }
  auto normal_test = normal(n_normal_test);
  return make_easy(train, normal_test, anomalies);
}

/// Images 1 x 16 x 16 whose orientation is obvious (a vertical gradient and a bar on the left);
/// anomalies are uniform noise. For detectors that learn orientation.
inline Easy easy_oriented_images(int64_t n_train = 300, int64_t n_normal_test = 60, int64_t n_anomalies = 30) {
  torch::manual_seed(99);
  const auto gradient = torch::linspace(0, 0.6, 16).reshape({1, 1, 16, 1}).expand({1, 1, 16, 16});
  auto normal = [&](int64_t n) {
    auto x = gradient.repeat({n, 1, 1, 1}) * (0.8 + 0.4 * torch::rand({n, 1, 1, 1}));
    x.index_put_({torch::indexing::Slice(), 0, torch::indexing::Slice(), torch::indexing::Slice(2, 5)}, 1.0);
    return x + 0.03 * torch::randn({n, 1, 16, 16});
  };
  auto train = normal(n_train);
  auto normal_test = normal(n_normal_test);
  return make_easy(train, normal_test, torch::rand({n_anomalies, 1, 16, 16}));
}

/// Images resized to `size` x `size` by nearest neighbour (pixels repeated, no new values).
inline torch::Tensor nearest_upscale(const torch::Tensor& images, int64_t size) {
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size}).mode(torch::kNearest));
}

/// Tabular, curved: normal items lie on a curved 2-dimensional surface in R^16, the image of
/// (z1, z2, z1^2, z2^2, z1 z2) under a fixed linear map. Anomalies lie in the same 5-dimensional linear
/// span and inside the normal range, but off the surface (moved along the curvature coordinates):
/// a linear model (PCA residual, Mahalanobis) sees little, a model of the 2-D surface sees them.
inline Easy curved_surface_tabular(int64_t n_train = 600, int64_t n_normal_test = 200, int64_t n_anomalies = 50,
                                   double offset = 0.3) {
  torch::manual_seed(2024);
  const auto map = torch::randn({5, 16});
  auto lift = [](const torch::Tensor& z) {
    const auto a = z.select(1, 0), b = z.select(1, 1);
    return torch::stack({a, b, a * a, b * b, a * b}, 1);
  };
  auto uniform_z = [](int64_t n) { return torch::rand({n, 2}) * 2 - 1; };
  auto noise = [](int64_t n) { return 0.02 * torch::randn({n, 16}); };
  auto train = lift(uniform_z(n_train)).matmul(map) + noise(n_train);
  auto normal_test = lift(uniform_z(n_normal_test)).matmul(map) + noise(n_normal_test);
  auto moved = lift(uniform_z(n_anomalies));
  const auto signs = torch::randint(0, 2, {n_anomalies, 3}).to(torch::kFloat32) * 2 - 1;
  moved.slice(1, 2, 5).add_(signs * (offset / std::sqrt(3.0)));
  return make_easy(train, normal_test, moved.matmul(map) + noise(n_anomalies));
}

/// Tabular, on the manifold: normal items fill a ring (radius 0.6 to 1) in a 2-D plane of R^16; anomalies
/// lie in the same plane, in the empty middle (radius below 0.25). They sit at the data's mean and have no
/// residual, so distance to the mean, Mahalanobis and PCA residual rank them as normal or more so; only a
/// model of where the data are dense sees them.
inline Easy ring_gap_tabular(int64_t n_train = 600, int64_t n_normal_test = 200, int64_t n_anomalies = 50) {
  torch::manual_seed(77);
  const auto plane = torch::randn({2, 16});
  auto ring = [&](int64_t n, double inner, double outer) {
    const auto radius = (torch::rand({n}) * (outer * outer - inner * inner) + inner * inner).sqrt();
    const auto angle = torch::rand({n}) * 6.2831853;
    return torch::stack({radius * angle.cos(), radius * angle.sin()}, 1).matmul(plane) + 0.02 * torch::randn({n, 16});
  };
  auto train = ring(n_train, 0.6, 1.0);
  auto normal_test = ring(n_normal_test, 0.6, 1.0);
  return make_easy(train, normal_test, ring(n_anomalies, 0.0, 0.25));
}

/// Images 1 x size x size: `shapes` small plus signs (3 x 3, 5 pixels) of random brightness at random,
/// non-touching places on a noisy background. An anomaly has one of them drawn as an X (also 5 pixels,
/// same brightness range): a change of local structure with the same intensities, in images too varied
/// for a linear model of the pixels.
inline Easy scattered_shapes_images(int64_t n_train = 400, int64_t n_normal_test = 100, int64_t n_anomalies = 40,
                                    int64_t size = 32, int64_t shapes = 12) {
  torch::manual_seed(4242);
  static const int plus[3][3] = {{0, 1, 0}, {1, 1, 1}, {0, 1, 0}};
  static const int cross[3][3] = {{1, 0, 1}, {0, 1, 0}, {1, 0, 1}};
  auto draw = [&](int64_t n, bool anomalous) {
    auto x = 0.2 + 0.03 * torch::randn({n, 1, size, size});
    const auto places = torch::randint(0, size - 2, {n, shapes, 200, 2}, torch::kLong);
    const auto brightness = 0.6 + 0.3 * torch::rand({n, shapes});
    const auto shape_noise = 0.03 * torch::randn({n, 1, size, size});
    auto a = x.accessor<float, 4>();
    auto noise = shape_noise.accessor<float, 4>();
    auto p = places.accessor<int64_t, 4>();
    auto b = brightness.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<char> taken(static_cast<size_t>(size * size), 0);
      for (int64_t s = 0; s < shapes; ++s) {
        // The first free place among 200 draws (a shape and its 1-pixel border must not overlap another).
        for (int64_t attempt = 0; attempt < 200; ++attempt) {
          const int64_t r = p[i][s][attempt][0], c = p[i][s][attempt][1];
          bool free = true;
          for (int64_t y = std::max<int64_t>(0, r - 1); y < std::min(size, r + 4) && free; ++y)
            for (int64_t xx = std::max<int64_t>(0, c - 1); xx < std::min(size, c + 4); ++xx)
              if (taken[static_cast<size_t>(y * size + xx)]) free = false;
          if (!free) continue;
          const auto& form = anomalous && s == 0 ? cross : plus;
          for (int64_t y = 0; y < 3; ++y)
            for (int64_t xx = 0; xx < 3; ++xx) {
              taken[static_cast<size_t>((r + y) * size + c + xx)] = 1;
              if (form[y][xx]) a[i][0][r + y][c + xx] = b[i][s] + noise[i][0][r + y][c + xx];
            }
          break;
        }
      }
    }
    return x;
  };
  auto train = draw(n_train, false);
  auto normal_test = draw(n_normal_test, false);
  return make_easy(train, normal_test, draw(n_anomalies, true));
}

/// Images 1 x size x size: one glyph (7 x 5: a bar, a foot and a tooth, asymmetric every way) of random
/// brightness at a random place on a noisy background. An anomaly is the glyph turned by 180 degrees: the
/// same pixels and intensities and, over random places, the same pixel covariance (a pattern and its 180
/// degree turn have the same autocorrelation), so no rule on pixel moments can separate them.
inline Easy turned_glyph_images(int64_t n_train = 400, int64_t n_normal_test = 100, int64_t n_anomalies = 40,
                                int64_t size = 32) {
  torch::manual_seed(515);
  auto glyph = torch::zeros({7, 5});
  glyph.slice(1, 0, 2).fill_(1);                     // the bar
  glyph.slice(0, 5, 7).fill_(1);                     // the foot
  glyph.slice(0, 2, 4).slice(1, 2, 4).fill_(1);      // the tooth
  auto draw = [&](int64_t n, bool turned) {
    const auto form = turned ? glyph.flip({0, 1}) : glyph;
    auto x = 0.2 + 0.03 * torch::randn({n, 1, size, size});
    const auto rows = torch::randint(0, size - 7 + 1, {n}, torch::kLong);
    const auto cols = torch::randint(0, size - 5 + 1, {n}, torch::kLong);
    const auto brightness = 0.6 + 0.3 * torch::rand({n, 1, 1});
    const auto stroke = brightness + 0.03 * torch::randn({n, 7, 5});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = rows[i].item<int64_t>(), c = cols[i].item<int64_t>();
      auto window = x[i][0].slice(0, r, r + 7).slice(1, c, c + 5);
      window.copy_(torch::where(form > 0, stroke[i], window));
    }
    return x;
  };
  auto train = draw(n_train, false);
  auto normal_test = draw(n_normal_test, false);
  return make_easy(train, normal_test, draw(n_anomalies, true));
}

/// The best AUROC any trivial rule reaches on `test` (items flattened): the largest absolute value, the
/// distance to the training mean, the Mahalanobis distance, and the PCA residual for every number of
/// components (the best one picked with the test labels, which favours the rule).
inline double trivial_rule_auroc(const torch::Tensor& train, const torch::Tensor& test, const std::vector<int>& labels) {
  const auto x = train.reshape({train.size(0), -1}).to(torch::kFloat64);
  const auto t = test.reshape({test.size(0), -1}).to(torch::kFloat64);
  const auto mean = x.mean(0);
  const auto centred = t - mean;
  auto auroc = [&](const torch::Tensor& scores) { return adx::metrics::roc_auc(labels, to_doubles(scores)); };
  double best = std::max(auroc(t.abs().amax(1)), auroc(centred.norm(2, 1)));
  const int64_t d = x.size(1);
  const auto covariance = (x - mean).t().matmul(x - mean) / static_cast<double>(x.size(0) - 1) +
                          1e-6 * torch::eye(d, x.options());
  best = std::max(best, auroc((centred.matmul(torch::linalg_inv(covariance)) * centred).sum(1)));
  const auto basis = std::get<2>(torch::linalg_svd(x - mean, /*full_matrices=*/false));  // components x d
  for (int64_t k = 1; k < std::min(d, basis.size(0)); ++k) {
    const auto top = basis.slice(0, 0, k);
    best = std::max(best, auroc((centred - centred.matmul(top.t()).matmul(top)).norm(2, 1)));
  }
  return best;
}

// Caps this process's address space for the lifetime of the object.
class AddressSpaceCap {
 public:
  explicit AddressSpaceCap(int64_t headroom_bytes) {
    getrlimit(RLIMIT_AS, &saved_);
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0;
    statm >> pages;
    rlimit cap = saved_;
    cap.rlim_cur = static_cast<rlim_t>(pages * sysconf(_SC_PAGESIZE) + headroom_bytes);
    active_ = setrlimit(RLIMIT_AS, &cap) == 0;
  }
  ~AddressSpaceCap() { setrlimit(RLIMIT_AS, &saved_); }
  bool active() const { return active_; }

 private:
  rlimit saved_{};
  bool active_ = false;
};

/// Copies a reference's weights (a state dict under adx's parameter names) into `module`: every parameter
/// must be there with its shape. Returns how many were copied, for the caller to check against the
/// reference's count.
inline int copy_reference_parameters(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights) {
  torch::NoGradGuard no_grad;
  int copied = 0;
  for (auto& p : module.named_parameters()) {
    INFO(p.key());
    REQUIRE(weights.count(p.key()) == 1);
    REQUIRE(p.value().sizes() == weights.at(p.key()).sizes());
    p.value().copy_(weights.at(p.key()));
    ++copied;
  }
  return copied;
}

/// The path in environment variable `name` (ctest sets it to a reference fixture file).
inline std::string reference_fixture(const char* name) {
  const char* path = std::getenv(name);
  INFO(name << " is set by ctest to the file its export script writes");
  REQUIRE(path != nullptr);
  return path;
}

/// N x 1 x size x size smooth vertical stripes of random phase with a little noise: a texture whose patches
/// and filter responses every texture method knows.
inline torch::Tensor striped(int64_t n, int64_t size, uint64_t seed) {
  torch::manual_seed(seed);
  const auto x = torch::arange(size, torch::kFloat32).reshape({1, 1, 1, size});
  const auto phase = torch::rand({n, 1, 1, 1}) * 6.28;
  return (0.5 + 0.3 * torch::sin(x * 0.8 + phase) + 0.02 * torch::randn({n, 1, size, size})).expand({n, 1, size, size}).clone();
}

/// `images` (N x C x S x S) with a bright (1.0) 16 x 16 block in the middle of the last `defective` ones.
inline torch::Tensor with_blocks(torch::Tensor images, int64_t defective) {
  using torch::indexing::Slice;
  const int64_t n = images.size(0), at = images.size(2) / 2 - 8;
  images.index_put_({Slice(n - defective), Slice(), Slice(at, at + 16), Slice(at, at + 16)}, 1.0);
  return images;
}

/// The easy striped images grown to `size` px (nearest neighbour), kept in [0, 1].
inline Easy easy_images_at(int64_t size, int64_t n_train, int64_t n_normal_test, int64_t n_anomalies) {
  auto easy = easy_images(n_train, n_normal_test, n_anomalies);
  easy.train = nearest_upscale(easy.train, size).clamp(0, 1);
  easy.test = nearest_upscale(easy.test, size).clamp(0, 1);
  return easy;
}

/// Checks a nearest-neighbour answer (`index`, `distance`) computed by another arithmetic than adx's (faiss,
/// cdist) against adx's own (`expected_index`), from float64 distances: the rows agree, or where they
/// differ the two rows are a near-tie, their squared distances within `relative` of (|x| + |y|)^2, the scale
/// of float32's rounding of x^2 + y^2 - 2xy; and each distance is within that of the float64 one.
inline void require_same_nearest(const torch::Tensor& queries, const torch::Tensor& bank, const torch::Tensor& index,
                                 const torch::Tensor& distance, const torch::Tensor& expected_index,
                                 double relative) {
  const auto x = queries.to(torch::kFloat64), y = bank.to(torch::kFloat64);
  const auto scale = (x.norm(2, 1) + y.norm(2, 1).max()).square();
  const auto d2 = [&](const torch::Tensor& rows) { return (x - y.index_select(0, rows)).square().sum(1); };
  const auto gap = (d2(index) - d2(expected_index)).abs() / scale;
  INFO(index.ne(expected_index).sum().item<int64_t>() << " rows differ; largest near-tie gap " << gap.max().item<double>());
  REQUIRE(gap.max().item<double>() <= relative);
  const auto error = (distance.to(torch::kFloat64).square() - d2(index)).abs() / scale;
  INFO("largest distance error " << error.max().item<double>());
  REQUIRE(error.max().item<double>() <= relative);
}

inline void require_identical_reload(Detector& detector, const torch::Tensor& images, const Scores& scores) {
  const auto path = temp_path(detector.type() + ".adx");
  detector.save(path);
  auto loaded = load(path);
  const auto again = loaded->score(Data::images(images));
  REQUIRE(torch::equal(again.per_item, scores.per_item));
  REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
  REQUIRE(loaded->calibrated() == detector.calibrated());
  if (detector.calibrated()) REQUIRE(loaded->threshold() == detector.threshold());
}

}  // namespace adx::test
