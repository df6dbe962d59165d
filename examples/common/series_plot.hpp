#pragma once
// A PNG of a series and its detectors' scores, drawn without a plotting library:
// one panel per channel, then one per detector (scores, and the threshold as a red
// line); labelled anomalies are shaded red and the training head grey in every panel.
// Each pixel column shows the minimum-to-maximum envelope of the steps it covers,
// so a one-step spike stays visible in a long series.
#include <adx/data/formats/images.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace adx::examples {

struct ScoreTrack {
  std::vector<double> scores;  ///< one per step (NaN = not scored)
  double threshold = NAN;
};

class SeriesPlot {
 public:
  SeriesPlot(int64_t width, int64_t steps) : width_(width), steps_(steps) {}

  void add_channel(std::vector<double> values) { panels_.push_back({std::move(values), NAN, 90}); }
  void add_scores(const ScoreTrack& track) { panels_.push_back({track.scores, track.threshold, 60}); }

  /// Writes the figure; `labels` (one per step, may be empty) and `train_steps` are shaded.
  void write(const std::string& path, const std::vector<int>& labels, int64_t train_steps) const {
    int64_t height = kGap;
    for (const auto& p : panels_) height += p.height + kGap;
    auto image = torch::ones({3, height, width_});
    auto px = image.accessor<float, 3>();
    auto column_of = [&](int64_t t) { return std::min(width_ - 1, t * width_ / std::max<int64_t>(1, steps_)); };
    auto paint = [&](int64_t x, int64_t y, float r, float g, float b) {
      if (x < 0 || x >= width_ || y < 0 || y >= height) return;
      px[0][y][x] = r;
      px[1][y][x] = g;
      px[2][y][x] = b;
    };
    int64_t top = kGap;
    for (const auto& p : panels_) {
      // Background: grey over the training head, red over labelled anomalies.
      for (int64_t t = 0; t < steps_; ++t) {
        const bool anomaly = !labels.empty() && labels[static_cast<size_t>(t)] != 0;
        if (!anomaly && t >= train_steps) continue;
        const int64_t x = column_of(t);
        for (int64_t y = top; y < top + p.height; ++y)
          anomaly ? paint(x, y, 1.0f, 0.78f, 0.78f) : paint(x, y, 0.92f, 0.92f, 0.92f);
      }
      // Envelope of the values per pixel column.
      double lo = INFINITY, hi = -INFINITY;
      for (double v : p.values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      if (std::isfinite(p.threshold)) hi = std::max(hi, p.threshold), lo = std::min(lo, p.threshold);
      if (!(hi > lo)) hi = lo + 1.0;
      auto row_of = [&](double v) {
        return top + p.height - 1 - static_cast<int64_t>(std::lround((v - lo) / (hi - lo) * static_cast<double>(p.height - 1)));
      };
      std::vector<double> col_lo(width_, INFINITY), col_hi(width_, -INFINITY);
      for (int64_t t = 0; t < steps_; ++t) {
        const double v = p.values[static_cast<size_t>(t)];
        if (!std::isfinite(v)) continue;
        const int64_t x = column_of(t);
        col_lo[x] = std::min(col_lo[x], v);
        col_hi[x] = std::max(col_hi[x], v);
      }
      int64_t previous = -1;
      for (int64_t x = 0; x < width_; ++x) {
        if (!std::isfinite(col_lo[x])) continue;
        int64_t a = row_of(col_hi[x]), b = row_of(col_lo[x]);
        if (previous >= 0) a = std::min(a, previous), b = std::max(b, previous);  // join to the last column
        for (int64_t y = a; y <= b; ++y) paint(x, y, 0.1f, 0.25f, 0.6f);
        previous = row_of(0.5 * (col_lo[x] + col_hi[x]));
      }
      if (std::isfinite(p.threshold))
        for (int64_t x = 0; x < width_; x += 2) paint(x, row_of(p.threshold), 0.85f, 0.1f, 0.1f);
      for (int64_t x = 0; x < width_; ++x) paint(x, top + p.height, 0.6f, 0.6f, 0.6f);
      top += p.height + kGap;
    }
    write_png(path, image);
  }

 private:
  static constexpr int64_t kGap = 6;
  struct Panel {
    std::vector<double> values;
    double threshold;
    int64_t height;
  };
  int64_t width_, steps_;
  std::vector<Panel> panels_;
};

}  // namespace adx::examples
