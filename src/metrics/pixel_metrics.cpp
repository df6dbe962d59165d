#include <adx/core/error.hpp>
#include <adx/metrics/metrics.hpp>
#include <adx/metrics/pixel_metrics.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace adx::metrics {
namespace {

void check_stacks(const MaskStack& masks, const MapStack& maps) {
  ADX_CHECK_AS(ShapeError, masks.count == maps.count && masks.height == maps.height && masks.width == maps.width,
               "masks are {} x {} x {} but maps are {} x {} x {}", masks.count, masks.height, masks.width, maps.count,
               maps.height, maps.width);
  const auto n = static_cast<size_t>(masks.count * masks.height * masks.width);
  ADX_CHECK_AS(ShapeError, masks.values.size() == n && maps.values.size() == n,
               "a {} x {} x {} stack needs {} values, got {} mask and {} map values", masks.count, masks.height,
               masks.width, n, masks.values.size(), maps.values.size());
  ADX_CHECK_AS(ShapeError, n > 0, "pixel metrics need at least one pixel");
  for (size_t i = 0; i < n; ++i)
    ADX_CHECK_AS(ValueError, std::isfinite(maps.values[i]), "anomaly map value {} at pixel {} is not finite",
                 maps.values[i], i);
}

}  // namespace

std::vector<int32_t> label_regions(const uint8_t* mask, int64_t height, int64_t width, int32_t* regions) {
  std::vector<int32_t> labels(static_cast<size_t>(height * width), 0);
  std::vector<int64_t> stack;
  int32_t next = 0;
  for (int64_t start = 0; start < height * width; ++start) {
    if (!mask[start] || labels[start]) continue;
    labels[start] = ++next;
    stack.push_back(start);
    while (!stack.empty()) {  // flood fill over the 8 neighbours
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t r = p / width, c = p % width;
      for (int64_t dr = -1; dr <= 1; ++dr)
        for (int64_t dc = -1; dc <= 1; ++dc) {
          const int64_t rr = r + dr, cc = c + dc;
          if (rr < 0 || rr >= height || cc < 0 || cc >= width) continue;
          const int64_t q = rr * width + cc;
          if (mask[q] && !labels[q]) {
            labels[q] = next;
            stack.push_back(q);
          }
        }
    }
  }
  if (regions) *regions = next;
  return labels;
}

double pixel_roc_auc(const MaskStack& masks, const MapStack& maps) {
  check_stacks(masks, maps);
  std::vector<int> labels(masks.values.size());
  std::vector<double> scores(maps.values.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    labels[i] = masks.values[i] ? 1 : 0;
    scores[i] = maps.values[i];
  }
  return roc_auc(labels, scores);
}

ProCurve pro_curve(const MaskStack& masks, const MapStack& maps) {
  check_stacks(masks, maps);
  const int64_t plane = masks.height * masks.width;
  // Region id per pixel across all images (-1 = defect-free) and each region's size.
  std::vector<int32_t> region(masks.values.size(), -1);
  std::vector<int64_t> region_size;
  for (int64_t i = 0; i < masks.count; ++i) {
    int32_t count = 0;
    const auto labels = label_regions(masks.values.data() + i * plane, masks.height, masks.width, &count);
    const auto offset = static_cast<int32_t>(region_size.size());
    region_size.resize(region_size.size() + count, 0);
    for (int64_t p = 0; p < plane; ++p)
      if (labels[p]) {
        region[i * plane + p] = offset + labels[p] - 1;
        ++region_size[offset + labels[p] - 1];
      }
  }
  const auto regions = static_cast<int64_t>(region_size.size());
  int64_t normal_pixels = 0;
  for (auto r : region) normal_pixels += r < 0;
  ADX_CHECK_AS(ValueError, regions > 0, "the PRO curve needs at least one defect region in the masks");
  ADX_CHECK_AS(ValueError, normal_pixels > 0, "the PRO curve needs defect-free pixels in the masks");
  // Lower the threshold one distinct value at a time; each flagged pixel adds to its region's overlap.
  std::vector<int64_t> order(maps.values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return maps.values[a] > maps.values[b]; });
  ProCurve curve;
  curve.regions = regions;
  curve.fpr.push_back(0.0);
  curve.pro.push_back(0.0);
  double pro = 0.0;
  int64_t false_positives = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto p = order[k];
    if (region[p] < 0) ++false_positives;
    else pro += 1.0 / (static_cast<double>(regions) * static_cast<double>(region_size[region[p]]));
    if (k + 1 == order.size() || maps.values[order[k + 1]] != maps.values[p]) {
      curve.fpr.push_back(static_cast<double>(false_positives) / static_cast<double>(normal_pixels));
      curve.pro.push_back(std::min(1.0, pro));
    }
  }
  return curve;
}

double aupro(const MaskStack& masks, const MapStack& maps, double max_fpr) {
  ADX_CHECK_AS(OptionError, max_fpr > 0.0 && max_fpr <= 1.0, "max_fpr must lie in (0, 1], got {}", max_fpr);
  const auto curve = pro_curve(masks, maps);
  double area = 0.0;
  for (size_t i = 1; i < curve.fpr.size(); ++i) {
    const double x0 = curve.fpr[i - 1], x1 = curve.fpr[i], y0 = curve.pro[i - 1], y1 = curve.pro[i];
    if (x0 >= max_fpr) break;
    if (x1 <= max_fpr) {
      area += (x1 - x0) * (y0 + y1) / 2.0;
    } else {  // the segment crosses the limit: interpolate PRO at max_fpr
      const double y = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0);
      area += (max_fpr - x0) * (y0 + y) / 2.0;
    }
  }
  return area / max_fpr;
}

}  // namespace adx::metrics
