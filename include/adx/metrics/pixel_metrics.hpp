#pragma once
// Pixel-level metrics for anomaly maps against ground-truth defect masks:
// pixel AUROC and the per-region overlap (PRO) curve with its normalised area
// up to a false-positive rate limit (AUPRO, Bergmann et al., MVTec AD).
// Maps and masks are N images of height x width in row-major order.
// Light header: no LibTorch.
#include <cstdint>
#include <vector>

namespace adx::metrics {

/// A stack of N same-sized masks or maps, flattened N x H x W.
template <class T>
struct PixelStack {
  std::vector<T> values;
  int64_t count = 0, height = 0, width = 0;
};
using MaskStack = PixelStack<uint8_t>;  ///< nonzero = defect pixel
using MapStack = PixelStack<float>;     ///< higher = more anomalous

/// Labels the 8-connected regions of one binary mask: 0 = background, 1..regions.
std::vector<int32_t> label_regions(const uint8_t* mask, int64_t height, int64_t width, int32_t* regions);

/// AUROC over every pixel of every image.
double pixel_roc_auc(const MaskStack& masks, const MapStack& maps);

struct ProCurve {
  std::vector<double> fpr;  ///< false-positive rate over all defect-free pixels, ascending
  std::vector<double> pro;  ///< mean over defect regions of the fraction of the region flagged
  int64_t regions = 0;
};

/// The PRO curve at every distinct map value (pixels with value >= threshold are flagged).
ProCurve pro_curve(const MaskStack& masks, const MapStack& maps);

/// Area under the PRO curve for FPR in [0, max_fpr], divided by max_fpr (1 is perfect).
double aupro(const MaskStack& masks, const MapStack& maps, double max_fpr = 0.3);

}  // namespace adx::metrics
