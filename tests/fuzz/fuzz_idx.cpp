// libFuzzer target: IDX files, plain or gzipped.
#include "fuzz_common.hpp"

#include <adx/data/formats/loaders.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load_idx(adx::fuzz::input_file(data, size, ".idx")));
  return 0;
}
