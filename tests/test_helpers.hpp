#pragma once
// Shared helpers of the test programs: temp paths and small synthetic data sets.
#include <adx/base.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
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

}  // namespace adx::test
