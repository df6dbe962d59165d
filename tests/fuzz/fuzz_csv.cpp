// libFuzzer target: the three table readers (numeric CSV, series CSV, edge lists).
#include "fuzz_common.hpp"

#include <adx/data/formats/edge_lists.hpp>
#include <adx/data/formats/loaders.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = adx::fuzz::input_file(data, size, ".csv");
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load_csv(path));
  adx::SeriesCsvOptions series;
  series.timestamp_column = "time";
  series.label_column = "label";
  series.interpolate_gaps = size % 2 == 0;
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::load_series_csv(path, series));
  ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(adx::graph::load_edge_list(path));
  return 0;
}
