#pragma once
// Process-wide runtime settings: intra-op threads and seeding. Light header:
// no LibTorch include, so any translation unit can use it cheaply.
#include <cstdint>
#include <string>

namespace adx {

/// Where the threads of a computation go. LibTorch runs element-wise and
/// convolution kernels on its OpenMP pool while OpenBLAS runs matrix products
/// on its own threads; with both pools above one thread they fight over the
/// cores (measured here: 3-4x slower than either alone). adx therefore gives
/// all threads to one pool and one thread to the other.
enum class ThreadPlacement {
  IntraOp,  ///< OpenMP pool (convolutions, element-wise ops); BLAS single-threaded
  Blas,     ///< BLAS threads (dense layers, distance matrices); OpenMP single-threaded
};

/// Uses `threads` threads (0 = all hardware threads) in the chosen pool.
/// Returns the number of threads now in use.
int set_num_threads(int threads, ThreadPlacement placement = ThreadPlacement::IntraOp);

/// Number of threads of the pool set last.
int num_threads();

/// Sets OpenBLAS's thread count when OpenBLAS is the BLAS in use; returns false otherwise.
bool set_blas_threads(int threads);

/// Seeds LibTorch's CPU and CUDA generators so that training is repeatable on CPU.
void seed_everything(uint64_t seed);

/// Checks a device string ("cpu", "cuda", "cuda:1") and that the device is usable here.
/// Throws adx::Error naming the device when it is not.
void check_device(const std::string& device);

/// Whether LibTorch sees a usable CUDA device.
bool cuda_available();

}  // namespace adx
