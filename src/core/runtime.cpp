#include <adx/core/error.hpp>
#include <adx/core/runtime.hpp>

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>

namespace adx {

namespace {
std::atomic<int> g_threads{0};  // 0 until the first set_num_threads; scoring threads read it

template <class Fn>
Fn openblas_symbol(const char* name) {
  // Looked up at run time: the BLAS behind LibTorch is chosen by the system's alternatives.
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

void set_blas_threads(int threads) {
  static auto* setter = openblas_symbol<void (*)(int)>("openblas_set_num_threads");
  if (setter) setter(threads);
}

void warn_once_about_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto info = blas_info();
    if (info.parallel == 1)
      std::fprintf(stderr,
                   "adx: warning: the pthread build of OpenBLAS is loaded; its thread pool competes with "
                   "LibTorch's OpenMP pool and slows training by up to 4x. Install libopenblas0-openmp and "
                   "select it: update-alternatives --set libblas.so.3-x86_64-linux-gnu "
                   "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 (and the same for liblapack)\n");
    // OpenBLAS 0.3.21 does not know some newer Xeons (Sapphire Rapids) and falls back to its generic kernels.
    static auto* corename = openblas_symbol<char* (*)()>("openblas_get_corename");
    const std::string core = corename ? corename() : "";
#if defined(__x86_64__)
    const bool modern = __builtin_cpu_supports("avx2");
#else
    const bool modern = false;
#endif
    if (modern && (core == "Prescott" || core == "Core2" || core == "Penryn" || core == "Nehalem" ||
                   core == "Dunnington" || core == "Atom"))
      std::fprintf(stderr,
                   "adx: warning: OpenBLAS does not recognise this CPU and uses its %s kernels, which skip the "
                   "CPU's AVX2/AVX-512 units and round differently from them. Start the program with "
                   "OPENBLAS_CORETYPE=SkylakeX (CPUs with AVX-512) or OPENBLAS_CORETYPE=Haswell (AVX2)\n",
                   core.c_str());
  });
}
}  // namespace

BlasInfo blas_info() {
  BlasInfo info;
  static auto* parallel = openblas_symbol<int (*)()>("openblas_get_parallel");
  static auto* config = openblas_symbol<char* (*)()>("openblas_get_config");
  if (!parallel) {
    info.name = "other";
    return info;
  }
  info.parallel = parallel();
  info.name = info.parallel == 2 ? "openblas-openmp" : info.parallel == 1 ? "openblas-pthread" : "openblas-sequential";
  if (config) info.config = config();
  return info;
}

namespace {

// ADX_NUM_THREADS, when it holds a positive count (0 when unset or not a count).
int forced_threads() {
  const char* value = std::getenv("ADX_NUM_THREADS");
  if (!value || !*value) return 0;
  char* end = nullptr;
  const long count = std::strtol(value, &end, 10);
  return *end == '\0' && count > 0 && count <= 4096 ? static_cast<int>(count) : 0;
}

}  // namespace

int set_num_threads(int threads) {
  ADX_CHECK_AS(OptionError, threads >= 0, "thread count must be >= 0 (0 = all hardware threads), got {}",
               threads);
  warn_once_about_blas();
  int wanted = threads;
  if (const int forced = forced_threads(); forced > 0) wanted = forced;
  if (wanted == 0) wanted = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (wanted != g_threads || at::get_num_threads() != wanted) {
    at::set_num_threads(wanted);
    set_blas_threads(wanted);
  }
  g_threads = wanted;
  return wanted;
}

int num_threads() {
  const int threads = g_threads.load();
  return threads > 0 ? threads : 1;
}

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
    ADX_CHECK_AS(OptionError, !parsed.has_index() || parsed.index() == 0,
                 "device '{}' does not exist: the CPU is one device, 'cpu'", device);
  }
}

namespace {
thread_local CpuAllocationBudget* t_budget = nullptr;
}  // namespace

struct BudgetAccess {
  static void charge(size_t bytes) {
    CpuAllocationBudget* budget = t_budget;
    if (!budget) return;
    budget->used_ += bytes;
    if (budget->used_ > budget->limit_)
      throw IoError(fmt::format("{} asks for more than {} MiB of memory; its sizes do not match what it holds",
                                budget->what_, budget->limit_ >> 20));
  }
};

namespace {
// Passes every CPU allocation through to LibTorch's allocator, charging the
// calling thread's budget first when one is set.
class BudgetedCpuAllocator final : public c10::Allocator {
 public:
  explicit BudgetedCpuAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t bytes) const override {
    BudgetAccess::charge(bytes);
    return base_->allocate(bytes);
  }
  c10::DeleterFnPtr raw_deleter() const override { return base_->raw_deleter(); }

 private:
  c10::Allocator* base_;
};

void install_budgeted_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    static BudgetedCpuAllocator allocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
  });
}
}  // namespace

CpuAllocationBudget::CpuAllocationBudget(uint64_t bytes, std::string what)
    : limit_(bytes), what_(std::move(what)), outer_(t_budget) {
  install_budgeted_allocator();
  t_budget = this;
}

CpuAllocationBudget::~CpuAllocationBudget() { t_budget = outer_; }

std::string describe_exception(const std::exception& error) {
  if (dynamic_cast<const std::bad_alloc*>(&error)) return "out of memory";
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) return c10_error->what_without_backtrace();
  return error.what();
}

}  // namespace adx
