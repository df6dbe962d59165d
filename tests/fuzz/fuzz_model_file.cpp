// libFuzzer target: model files through adx::load (reader, options, rebuild, weights).
// A random body never matches the checksum, so inputs whose first byte is even get
// a valid header length and checksum first: the fuzzer then reaches the body parser
// and the restore path, not only the checksum test.
#include "fuzz_common.hpp"

#include <adx/adx.hpp>

#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size >= 28 && data[0] % 2 == 0) {
    std::memcpy(bytes.data(), "ADXMODEL", 8);
    const uint64_t body = size - 28;
    std::memcpy(bytes.data() + 12, &body, 8);
    uint64_t hash = 1469598103934665603ull;  // FNV-1a of the body
    for (size_t i = 20; i < 20 + body; ++i) {
      hash ^= bytes[i];
      hash *= 1099511628211ull;
    }
    std::memcpy(bytes.data() + 20 + body, &hash, 8);
  }
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load(adx::fuzz::input_file(bytes.data(), bytes.size(), ".adx")));
  return 0;
}
