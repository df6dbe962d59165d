#include <adx/core/error.hpp>
#include <adx/core/runtime.hpp>

#include <ATen/Parallel.h>
#include <c10/core/Device.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <dlfcn.h>

#include <thread>

namespace adx {

namespace {
int g_threads = 1;
int g_blas_threads = -1;
}  // namespace

bool set_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  // Looked up at run time: the BLAS behind LibTorch is chosen by the system's alternatives.
  static auto* setter = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!setter) return false;
  if (g_blas_threads != threads) {
    setter(threads);
    g_blas_threads = threads;
  }
  return true;
}

int set_num_threads(int threads, ThreadPlacement placement) {
  ADX_CHECK_AS(OptionError, threads >= 0, "thread count must be >= 0 (0 = all hardware threads), got {}",
               threads);
  int wanted = threads;
  if (wanted == 0) wanted = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const bool blas = placement == ThreadPlacement::Blas && set_blas_threads(wanted);
  if (!blas && placement == ThreadPlacement::Blas) {
    // No OpenBLAS to steer: fall back to the intra-op pool.
    if (at::get_num_threads() != wanted) at::set_num_threads(wanted);
  } else {
    const int intra = blas ? 1 : wanted;
    if (!blas) set_blas_threads(1);
    if (at::get_num_threads() != intra) at::set_num_threads(intra);
  }
  g_threads = wanted;
  return wanted;
}

int num_threads() { return g_threads; }

void seed_everything(uint64_t seed) { torch::manual_seed(seed); }

bool cuda_available() { return torch::cuda::is_available(); }

void check_device(const std::string& device) {
  c10::Device parsed(c10::kCPU);
  try {
    parsed = c10::Device(device);
  } catch (const std::exception&) {
    throw OptionError(fmt::format("unknown device '{}'; use 'cpu', 'cuda' or 'cuda:N'", device));
  }
  if (parsed.is_cuda()) {
    ADX_CHECK_AS(OptionError, torch::cuda::is_available(),
                 "device '{}' requested but this LibTorch build sees no CUDA device", device);
    if (parsed.has_index())
      ADX_CHECK_AS(OptionError, parsed.index() < static_cast<int>(torch::cuda::device_count()),
                   "device '{}' requested but only {} CUDA device(s) exist", device,
                   torch::cuda::device_count());
  } else {
    ADX_CHECK_AS(OptionError, parsed.is_cpu(), "unsupported device '{}'; use 'cpu' or 'cuda'", device);
  }
}

}  // namespace adx
