#pragma once
// The classic baselines a careful user tries on inspection images before a deep model, computed
// beside the detectors and scored with the same metrics. Both cut the images into 8 x 8 patches
// (stride 4), one row each; a pixel's score is the mean over the patches covering it, an image's the
// largest patch score. (Texture energy, the third classic a user tries on textured surfaces, is a
// detector: texture_energy.)
//   - PCA patches: the components explaining 90% of the training patches' variance are kept; a test
//     patch's score is its squared residual.
//   - nearest patch: the images halved first (2 x 2 means, so a patch spans 16 x 16 pixels); a test
//     patch's score is its Euclidean distance to the nearest training patch, every one searched.
#include <adx/detectors/matrix_profile/matrix_profile.hpp>
#include <torch/torch.h>

#include <vector>

#include "pca.hpp"

namespace adx::examples {

struct ImageBaselineScores {
  torch::Tensor per_image;  ///< M, float64
  torch::Tensor pixel_map;  ///< M x 1 x H x W, float32
};

constexpr int64_t kPatch = 8, kPatchStride = 4;

/// N x C x H x W images -> (N * L) x (C * 8 * 8) patch rows, L patches per image.
inline torch::Tensor patch_rows(const torch::Tensor& images, torch::Dtype dtype) {
  namespace F = torch::nn::functional;
  return F::unfold(images.to(dtype), F::UnfoldFuncOptions({kPatch, kPatch}).stride(kPatchStride))
      .transpose(1, 2)
      .reshape({-1, images.size(1) * kPatch * kPatch});
}

/// One score per patch (M * L, in patch_rows' order) as image scores and H x W pixel maps.
inline ImageBaselineScores from_patch_scores(const torch::Tensor& patch_scores, int64_t images, int64_t height,
                                             int64_t width) {
  namespace F = torch::nn::functional;
  const auto scores = patch_scores.to(torch::kFloat64).reshape({images, 1, -1});  // M x 1 x L
  ImageBaselineScores out;
  out.per_image = std::get<0>(scores.max(2)).reshape({images});
  // Spread each patch's score over its pixels, then divide by how many patches cover each pixel.
  const auto fold = F::FoldFuncOptions({height, width}, {kPatch, kPatch}).stride(kPatchStride);
  const auto spread = scores.expand({images, kPatch * kPatch, scores.size(2)});
  const auto covering = F::fold(torch::ones_like(spread.slice(0, 0, 1)), fold).clamp_min(1);
  out.pixel_map = (F::fold(spread, fold) / covering).to(torch::kFloat32);
  return out;
}

inline ImageBaselineScores pca_patch_baseline(const torch::Tensor& train, const torch::Tensor& test,
                                              double explained = 0.9) {
  const auto model = fit_pca(patch_rows(train, torch::kFloat64), explained, /*standardise=*/false);
  return from_patch_scores(pca_residual(model, patch_rows(test, torch::kFloat64)), test.size(0), test.size(2),
                           test.size(3));
}

inline ImageBaselineScores nearest_patch_baseline(const torch::Tensor& train, const torch::Tensor& test) {
  namespace F = torch::nn::functional;
  auto halved = [](const torch::Tensor& images) { return F::avg_pool2d(images, F::AvgPool2dFuncOptions(2)); };
  const auto reference = patch_rows(halved(train), torch::kFloat32);
  const auto queries = patch_rows(halved(test), torch::kFloat32);
  std::vector<torch::Tensor> distances;
  for (const auto& part : queries.split(8192))  // bounds the query x reference block in memory
    distances.push_back(adx::nearest_rows(part, reference, 4096).first);
  auto out = from_patch_scores(torch::cat(distances), test.size(0), test.size(2) / 2, test.size(3) / 2);
  out.pixel_map = F::interpolate(out.pixel_map, F::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{test.size(2), test.size(3)})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false));
  return out;
}

}  // namespace adx::examples
