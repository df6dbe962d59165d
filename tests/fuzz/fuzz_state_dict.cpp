// libFuzzer target: the state-dict pickle reader. The input is the archive's data.pkl,
// packed with one storage record "data/0" of 16 floats, as torch.save lays them out.
#include "fuzz_common.hpp"
#include "../torch_archive.hpp"

#include <adx/io/state_dict.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = adx::fuzz::scratch_path(".pt");
  adx::test::write_torch_archive(path, std::string(reinterpret_cast<const char*>(data), size),
                                 std::vector<float>(16, 1.0f));
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load_state_dict(path));
  return 0;
}
