#pragma once
// A generator of monitoring-like multivariate series with labelled anomalies,
// for examples, benchmarks and tests. Normal behaviour: two seasonalities (a
// period and a slower one), a slow trend, autocorrelated noise, and channels
// that mix a few shared latent factors, so they are correlated. Anomalies are
// placed only after the training head and come in six kinds, most of them
// inside the normal value range, so that "largest value" does not find them.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

struct SyntheticSeriesOptions {
  int64_t length = 12000;
  int64_t channels = 4;             ///< 1 gives a univariate series
  int64_t period = 100;             ///< main seasonality, in steps
  double noise = 0.15;              ///< standard deviation of the AR(1) noise, relative to the seasonal amplitude
  double trend = 0.3;               ///< typical drift of a channel over the whole series, same units
  double train_fraction = 0.5;      ///< the head of the series is anomaly-free training data
  int64_t anomalies_per_kind = 3;   ///< in the test part, for each of the six kinds
  uint64_t seed = 0;
};

/// One labelled anomaly: steps [begin, end) of `channel` (-1 = every channel).
struct SeriesAnomaly {
  std::string kind;  ///< point, contextual, collective, seasonal, trend, correlation
  int64_t begin = 0;
  int64_t end = 0;
  int64_t channel = -1;
};

struct SyntheticSeries {
  at::Tensor values;  ///< T x D float32
  at::Tensor labels;  ///< T int64, 1 inside an anomaly
  int64_t train_length = 0;  ///< steps [0, train_length) are normal
  std::vector<SeriesAnomaly> anomalies;
};

SyntheticSeries make_synthetic_series(const SyntheticSeriesOptions& options = {});

}  // namespace adx
