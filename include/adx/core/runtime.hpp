#pragma once
// Process-wide runtime settings: intra-op threads and seeding. Light header:
// no LibTorch include, so any translation unit can use it cheaply.
#include <cstdint>
#include <string>

namespace adx {

/// Sets LibTorch's intra-op thread count; 0 means all hardware threads.
/// Returns the number of threads now in use.
int set_num_threads(int threads);

/// Number of intra-op threads LibTorch uses now.
int num_threads();

/// Seeds LibTorch's CPU and CUDA generators so that training is repeatable on CPU.
void seed_everything(uint64_t seed);

/// Checks a device string ("cpu", "cuda", "cuda:1") and that the device is usable here.
/// Throws adx::Error naming the device when it is not.
void check_device(const std::string& device);

/// Whether LibTorch sees a usable CUDA device.
bool cuda_available();

}  // namespace adx
