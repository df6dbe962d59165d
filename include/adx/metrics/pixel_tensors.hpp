#pragma once
// Tensors to the stacks the pixel metrics take (pixel_metrics.hpp stays free of LibTorch).
#include <adx/metrics/pixel_metrics.hpp>

#include <ATen/core/Tensor.h>

namespace adx::metrics {

/// Ground-truth masks N x 1 x H x W (values above 0.5 are defect pixels).
MaskStack mask_stack(const at::Tensor& masks);
/// Anomaly maps N x 1 x H x W (Scores::pixel_map).
MapStack map_stack(const at::Tensor& maps);

}  // namespace adx::metrics
