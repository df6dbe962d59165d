// libFuzzer target: image files (PNG, JPEG, BMP through stb).
#include "fuzz_common.hpp"

#include <adx/data/formats/images.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::read_image(adx::fuzz::input_file(data, size, ".png")));
  return 0;
}
