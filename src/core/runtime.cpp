#include <adx/core/error.hpp>
#include <adx/core/runtime.hpp>

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace adx {

namespace {
void install_cpu_allocator();
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
  install_cpu_allocator();
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

// Freed CPU blocks of 1 MiB and more, kept for the next allocation of the same size class instead of
// going back to the system. glibc returns such blocks with munmap, and the system hands fresh pages
// back zeroed, one page fault per 4 KiB: scoring a batch of 2,048 images through a convolutional
// detector spent most of its time there. A size class rounds a request up by at most 1/8, so the
// batches of one fit or score (equal shapes) meet their own blocks again.
class BlockCache {
 public:
  static constexpr size_t kSmallest = size_t{1} << 20;

  static size_t size_class(size_t bytes) {
    size_t step = size_t{1} << 17;  // 128 KiB, an eighth of the smallest cached size
    while (step * 16 <= bytes) step <<= 1;
    return (bytes + step - 1) / step * step;
  }

  // Blocks from 2 MiB on start on a 2 MiB boundary and ask the system for transparent huge pages
  // (where it grants them on request, as Debian's default does): a fresh block then costs one page
  // fault per 2 MiB instead of per 4 KiB, and gathers over large tensors miss the TLB less.
  static constexpr size_t kHugePage = size_t{2} << 20;

  struct Block {
    c10::DataPtr memory;
    size_t bytes;
  };

  static c10::DataPtr fresh(size_t bytes, c10::Allocator& base) {
#ifdef MADV_HUGEPAGE
    if (bytes >= kHugePage && huge_pages_wanted()) {
      void* data = nullptr;
      if (posix_memalign(&data, kHugePage, bytes) == 0) {
        // Advice only: where the system refuses, the block still works with small pages.
        (void)madvise(data, bytes, MADV_HUGEPAGE);
        return {data, data, &std::free, c10::Device(c10::kCPU)};
      }
    }
#endif
    return base.allocate(bytes);
  }

  // A block of this class for a new tensor: a kept one, else a fresh one from `base`.
  void* hand_out(size_t bytes, c10::Allocator& base) {
    std::unique_lock<std::mutex> lock(mutex_);
    Block* block = nullptr;
    if (auto found = free_.find(bytes); found != free_.end() && !found->second.empty()) {
      block = found->second.back();
      found->second.pop_back();
      held_ -= block->bytes;
    } else {
      lock.unlock();
      block = new Block{fresh(bytes, base), bytes};
      lock.lock();
    }
    void* data = block->memory.get();
    lent_[data] = block;
    return data;
  }

  // Takes back the block at `data`, keeping it when it fits under the cap. False when `data` is not
  // a block of the cache (a small allocation, freed through LibTorch's own deleter).
  bool take_back(void* data) {
    Block* block = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = lent_.find(data);
      if (found == lent_.end()) return false;
      block = found->second;
      lent_.erase(found);
      if (held_ + block->bytes <= cap_) {
        free_[block->bytes].push_back(block);
        held_ += block->bytes;
        return true;
      }
    }
    delete block;
    return true;
  }

  // Returns the cap before.
  uint64_t set_cap(uint64_t bytes) {
    std::vector<Block*> released;
    uint64_t before = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      before = cap_;
      cap_ = bytes;
      for (auto& [size, blocks] : free_) {
        while (held_ > cap_ && !blocks.empty()) {
          held_ -= blocks.back()->bytes;
          released.push_back(blocks.back());
          blocks.pop_back();
        }
      }
    }
    for (Block* block : released) delete block;
    return before;
  }

  uint64_t cap() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cap_;
  }

  uint64_t held() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<Block*>> free_;
  std::unordered_map<void*, Block*> lent_;
  uint64_t held_ = 0;
  uint64_t cap_ = default_cap();

  // ADX_CPU_HUGE_PAGES=0 keeps blocks on small pages.
  static bool huge_pages_wanted() {
    static const bool wanted = [] {
      const char* value = std::getenv("ADX_CPU_HUGE_PAGES");
      return !(value && std::string(value) == "0");
    }();
    return wanted;
  }

  // ADX_CPU_CACHE_MB when set (0 turns reuse off), else 1/8 of the physical memory, at most 4 GiB.
  static uint64_t default_cap() {
    if (const char* value = std::getenv("ADX_CPU_CACHE_MB"); value && *value) {
      char* end = nullptr;
      const unsigned long long megabytes = std::strtoull(value, &end, 10);
      if (*end == '\0') return megabytes << 20;
    }
    const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    const uint64_t physical = pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
    return std::min<uint64_t>(physical / 8, uint64_t{4} << 30);
  }
};

// Leaked on purpose: tensors freed while the process exits still find it.
BlockCache& block_cache() {
  static auto* cache = new BlockCache;
  return *cache;
}

c10::DeleterFnPtr g_base_raw_deleter = nullptr;

// Frees what AdxCpuAllocator handed out, by its data pointer (so that raw_deallocate works too).
void free_cpu_block(void* data) {
  if (!block_cache().take_back(data) && g_base_raw_deleter) g_base_raw_deleter(data);
}

// adx's CPU allocator: charges the calling thread's budget when one is set, and serves large
// requests from the block cache.
class AdxCpuAllocator final : public c10::Allocator {
 public:
  explicit AdxCpuAllocator(c10::Allocator* base) : base_(base) { g_base_raw_deleter = base->raw_deleter(); }
  c10::DataPtr allocate(size_t bytes) const override {
    const bool cached = bytes >= BlockCache::kSmallest && block_cache().cap() > 0;
    const size_t wanted = cached ? BlockCache::size_class(bytes) : bytes;
    BudgetAccess::charge(wanted);
    if (!cached) return base_->allocate(bytes);
    void* data = block_cache().hand_out(wanted, *base_);
    return {data, data, &free_cpu_block, c10::Device(c10::kCPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return g_base_raw_deleter ? &free_cpu_block : nullptr; }

 private:
  c10::Allocator* base_;
};

void install_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    static AdxCpuAllocator allocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
  });
}
}  // namespace

uint64_t set_cpu_memory_cache(uint64_t bytes) {
  install_cpu_allocator();
  return block_cache().set_cap(bytes);
}

uint64_t cpu_memory_cached() { return block_cache().held(); }

CpuAllocationBudget::CpuAllocationBudget(uint64_t bytes, std::string what)
    : limit_(bytes), what_(std::move(what)), outer_(t_budget) {
  install_cpu_allocator();
  t_budget = this;
}

CpuAllocationBudget::~CpuAllocationBudget() { t_budget = outer_; }

std::string describe_exception(const std::exception& error) {
  if (dynamic_cast<const std::bad_alloc*>(&error)) return "out of memory";
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) return c10_error->what_without_backtrace();
  return error.what();
}

}  // namespace adx
