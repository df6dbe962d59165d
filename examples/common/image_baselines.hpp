#pragma once
// The classic baselines a careful user tries on inspection images before a deep model, computed
// beside the detectors and scored with the same metrics. The first two cut the images into 8 x 8
// patches (stride 4), one row each; a pixel's score is the mean over the patches covering it, an
// image's the largest patch score.
//   - PCA patches: the components explaining 90% of the training patches' variance are kept; a test
//     patch's score is its squared residual.
//   - nearest patch: the images halved first (2 x 2 means, so a patch spans 16 x 16 pixels); a test
//     patch's score is its Euclidean distance to the nearest training patch, every one searched.
//   - texture energy (in the manner of Laws' texture energy measures): a bank of Gaussian-derivative
//     filters, their absolute responses averaged over 16 and 32 px windows, one Gaussian over every
//     training window; a window's score is its Mahalanobis distance, each window size's scores divided
//     by the median of the training images' largest, and the two sizes summed.
#include <adx/detectors/components/algorithms/gaussian_density.hpp>
#include <adx/detectors/matrix_profile/matrix_profile.hpp>
#include <torch/torch.h>

#include <cmath>
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

/// 30 filters of 25 x 25: at sigma 1, 2 and 4, first and second Gaussian derivatives at 4 orientations
/// (zero mean), the Laplacian of Gaussian (zero mean) and the Gaussian itself.
inline torch::Tensor texture_filter_bank() {
  constexpr int64_t radius = 12;
  const auto grid = torch::arange(-radius, radius + 1, torch::kFloat64);
  const auto y = grid.reshape({-1, 1}).expand({2 * radius + 1, 2 * radius + 1}), x = y.t();
  std::vector<torch::Tensor> filters;
  for (const double sigma : {1.0, 2.0, 4.0}) {
    auto gaussian = torch::exp(-(x * x + y * y) / (2 * sigma * sigma));
    gaussian = gaussian / gaussian.sum();
    auto zero_mean = [](const torch::Tensor& f) { return f - f.mean(); };
    for (int orientation = 0; orientation < 4; ++orientation) {
      const double angle = orientation * M_PI / 4;
      const auto u = x * std::cos(angle) + y * std::sin(angle);
      filters.push_back(zero_mean(-u / (sigma * sigma) * gaussian));
      filters.push_back(zero_mean((u * u / std::pow(sigma, 4) - 1 / (sigma * sigma)) * gaussian));
    }
    filters.push_back(zero_mean((x * x + y * y - 2 * sigma * sigma) / std::pow(sigma, 4) * gaussian));
    filters.push_back(gaussian);
  }
  return torch::stack(filters).unsqueeze(1).to(torch::kFloat32);  // 30 x 1 x 25 x 25
}

inline ImageBaselineScores texture_energy_baseline(const torch::Tensor& train, const torch::Tensor& test) {
  namespace F = torch::nn::functional;
  const auto bank = texture_filter_bank();
  const int64_t filters = bank.size(0), pad = bank.size(2) / 2;
  auto responses_of = [&](const torch::Tensor& images) {  // N x filters x H x W, once per image set
    const auto grey = images.to(torch::kFloat32).mean(1, true);
    const auto padded = F::pad(grey, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
    const auto responses = F::conv2d(padded, bank.to(grey.device()));
    // The Gaussian (every 10th filter) keeps its sign: it carries the local brightness.
    const auto is_gaussian = (torch::arange(filters) % 10 == 9).reshape({1, -1, 1, 1}).to(grey.device());
    return torch::where(is_gaussian, responses, responses.abs());
  };
  const auto train_responses = responses_of(train), test_responses = responses_of(test);
  ImageBaselineScores out;
  out.per_image = torch::zeros({test.size(0)}, torch::kFloat64);
  out.pixel_map = torch::zeros({test.size(0), 1, test.size(2), test.size(3)}, torch::kFloat32);
  for (const int64_t window : {16, 32}) {
    auto energies = [&](const torch::Tensor& responses) {  // 1 x (N * h * w) x filters, float64
      return F::avg_pool2d(responses, F::AvgPool2dFuncOptions(window).stride(window / 4))
          .permute({0, 2, 3, 1})
          .reshape({1, -1, filters})
          .to(torch::kFloat64);
    };
    // One Gaussian over every training window: PaDiM's per-position Gaussian with a single position.
    const auto reference = energies(train_responses);
    const auto gaussian = adx::padim_gaussian(reference, 1e-4);
    auto squared_distances = [&](const torch::Tensor& rows, const torch::Tensor& responses) {  // N x 1 x h x w
      const int64_t h = (responses.size(2) - window) / (window / 4) + 1, w = (responses.size(3) - window) / (window / 4) + 1;
      return adx::padim_distances(rows, gaussian.mean, gaussian.inverse_covariance)
          .square()
          .reshape({responses.size(0), 1, h, w});
    };
    const auto scale =
        std::get<0>(squared_distances(reference, train_responses).flatten(1).max(1)).median().clamp_min(1e-12);
    const auto map = squared_distances(energies(test_responses), test_responses) / scale;
    out.per_image += std::get<0>(map.flatten(1).max(1));
    out.pixel_map += F::interpolate(map.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                                 .size(std::vector<int64_t>{test.size(2), test.size(3)})
                                                                 .mode(torch::kBilinear)
                                                                 .align_corners(false));
  }
  return out;
}

}  // namespace adx::examples
