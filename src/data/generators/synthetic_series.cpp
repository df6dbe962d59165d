#include <adx/core/error.hpp>
#include <adx/data/generators/synthetic_series.hpp>

#include <torch/types.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

namespace adx {
namespace {

constexpr double kTwoPi = 6.283185307179586;

// Shared latent factors: main season, its harmonic, a slower season; channels mix them.
struct Latents {
  double period, slow_period;
  double value(int64_t factor, double t) const {
    switch (factor) {
      case 0: return std::sin(kTwoPi * t / period);
      case 1: return 0.5 * std::sin(2 * kTwoPi * t / period + 0.7);
      default: return 0.6 * std::sin(kTwoPi * t / slow_period + 1.3);
    }
  }
};

}  // namespace

SyntheticSeries make_synthetic_series(const SyntheticSeriesOptions& o) {
  ADX_CHECK_AS(OptionError, o.channels >= 1, "synthetic series: channels must be >= 1, got {}", o.channels);
  ADX_CHECK_AS(OptionError, o.period >= 8, "synthetic series: period must be >= 8 steps, got {}", o.period);
  ADX_CHECK_AS(OptionError, o.train_fraction > 0 && o.train_fraction < 1,
               "synthetic series: train_fraction must be in (0, 1), got {}", o.train_fraction);
  const int64_t T = o.length, D = o.channels;
  const int64_t train = static_cast<int64_t>(static_cast<double>(T) * o.train_fraction);
  const int64_t test = T - train;
  const int64_t slots = 6 * o.anomalies_per_kind;
  ADX_CHECK_AS(OptionError, slots == 0 || test >= slots * 2 * o.period,
               "synthetic series: a test part of {} steps is too short for {} anomalies of up to {} steps apart",
               test, slots, 2 * o.period);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);

  const Latents latents{static_cast<double>(o.period), 7.3 * static_cast<double>(o.period)};
  // Each channel: a mix of the latent factors, an offset, an amplitude and a slow trend.
  std::vector<std::array<double, 3>> mix(D);
  std::vector<double> offset(D), scale(D), trend(D);
  for (int64_t c = 0; c < D; ++c) {
    mix[c] = {c == 0 ? 1.0 : 0.4 + 0.6 * uniform(rng), 0.5 * uniform(rng), 0.3 + 0.7 * uniform(rng)};
    if (c > 0 && uniform(rng) < 0.3) mix[c][0] = -mix[c][0];
    offset[c] = 2.0 * normal(rng);
    scale[c] = 0.5 + 2.0 * uniform(rng);
    trend[c] = o.trend * normal(rng) / static_cast<double>(T);
  }
  auto clean = [&](int64_t c, double t) {
    double v = 0.0;
    for (int64_t f = 0; f < 3; ++f) v += mix[c][f] * latents.value(f, t);
    return v;
  };
  std::vector<double> values(static_cast<size_t>(T * D));
  auto at = [&](int64_t t, int64_t c) -> double& { return values[static_cast<size_t>(t * D + c)]; };
  for (int64_t c = 0; c < D; ++c) {
    double ar = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      ar = 0.6 * ar + std::sqrt(1 - 0.36) * o.noise * normal(rng);
      at(t, c) = clean(c, static_cast<double>(t)) + ar + trend[c] * static_cast<double>(t);
    }
  }

  SyntheticSeries out;
  out.train_length = train;
  std::vector<int64_t> labels(static_cast<size_t>(T), 0);
  // Anomalies in shuffled kinds, one per slot of the test part, away from the slot edges.
  const char* kinds[] = {"point", "contextual", "collective", "seasonal", "trend", "correlation"};
  std::vector<int> order;
  for (int k = 0; k < 6; ++k)
    for (int64_t i = 0; i < o.anomalies_per_kind; ++i) order.push_back(k);
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t slot = slots > 0 ? test / slots : 0;
  const double P = static_cast<double>(o.period);
  for (int64_t s = 0; s < slots; ++s) {
    const std::string kind = kinds[order[s]];
    const int64_t c = static_cast<int64_t>(uniform(rng) * static_cast<double>(D)) % D;
    int64_t length = 1;
    if (kind == "contextual") length = std::max<int64_t>(3, o.period / 10);
    else if (kind == "collective") length = std::max<int64_t>(5, o.period / 3);
    else if (kind == "seasonal" || kind == "correlation") length = o.period;
    else if (kind == "trend") length = std::max<int64_t>(10, o.period / 2);
    const int64_t room = slot - length - o.period;
    const int64_t begin = train + s * slot + o.period / 2 + static_cast<int64_t>(uniform(rng) * std::max<double>(1, room));
    const int64_t end = std::min(begin + length, T);
    for (int64_t t = begin; t < end; ++t) {
      const double tt = static_cast<double>(t);
      if (kind == "point") {
        at(t, c) += (uniform(rng) < 0.5 ? -1 : 1) * (2.5 + uniform(rng));
      } else if (kind == "contextual") {
        // The season half a period away: a normal value at the wrong time.
        at(t, c) += clean(c, tt + P / 2) - clean(c, tt);
      } else if (kind == "collective") {
        // The signal freezes at its current level: every value normal, the shape not.
        at(t, c) += clean(c, static_cast<double>(begin)) - clean(c, tt);
      } else if (kind == "seasonal") {
        // The main season runs 1.6 times faster for one period.
        at(t, c) += mix[c][0] * (std::sin(kTwoPi * 1.6 * tt / P) - std::sin(kTwoPi * tt / P));
      } else if (kind == "trend") {
        at(t, c) += 1.5 * static_cast<double>(t - begin + 1) / static_cast<double>(length);
      } else {
        // Correlation break: the channel's main season flips sign, its range unchanged.
        at(t, c) -= 2.0 * mix[c][0] * latents.value(0, tt);
      }
    }
    for (int64_t t = begin; t < end; ++t) labels[static_cast<size_t>(t)] = 1;
    out.anomalies.push_back({kind, begin, end, c});
  }
  for (int64_t c = 0; c < D; ++c)
    for (int64_t t = 0; t < T; ++t) at(t, c) = offset[c] + scale[c] * at(t, c);
  out.values = torch::tensor(values, torch::kFloat64).reshape({T, D}).to(torch::kFloat32);
  out.labels = torch::tensor(labels, torch::kLong);
  return out;
}

}  // namespace adx
