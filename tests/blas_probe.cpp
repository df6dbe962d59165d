// Whether OpenBLAS's kernels run on this CPU: loads the BLAS LibTorch calls (libblas.so.3, OpenBLAS once
// bootstrap.sh has selected it), multiplies matrices of the sizes that reach its optimised kernels, checks
// the products, and prints the kernel family in use (openblas_get_corename). A kernel family the CPU cannot
// run ends the probe with SIGILL instead of a test. cmake/openblas_core.sh runs it under OPENBLAS_CORETYPE.
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);
using Dgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
                       const int*, const double*, const int*, const double*, double*, const int*);
using Sgemv = void (*)(const char*, const int*, const int*, const float*, const float*, const int*, const float*,
                       const int*, const float*, float*, const int*);

// C = A B for n x n matrices of small integers, whose products every kernel computes exactly.
template <class T, class Gemm>
bool gemm_exact(Gemm gemm, int n) {
  std::vector<T> a(n * n), b(n * n), c(n * n, 0), expected(n * n, 0);
  for (int i = 0; i < n * n; ++i) {
    a[i] = static_cast<T>(i % 7 - 3);
    b[i] = static_cast<T>(i % 5 - 2);
  }
  for (int j = 0; j < n; ++j)  // column-major, as BLAS reads
    for (int k = 0; k < n; ++k)
      for (int i = 0; i < n; ++i) expected[i + j * n] += a[i + k * n] * b[k + j * n];
  const T one = 1, zero = 0;
  gemm("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
  for (int i = 0; i < n * n; ++i)
    if (c[i] != expected[i]) return false;
  return true;
}

}  // namespace

int main() {
  void* blas = dlopen("libblas.so.3", RTLD_NOW);
  if (!blas) {
    std::fprintf(stderr, "blas_probe: cannot load libblas.so.3: %s\n", dlerror());
    return 2;
  }
  const auto sgemm = reinterpret_cast<Sgemm>(dlsym(blas, "sgemm_"));
  const auto dgemm = reinterpret_cast<Dgemm>(dlsym(blas, "dgemm_"));
  const auto sgemv = reinterpret_cast<Sgemv>(dlsym(blas, "sgemv_"));
  const auto corename = reinterpret_cast<char* (*)()>(dlsym(blas, "openblas_get_corename"));
  if (!sgemm || !dgemm || !sgemv) {
    std::fprintf(stderr, "blas_probe: libblas.so.3 lacks sgemm_, dgemm_ or sgemv_\n");
    return 2;
  }
  for (const int n : {8, 67, 256}) {
    if (!gemm_exact<float>(sgemm, n) || !gemm_exact<double>(dgemm, n)) {
      std::fprintf(stderr, "blas_probe: a %d x %d product came out wrong\n", n, n);
      return 3;
    }
  }
  const int n = 300, one_step = 1;
  std::vector<float> a(n * n, 0.5f), x(n, 2.0f), y(n, 0.0f);
  const float one = 1, zero = 0;
  sgemv("N", &n, &n, &one, a.data(), &n, x.data(), &one_step, &zero, y.data(), &one_step);
  if (std::fabs(y[n - 1] - 300.0f) > 0) {
    std::fprintf(stderr, "blas_probe: a matrix-vector product came out wrong\n");
    return 3;
  }
  std::printf("%s\n", corename ? corename() : "not-openblas");
  return 0;
}
