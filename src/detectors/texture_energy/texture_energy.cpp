#include <adx/detectors/texture_energy/texture_energy.hpp>

#include <algorithm>
#include <cmath>

#include <adx/detectors/components/algorithms/exact_search.hpp>
#include <adx/detectors/components/algorithms/gaussian_density.hpp>

#include "detectors/builtin_detector.hpp"

namespace adx {
namespace {

namespace F = torch::nn::functional;

constexpr int64_t kFiltersPerScale = 10;
// Images filtered at once: bounds the responses (chunk x filters x H x W floats) in memory.
constexpr int64_t kImagesPerChunk = 16;
constexpr const char* kWindowsStatePrefix = "texture_energy.training_windows.";

int64_t window_stride(int64_t window) { return std::max<int64_t>(1, window / 4); }

}  // namespace

void TextureEnergyOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .each_at_least("sigmas", sigmas(), 1)
      .that(sigmas().empty() || *std::max_element(sigmas().begin(), sigmas().end()) <= 32, "sigmas",
            "entries must be <= 32 pixels")
      .each_at_least("windows", windows(), 4)
      .at_least("nearest_windows", nearest_windows(), 1)
      .above("regularization", regularization(), 0.0);
}

torch::Tensor texture_filter_bank(const std::vector<int64_t>& sigmas) {
  ADX_CHECK_AS(OptionError, !sigmas.empty(), "texture filter bank: no scales given");
  const int64_t radius = 3 * *std::max_element(sigmas.begin(), sigmas.end());
  const auto grid = torch::arange(-radius, radius + 1, torch::kFloat64);
  const auto y = grid.reshape({-1, 1}).expand({2 * radius + 1, 2 * radius + 1}), x = y.t();
  auto zero_mean = [](const torch::Tensor& f) { return f - f.mean(); };
  std::vector<torch::Tensor> filters;
  for (const int64_t scale : sigmas) {
    const double sigma = static_cast<double>(scale), s2 = sigma * sigma;
    auto gaussian = torch::exp(-(x * x + y * y) / (2 * s2));
    gaussian = gaussian / gaussian.sum();
    for (int orientation = 0; orientation < 4; ++orientation) {
      const double angle = orientation * M_PI / 4;
      const auto u = x * std::cos(angle) + y * std::sin(angle);
      filters.push_back(zero_mean(-u / s2 * gaussian));                  // first derivative along u
      filters.push_back(zero_mean((u * u / (s2 * s2) - 1 / s2) * gaussian));  // second derivative along u
    }
    filters.push_back(zero_mean((x * x + y * y - 2 * s2) / (s2 * s2) * gaussian));  // Laplacian of Gaussian
    filters.push_back(gaussian);
  }
  return torch::stack(filters).unsqueeze(1).to(torch::kFloat32);
}

TextureEnergy::TextureEnergy(Options options) : DetectorWithOptions(std::move(options)) {}

int64_t TextureEnergy::window_side(size_t window_size) const {
  return std::min({options_.windows()[window_size], height_, width_});
}

torch::Tensor TextureEnergy::whitened(const torch::Tensor& energies, int64_t index) const {
  return (energies - mean_[index]).matmul(whitening_[index]).to(torch::kFloat32);
}

std::pair<int64_t, int64_t> TextureEnergy::grid(size_t window_size) const {
  const int64_t window = window_side(window_size), stride = window_stride(window);
  return {(height_ - window) / stride + 1, (width_ - window) / stride + 1};
}

void TextureEnergy::build(const std::vector<int64_t>& item_shape, const InputKind&) {
  ADX_CHECK_AS(ShapeError, item_shape.size() == 3, "texture_energy takes C x H x W images, got item shape {}",
               shape_string(item_shape));
  height_ = item_shape[1];
  width_ = item_shape[2];
  const int64_t radius = 3 * *std::max_element(options_.sigmas().begin(), options_.sigmas().end());
  // Reflect padding needs more pixels than the filters' radius.
  ADX_CHECK_AS(ShapeError, std::min(height_, width_) > radius,
               "texture_energy: images of {} x {} are too small for filters of radius {} px (3 x the largest "
               "sigma); use smaller sigmas",
               height_, width_, radius);
  const auto sizes = static_cast<int64_t>(options_.windows().size());
  const int64_t filters = kFiltersPerScale * static_cast<int64_t>(options_.sigmas().size());
  const auto on_device = torch::TensorOptions().device(device());
  state_ = std::make_shared<torch::nn::Module>();
  bank_ = state_->register_buffer("bank", texture_filter_bank(options_.sigmas()).to(device()));
  mean_ = state_->register_buffer("mean", torch::zeros({sizes, filters}, on_device.dtype(torch::kFloat64)));
  inverse_covariance_ =
      state_->register_buffer("inverse_covariance", torch::zeros({sizes, filters, filters}, on_device.dtype(torch::kFloat64)));
  whitening_ = state_->register_buffer("whitening", torch::zeros({sizes, filters, filters}, on_device.dtype(torch::kFloat64)));
  scale_ = state_->register_buffer("scale", torch::ones({sizes}, on_device.dtype(torch::kFloat64)));
  nearest_scale_ = state_->register_buffer("nearest_scale", torch::ones({sizes}, on_device.dtype(torch::kFloat64)));
  training_windows_.assign(static_cast<size_t>(sizes), torch::Tensor());
}

std::vector<torch::Tensor> TextureEnergy::window_energies(const torch::Tensor& images) const {
  const int64_t filters = bank_.size(0), pad = bank_.size(2) / 2;
  // The Gaussians (every 10th filter) keep their sign; the others' absolute responses are the energies.
  const auto is_gaussian =
      (torch::arange(filters, torch::TensorOptions().device(bank_.device())) % kFiltersPerScale == kFiltersPerScale - 1)
          .reshape({1, -1, 1, 1});
  std::vector<std::vector<torch::Tensor>> chunks(options_.windows().size());
  for (const auto& chunk : images.split(kImagesPerChunk)) {
    const auto grey = chunk.to(bank_.device(), torch::kFloat32).mean(1, true);
    const auto padded = F::pad(grey, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
    auto responses = F::conv2d(padded, bank_);
    responses = torch::where(is_gaussian, responses, responses.abs());
    for (size_t k = 0; k < options_.windows().size(); ++k) {
      const int64_t window = window_side(k);
      chunks[k].push_back(F::avg_pool2d(responses, F::AvgPool2dFuncOptions(window).stride(window_stride(window)))
                              .flatten(2)
                              .transpose(1, 2)
                              .to(torch::kFloat64));  // chunk x windows x filters
    }
  }
  std::vector<torch::Tensor> energies;
  for (auto& parts : chunks) energies.push_back(torch::cat(parts));
  return energies;
}

void TextureEnergy::fit_model(const Data& train, const Data&) {
  const int64_t n = train.size();
  ADX_CHECK_AS(ShapeError, n >= 2,
               "texture_energy needs at least 2 training images (each image's scale is measured with it left out), "
               "got {}",
               n);
  torch::NoGradGuard no_grad;
  const auto energies = window_energies(train.x);
  const double regularization = options_.regularization();
  // The threshold's reference: each training image scored with itself left out (of the Gaussians, of the
  // nearest windows), as a new normal image meets them; scored against a model it helped fit, it would
  // set the threshold too low.
  auto left_out_scores = torch::zeros({n}, energies.front().options());
  for (size_t k = 0; k < energies.size(); ++k) {
    const auto index = static_cast<int64_t>(k);
    const auto& e = energies[k];  // n x L x f
    const int64_t per_image = e.size(1);
    const auto identity = torch::eye(e.size(2), e.options());
    // Sums and products per image: the Gaussian without image i is the totals' less image i's.
    const auto sums = e.sum(1);                       // n x f
    const auto products = e.transpose(1, 2).bmm(e);  // n x f x f
    auto gaussian = [&](const torch::Tensor& sum, const torch::Tensor& product, int64_t count) {
      const auto mean = sum / static_cast<double>(count);
      const auto covariance = (product - static_cast<double>(count) * mean.unsqueeze(-1) * mean.unsqueeze(-2)) /
                                  static_cast<double>(count - 1) +
                              regularization * identity;
      return std::make_pair(mean, torch::linalg::inv(covariance));
    };
    const auto [mean, inverse] = gaussian(sums.sum(0), products.sum(0), n * per_image);
    mean_[index].copy_(mean);
    inverse_covariance_[index].copy_(inverse);
    // Each training image's window scores with the image left out, the same sum the scoring makes.
    auto left_out = torch::zeros({n, per_image}, e.options());
    if (scores_gaussian()) {
      const auto [left_out_mean, left_out_inverse] =
          gaussian(sums.sum(0) - sums, products.sum(0) - products, (n - 1) * per_image);  // n x f, n x f x f
      // Each image against its own left-out Gaussian: PaDiM's per-position distances, one image a position.
      const auto distances = padim_squared_distances(e, left_out_mean, left_out_inverse);  // n x L
      scale_[index].copy_(std::get<0>(distances.max(1)).median().clamp_min(1e-12));
      left_out += distances / scale_[index];
    }
    if (scores_nearest()) {
      // |(x - mean) L|^2 = (x - mean)' inverse (x - mean) for the lower Cholesky factor L of the inverse.
      whitening_[index].copy_(torch::linalg::cholesky(inverse));
      const auto whitened_energies = whitened(e, index);  // n x L x f
      // The model keeps every other window in each direction (stride window / 2): a quarter of the search.
      const auto [rows, columns] = grid(k);
      const auto kept = whitened_energies.reshape({n, rows, columns, e.size(2)})
                            .slice(1, 0, rows, 2)
                            .slice(2, 0, columns, 2)
                            .reshape({n, -1, e.size(2)});
      const auto images = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(e.device()));
      auto kept_rows = kept.reshape({-1, e.size(2)});
      auto kept_images = images.repeat_interleave(kept.size(1));
      if (kept_rows.size(0) > options_.nearest_windows()) {
        // A random subset (seeded by runtime.seed), in row order, bounds the search on large sets.
        const auto subset =
            std::get<0>(torch::randperm(kept_rows.size(0), torch::kLong).slice(0, 0, options_.nearest_windows()).sort())
                .to(e.device());
        kept_rows = kept_rows.index_select(0, subset);
        kept_images = kept_images.index_select(0, subset);
      }
      training_windows_[k] = kept_rows.contiguous();
      // Each window's nearest among the other images' kept windows: the exact leave-one-image-out search.
      torch::Tensor nearest;
      nearest_neighbours(whitened_energies.reshape({-1, e.size(2)}), training_windows_[k], &nearest, nullptr,
                         kNearestNeighbourBlock, images.repeat_interleave(per_image), kept_images);
      const auto distances = nearest.to(torch::kFloat64).square().reshape({n, per_image});
      nearest_scale_[index].copy_(std::get<0>(distances.max(1)).median().clamp_min(1e-12));
      left_out += distances / nearest_scale_[index];
    }
    left_out_scores += std::get<0>(left_out.max(1));
  }
  set_left_out_scores(left_out_scores.to(torch::kCPU, torch::kFloat32));
}

Scores TextureEnergy::score_model(const Batch& batch) {
  torch::NoGradGuard no_grad;
  const auto energies = window_energies(batch.x);
  const int64_t n = batch.x.size(0);
  Scores s;
  auto per_item = torch::zeros({n}, torch::TensorOptions().dtype(torch::kFloat64).device(bank_.device()));
  auto pixel_map = torch::zeros({n, 1, height_, width_}, torch::TensorOptions().device(bank_.device()));
  for (size_t k = 0; k < energies.size(); ++k) {
    const auto index = static_cast<int64_t>(k);
    const auto [rows, columns] = grid(k);
    auto map = torch::zeros({n, 1, rows, columns}, energies[k].options());
    if (scores_gaussian())
      map += (padim_squared_distances(energies[k].reshape({1, -1, energies[k].size(2)}), mean_[index].unsqueeze(0),
                                      inverse_covariance_[index].unsqueeze(0)) /
              scale_[index])
                 .reshape({n, 1, rows, columns});
    if (scores_nearest()) {
      torch::Tensor distances;
      nearest_neighbours(whitened(energies[k], index).reshape({-1, energies[k].size(2)}), training_windows_[k],
                         &distances, nullptr);
      map += (distances.to(torch::kFloat64).square() / nearest_scale_[index]).reshape({n, 1, rows, columns});
    }
    per_item += std::get<0>(map.flatten(1).max(1));
    pixel_map += F::interpolate(map.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                             .size(std::vector<int64_t>{height_, width_})
                                                             .mode(torch::kBilinear)
                                                             .align_corners(false));
  }
  s.per_item = per_item.to(torch::kCPU, torch::kFloat32);
  s.pixel_map = pixel_map.to(torch::kCPU);
  return s;
}

void TextureEnergy::save_extra(TensorMap& state) const {
  if (!scores_nearest()) return;
  for (size_t k = 0; k < training_windows_.size(); ++k)
    state[kWindowsStatePrefix + std::to_string(k)] = training_windows_[k];
}

void TextureEnergy::load_extra(const TensorMap& state) {
  // A scale of 0 would turn a window at distance 0 into NaN.
  ADX_CHECK_AS(IoError, (scale_ > 0).all().item<bool>() && (nearest_scale_ > 0).all().item<bool>(),
               "model file's texture_energy scales must be positive; the smallest are {} and {}",
               scale_.min().item<double>(), nearest_scale_.min().item<double>());
  if (!scores_nearest()) return;
  for (size_t k = 0; k < training_windows_.size(); ++k) {
    const std::string key = kWindowsStatePrefix + std::to_string(k);
    const auto it = state.find(key);
    ADX_CHECK_AS(IoError,
                 it != state.end() && it->second.dim() == 2 && it->second.size(0) >= 1 &&
                     it->second.size(1) == bank_.size(0) && it->second.scalar_type() == torch::kFloat32,
                 "model file lacks a valid '{}' (training windows x {} filters, float32)", key, bank_.size(0));
    training_windows_[k] = it->second.to(device()).contiguous();
  }
}

ADX_BUILTIN_DETECTOR(texture_energy, factory_for<TextureEnergy>(),
                     "Texture energy: Gaussian-derivative filter bank, windowed energies, Gaussian and nearest-window scores")

}  // namespace adx
