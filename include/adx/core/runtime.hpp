#pragma once
// Process-wide runtime settings: threads, the BLAS in use, seeding and devices.
// Light header: no LibTorch include, so any translation unit can use it cheaply.
#include <cstdint>
#include <exception>
#include <string>

namespace adx {

/// Uses `threads` threads (0 = all hardware threads) for LibTorch's intra-op
/// pool and for OpenBLAS alike. With the OpenMP build of OpenBLAS both run on
/// one OpenMP runtime: a BLAS call made inside a parallel LibTorch kernel runs
/// on the calling thread, so the two never oversubscribe the cores. Returns the
/// number of threads now in use. The first call warns once on stderr when the
/// pthread build of OpenBLAS is loaded (its own pool fights LibTorch's).
/// When the environment variable ADX_NUM_THREADS holds a positive count, it replaces every count asked for:
/// a deployment's cap, and how the test suite checks its results at 1 and at 2 threads.
int set_num_threads(int threads);

/// Number of threads set last (1 before any call).
int num_threads();

/// Which BLAS LibTorch calls, read at run time.
struct BlasInfo {
  std::string name;   ///< "openblas-openmp", "openblas-pthread", "openblas-sequential" or "other"
  int parallel = -1;  ///< openblas_get_parallel(): 0 sequential, 1 pthread, 2 OpenMP; -1 without OpenBLAS
  std::string config; ///< openblas_get_config(), empty without OpenBLAS
};
BlasInfo blas_info();

/// Caps the bytes of freed CPU tensor memory that adx keeps for reuse (0 keeps
/// none and frees what is kept). From the first set_num_threads (every detector's
/// fit and score) on, LibTorch's CPU allocations of 1 MiB and more go through a
/// cache of freed blocks by size class (rounded up by at most 1/8): the system
/// hands fresh pages back zeroed, one page fault per 4 KiB, and a convolutional
/// detector scoring large batches spent most of its time there. The cap starts
/// at ADX_CPU_CACHE_MB when that is set, else at 1/8 of the physical memory, at
/// most 4 GiB. The cap bounds what reuse adds to the process's memory: freed
/// blocks of other size classes stay kept while new ones are allocated.
/// Returns the cap before the call.
uint64_t set_cpu_memory_cache(uint64_t bytes);

/// Bytes of freed CPU memory kept for reuse now.
uint64_t cpu_memory_cached();

/// Seeds LibTorch's CPU and CUDA generators so that training is repeatable on CPU.
void seed_everything(uint64_t seed);

/// Checks a device string ("cpu", "cuda", "cuda:1") and that the device is usable here.
/// Throws adx::Error naming the device when it is not.
void check_device(const std::string& device);

/// Whether LibTorch sees a usable CUDA device.
bool cuda_available();

/// While it lives, caps the CPU memory the calling thread may allocate through
/// LibTorch (the bytes of every allocation, summed). Used when a model is rebuilt
/// from a file whose sizes may lie: past the cap, the allocation throws IoError
/// naming `what` instead of reserving gigabytes. Other threads are not affected.
class CpuAllocationBudget {
 public:
  CpuAllocationBudget(uint64_t bytes, std::string what);
  ~CpuAllocationBudget();
  CpuAllocationBudget(const CpuAllocationBudget&) = delete;
  CpuAllocationBudget& operator=(const CpuAllocationBudget&) = delete;

 private:
  uint64_t limit_, used_ = 0;
  std::string what_;
  CpuAllocationBudget* outer_;
  friend struct BudgetAccess;
};

/// What went wrong, from an exception LibTorch or the standard library threw
/// (LibTorch's backtrace left out), for wrapping into an adx::Error.
std::string describe_exception(const std::exception& error);

}  // namespace adx
