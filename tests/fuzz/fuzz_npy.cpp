// libFuzzer target: NPY files.
#include "fuzz_common.hpp"

#include <adx/data/formats/loaders.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load_npy(adx::fuzz::input_file(data, size, ".npy")));
  return 0;
}
