#include <adx/data/synthesis/synthesis.hpp>

#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/synthesis/poisson_blend.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

namespace adx {
namespace {

double uniform(at::Generator& generator, double low, double high) { return draw_uniform(generator, low, high); }

// An integer uniform in [0, n).
int64_t uniform_index(at::Generator& generator, int64_t n) {
  return std::min<int64_t>(n - 1, static_cast<int64_t>(std::floor(uniform(generator, 0, static_cast<double>(n)))));
}

// Bilinear resize of a C x H x W image.
at::Tensor resize_image(const at::Tensor& image, int64_t height, int64_t width) {
  if (image.size(1) == height && image.size(2) == width) return image;
  namespace F = torch::nn::functional;
  return F::interpolate(image.unsqueeze(0), F::InterpolateFuncOptions()
                                                .size(std::vector<int64_t>{height, width})
                                                .mode(torch::kBilinear)
                                                .align_corners(false))
      .squeeze(0)
      .clamp(0, 1);
}

// Brings a C x H x W image to `channels` (1 or 3): grey repeated, or colour averaged.
at::Tensor with_channels(const at::Tensor& image, int64_t channels) {
  if (image.size(0) == channels) return image;
  if (channels == 1) return image.mean(0, true);
  return image.mean(0, true).expand({channels, image.size(1), image.size(2)}).contiguous();
}

// Fractal Perlin noise (octaves of doubling frequency, halving amplitude) of any size, scaled to [0, 1].
at::Tensor fractal_noise(int64_t height, int64_t width, int64_t base_cells, int64_t octaves, at::Generator& generator) {
  const int64_t finest = base_cells << (octaves - 1);
  const int64_t padded_h = (height + finest - 1) / finest * finest, padded_w = (width + finest - 1) / finest * finest;
  auto total = torch::zeros({padded_h, padded_w});
  double amplitude = 1.0;
  for (int64_t o = 0; o < octaves; ++o, amplitude *= 0.5) {
    const int64_t cells = base_cells << o;
    total += amplitude * random_perlin_noise(padded_h, padded_w, cells, cells, generator);
  }
  total = total.slice(0, 0, height).slice(1, 0, width);
  return (total - total.min()) / (total.max() - total.min()).clamp_min(1e-12);
}

// The 3 x 3 smoothing of PIL's ImageEnhance.Sharpness (centre 5, neighbours 1), edges replicated.
at::Tensor smoothed(const at::Tensor& image) {
  auto kernel = torch::ones({3, 3});
  kernel[1][1] = 5;
  kernel = (kernel / 13).expand({image.size(0), 1, 3, 3}).contiguous();
  namespace F = torch::nn::functional;
  const auto padded = F::pad(image.unsqueeze(0), F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
  return F::conv2d(padded, kernel, F::Conv2dFuncOptions().groups(image.size(0))).squeeze(0);
}

// Rotates RGB colours about the grey axis by `radians` (a hue shift) and scales their distance from grey.
at::Tensor shift_hue_saturation(const at::Tensor& image, double radians, double saturation_scale) {
  const double c = std::cos(radians), s = std::sin(radians), third = 1.0 / 3.0, root = std::sqrt(third);
  // Rodrigues' rotation about the unit vector (1, 1, 1) / sqrt(3).
  const auto rotation = torch::tensor({{c + third * (1 - c), third * (1 - c) - root * s, third * (1 - c) + root * s},
                                       {third * (1 - c) + root * s, c + third * (1 - c), third * (1 - c) - root * s},
                                       {third * (1 - c) - root * s, third * (1 - c) + root * s, c + third * (1 - c)}},
                                      torch::kFloat32);
  const auto rotated = torch::matmul(rotation, image.reshape({3, -1})).reshape(image.sizes());
  const auto grey = rotated.mean(0, true);
  return grey + saturation_scale * (rotated - grey);
}

// Histogram equalisation of each channel on 256 levels.
at::Tensor equalize(const at::Tensor& image) {
  const auto levels = (image * 255).round().clamp(0, 255);
  std::vector<at::Tensor> channels;
  for (int64_t c = 0; c < image.size(0); ++c) {
    const auto histogram = torch::histc(levels[c], 256, 0, 255);
    const auto cdf = histogram.cumsum(0) / static_cast<double>(levels[c].numel());
    channels.push_back(cdf.index({levels[c].to(torch::kLong)}));
  }
  return torch::stack(channels);
}

}  // namespace

double draw_uniform(at::Generator generator, double low, double high) {
  return torch::empty({1}, torch::kDouble).uniform_(low, high, generator).item<double>();
}

at::Tensor rotate_image(const at::Tensor& image, double degrees) {
  ADX_CHECK_AS(ShapeError, image.dim() == 2 || image.dim() == 3, "rotate_image takes H x W or C x H x W, got {}",
               shape_string(image.sizes().vec()));
  if (degrees == 0) return image;
  const auto x = (image.dim() == 2 ? image.unsqueeze(0) : image).unsqueeze(0).to(torch::kFloat32);
  const double radians = degrees * std::acos(-1.0) / 180.0, c = std::cos(radians), s = std::sin(radians);
  const double h = static_cast<double>(x.size(2)), w = static_cast<double>(x.size(3));
  // Rotation in pixel units, written in the [-1, 1] coordinates of affine_grid (sides may differ).
  const auto theta = torch::tensor({{c, -s * h / w, 0.0}, {s * w / h, c, 0.0}}, torch::kFloat32).unsqueeze(0);
  namespace F = torch::nn::functional;
  const auto grid = F::affine_grid(theta, x.sizes(), /*align_corners=*/false);
  auto out = F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
  out = out.squeeze(0);
  return (image.dim() == 2 ? out.squeeze(0) : out).to(image.scalar_type());
}

at::Tensor perlin_noise(const at::Tensor& angles, int64_t height, int64_t width) {
  ADX_CHECK_AS(ShapeError, angles.defined() && angles.dim() == 2 && angles.size(0) >= 2 && angles.size(1) >= 2,
               "Perlin angles must be (cells_y + 1) x (cells_x + 1) with at least one cell, got {}",
               angles.defined() ? shape_string(angles.sizes().vec()) : "an undefined tensor");
  const int64_t cells_y = angles.size(0) - 1, cells_x = angles.size(1) - 1;
  ADX_CHECK_AS(ShapeError, height >= cells_y && width >= cells_x && height % cells_y == 0 && width % cells_x == 0,
               "Perlin noise of {} x {} needs sides that are multiples of its {} x {} cells", height, width, cells_y,
               cells_x);
  const int64_t dy = height / cells_y, dx = width / cells_x;
  const auto a = angles.to(torch::kFloat64);
  // Position inside its cell, in [0, 1), for every pixel (the reference's mgrid % 1).
  const auto fy = (torch::arange(height, torch::kFloat64) / static_cast<double>(dy)).remainder(1.0).unsqueeze(1).expand({height, width});
  const auto fx = (torch::arange(width, torch::kFloat64) / static_cast<double>(dx)).remainder(1.0).unsqueeze(0).expand({height, width});
  // The gradient of a cell corner, for every pixel: corner (cy + oy, cx + ox) of the pixel's cell.
  auto corner = [&](int64_t oy, int64_t ox) {
    const auto sub = a.slice(0, oy, oy + cells_y).slice(1, ox, ox + cells_x);
    return sub.repeat_interleave(dy, 0).repeat_interleave(dx, 1);
  };
  auto dot = [&](int64_t oy, int64_t ox) {
    const auto angle = corner(oy, ox);
    return torch::cos(angle) * (fy - static_cast<double>(oy)) + torch::sin(angle) * (fx - static_cast<double>(ox));
  };
  auto fade = [](const at::Tensor& t) { return 6 * t.pow(5) - 15 * t.pow(4) + 10 * t.pow(3); };
  const auto ty = fade(fy), tx = fade(fx);
  const auto n00 = dot(0, 0), n10 = dot(1, 0), n01 = dot(0, 1), n11 = dot(1, 1);
  // As the reference: first along y (its axis 0), then along x.
  const auto along_y0 = torch::lerp(n00, n10, ty), along_y1 = torch::lerp(n01, n11, ty);
  return (std::sqrt(2.0) * torch::lerp(along_y0, along_y1, tx)).to(torch::kFloat32);
}

at::Tensor random_perlin_noise(int64_t height, int64_t width, int64_t cells_y, int64_t cells_x, at::Generator generator) {
  ADX_CHECK_AS(ValueError, cells_y >= 1 && cells_x >= 1, "Perlin noise needs at least one cell, got {} x {}", cells_y,
               cells_x);
  const auto angles = torch::empty({cells_y + 1, cells_x + 1}, torch::kFloat64).uniform_(0, 2 * std::acos(-1.0), generator);
  return perlin_noise(angles, height, width);
}

at::Tensor perlin_mask(int64_t height, int64_t width, at::Generator generator, double threshold, int64_t max_scale_log2,
                       double max_rotation_degrees) {
  ADX_CHECK_AS(ValueError, max_scale_log2 >= 1 && max_scale_log2 <= 12, "max_scale_log2 must be in [1, 12], got {}",
               max_scale_log2);
  ADX_CHECK_AS(ValueError, max_rotation_degrees >= 0 && max_rotation_degrees <= 180,
               "max_rotation_degrees must be in [0, 180], got {}", max_rotation_degrees);
  const int64_t largest = int64_t{1} << (max_scale_log2 - 1);
  ADX_CHECK_AS(ShapeError, height % largest == 0 && width % largest == 0,
               "a Perlin mask of {} x {} needs sides that are multiples of {}", height, width, largest);
  auto scale = [&] {
    return int64_t{1} << static_cast<int64_t>(std::floor(uniform(generator, 0, static_cast<double>(max_scale_log2))));
  };
  const int64_t cells_y = scale(), cells_x = scale();
  auto noise = random_perlin_noise(height, width, cells_y, cells_x, generator);
  // As DRAEM's reference, the noise is rotated before thresholding; what turns in from outside is 0.
  if (max_rotation_degrees > 0) noise = rotate_image(noise, uniform(generator, -max_rotation_degrees, max_rotation_degrees));
  return (noise > threshold).to(torch::kFloat32);
}

at::Tensor augment_anomaly_source(const at::Tensor& image, at::Generator generator, int64_t count) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
               "an anomaly source is 1 x H x W or 3 x H x W, got {}", shape_string(image.sizes().vec()));
  constexpr int64_t kOperations = 10;
  ADX_CHECK_AS(ValueError, count >= 0 && count <= kOperations, "augmentation count must be in [0, {}], got {}",
               kOperations, count);
  auto x = image.to(torch::kFloat32).clamp(0, 1);
  const auto order = torch::randperm(kOperations, generator, torch::kLong);
  for (int64_t k = 0; k < count; ++k) {
    switch (order[k].item<int64_t>()) {
      case 0: {  // gamma contrast, one gamma per channel
        const auto gamma = torch::empty({x.size(0), 1, 1}).uniform_(0.5, 2.0, generator);
        x = x.clamp_min(0).pow(gamma);
        break;
      }
      case 1:  // brightness: multiply, then add
        x = x * uniform(generator, 0.8, 1.2) + uniform(generator, -30, 30) / 255.0;
        break;
      case 2: {  // sharpness: blend between the smoothed image (0) and an over-sharpened one (2)
        const auto smooth = smoothed(x);
        x = smooth + uniform(generator, 0.0, 2.0) * (x - smooth);
        break;
      }
      case 3: {  // hue and saturation, each its own shift (grey images have neither)
        const double hue = uniform(generator, -50, 50), saturation = uniform(generator, -50, 50);
        if (x.size(0) == 3) x = shift_hue_saturation(x, hue / 255.0 * std::acos(-1.0), 1.0 + saturation / 127.5);
        break;
      }
      case 4: {  // solarize, half the time: invert what lies above the threshold
        const double threshold = uniform(generator, 32, 128) / 255.0;
        if (uniform(generator, 0, 1) < 0.5) x = torch::where(x >= threshold, 1 - x, x);
        break;
      }
      case 5: {  // posterize to 1-8 bits
        const double step = std::pow(2.0, 8 - (1 + uniform_index(generator, 8)));
        x = torch::floor(x * 255.0 / step) * step / 255.0;
        break;
      }
      case 6:  // invert
        x = 1 - x;
        break;
      case 7: {  // autocontrast, each channel stretched between its cut-off quantiles
        const double cutoff = uniform(generator, 0.0, 0.2);
        const auto flat = x.reshape({x.size(0), -1});
        const auto low = torch::quantile(flat, cutoff, 1, true), high = torch::quantile(flat, 1 - cutoff, 1, true);
        const auto range = (high - low).unsqueeze(2);
        x = torch::where(range > 1e-6, (x - low.unsqueeze(2)) / range.clamp_min(1e-6), x);
        break;
      }
      case 8:  // histogram equalisation
        x = equalize(x.clamp(0, 1));
        break;
      default:  // rotation by up to 45 degrees, zero outside
        x = rotate_image(x, uniform(generator, -45, 45));
        break;
    }
    x = x.clamp(0, 1);
  }
  return x;
}

at::Tensor procedural_texture(int64_t channels, int64_t height, int64_t width, at::Generator generator) {
  ADX_CHECK_AS(ValueError, (channels == 1 || channels == 3) && height >= 1 && width >= 1,
               "a procedural texture needs 1 or 3 channels and a positive size, got {} x {} x {}", channels, height,
               width);
  const double pi = std::acos(-1.0);
  const auto y = (torch::arange(height, torch::kFloat32) / static_cast<double>(std::max(height, width))).unsqueeze(1);
  const auto x = (torch::arange(width, torch::kFloat32) / static_cast<double>(std::max(height, width))).unsqueeze(0);
  const auto warp = fractal_noise(height, width, int64_t{1} << uniform_index(generator, 3), 3, generator) - 0.5;
  at::Tensor pattern;
  switch (uniform_index(generator, 3)) {
    case 0:  // fractal noise, from coarse blotches to fine grain
      pattern = fractal_noise(height, width, int64_t{1} << uniform_index(generator, 4), 4, generator);
      break;
    case 1: {  // stripes at a random angle and period, bent by the noise; hard-edged half the time
      const double angle = uniform(generator, 0, pi), cycles = uniform(generator, 2, 24);
      pattern = 0.5 + 0.5 * torch::sin(2 * pi * cycles * (std::cos(angle) * x + std::sin(angle) * y) +
                                       uniform(generator, 0, 2 * pi) * warp);
      if (uniform(generator, 0, 1) < 0.5) pattern = (pattern > 0.5).to(torch::kFloat32);
      break;
    }
    default: {  // a checkerboard bent by the noise
      const double cells = uniform(generator, 2, 16), bend = uniform(generator, 0, 1);
      pattern = (torch::floor(cells * x + bend * warp) + torch::floor(cells * y + bend * warp)).remainder(2);
      break;
    }
  }
  pattern = pattern.expand({height, width});
  // Two random colours, and a grain that keeps flat regions from being perfectly flat.
  const auto from = torch::empty({channels, 1, 1}).uniform_(0, 1, generator);
  const auto to = torch::empty({channels, 1, 1}).uniform_(0, 1, generator);
  const auto grain = 0.85 + 0.3 * fractal_noise(height, width, 8, 2, generator);
  return ((from + pattern.unsqueeze(0) * (to - from)) * grain.unsqueeze(0)).clamp(0, 1).contiguous();
}

AnomalySource AnomalySource::textures(const std::string& folder) {
  AnomalySource source;
  if (folder.empty()) return source;
  ADX_CHECK_AS(IoError, std::filesystem::is_directory(folder), "texture folder {} does not exist", folder);
  source.folder_ = folder;
  source.files_ = list_image_files(folder, /*recursive=*/true);
  ADX_CHECK_AS(IoError, !source.files_.empty(), "texture folder {} holds no images (png, jpg or bmp)", folder);
  return source;
}

AnomalySource AnomalySource::normal_images(const at::Tensor& images) {
  ADX_CHECK_AS(ShapeError, images.defined() && images.dim() == 4 && images.size(0) >= 1,
               "normal images as an anomaly source must be N x C x H x W with N >= 1, got {}",
               images.defined() ? shape_string(images.sizes().vec()) : "an undefined tensor");
  AnomalySource source;
  source.images_ = images.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return source;
}

at::Tensor AnomalySource::draw(int64_t channels, int64_t height, int64_t width, at::Generator generator) const {
  if (images_.defined())
    return resize_image(with_channels(images_[uniform_index(generator, images_.size(0))], channels), height, width);
  if (!files_.empty()) {
    const auto& path = files_[static_cast<size_t>(uniform_index(generator, static_cast<int64_t>(files_.size())))];
    return resize_image(read_image(path, static_cast<int>(channels == 1 ? 1 : 3)), height, width);
  }
  return procedural_texture(channels, height, width, generator);
}

std::string AnomalySource::describe() const {
  if (images_.defined()) return std::to_string(images_.size(0)) + " normal images";
  if (!files_.empty()) return "folder " + folder_ + " (" + std::to_string(files_.size()) + " images)";
  return "procedural";
}

void PerlinAnomalyOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.in("opacity_min", opacity_min(), 0.0, 1.0, "[)")
      .that(opacity_max() >= opacity_min() && opacity_max() < 1, "opacity_max", "must be in ['{}' = {}, 1), got {}",
            c.key("opacity_min"), opacity_min(), opacity_max())
      .in("threshold", threshold(), -1.0, 1.0)
      .in("max_scale_log2", max_scale_log2(), 1, 12)
      .in("max_rotation_degrees", max_rotation_degrees(), 0.0, 180.0);
}

SyntheticAnomaly perlin_anomaly(const at::Tensor& image, const at::Tensor& source, at::Generator generator,
                                const PerlinAnomalyOptions& options) {
  check_options(options);
  ADX_CHECK_AS(ShapeError, image.dim() == 3, "a Perlin anomaly needs a C x H x W image, got {}",
               shape_string(image.sizes().vec()));
  const auto mask = perlin_mask(image.size(1), image.size(2), generator, options.threshold(), options.max_scale_log2(),
                                options.max_rotation_degrees());
  const double beta = options.opacity_max() > options.opacity_min()
                          ? uniform(generator, options.opacity_min(), options.opacity_max())
                          : options.opacity_min();
  return {blend_anomaly(image, source.to(image.scalar_type()), mask, beta), mask};
}

at::Tensor blend_anomaly(const at::Tensor& image, const at::Tensor& source, const at::Tensor& mask, double beta) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && source.sizes() == image.sizes(),
               "blend needs C x H x W image and source of one shape, got {} and {}", shape_string(image.sizes().vec()),
               shape_string(source.sizes().vec()));
  ADX_CHECK_AS(ShapeError, mask.dim() == 2 && mask.size(0) == image.size(1) && mask.size(1) == image.size(2),
               "blend mask must be H x W = {} x {}, got {}", image.size(1), image.size(2), shape_string(mask.sizes().vec()));
  ADX_CHECK_AS(ValueError, beta >= 0 && beta < 1, "blend opacity beta must be in [0, 1), got {}", beta);
  const auto m = mask.unsqueeze(0).to(image.scalar_type());
  return (1 - m) * image + (1 - beta) * m * source + beta * m * image;
}

at::Tensor disk_footprint(int64_t radius) {
  const auto offsets = torch::arange(-radius, radius + 1, torch::kFloat64);
  return (offsets.pow(2).unsqueeze(1) + offsets.pow(2).unsqueeze(0)) <= static_cast<double>(radius * radius);
}

at::Tensor median_filter(const at::Tensor& map, const at::Tensor& footprint) {
  ADX_CHECK_AS(ShapeError, map.dim() == 2 && footprint.dim() == 2 && footprint.size(0) == footprint.size(1) &&
                               footprint.size(0) % 2 == 1,
               "median_filter takes an H x W map and a K x K footprint with K odd, got {} and {}",
               shape_string(map.sizes().vec()), shape_string(footprint.sizes().vec()));
  const int64_t k = footprint.size(0), pad = k / 2;
  namespace F = torch::nn::functional;
  const auto padded =
      F::pad(map.to(torch::kFloat32).unsqueeze(0).unsqueeze(0), F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReplicate));
  // Every pixel's K x K neighbourhood as a column, then only the footprint's rows.
  const auto columns = F::unfold(padded, F::UnfoldFuncOptions({k, k})).squeeze(0);
  const auto kept = columns.index_select(0, footprint.reshape({-1}).nonzero().squeeze(1));
  return std::get<0>(kept.median(0)).reshape(map.sizes());
}

void NaturalAnomalyOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.at_least("max_patches", max_patches(), 1)
      .in("min_half_width", min_half_width(), 0.0, 0.5, "()")
      .that(max_half_width() >= min_half_width() && max_half_width() < 0.5, "max_half_width",
            "must be in ['{}' = {}, 0.5), got {}", c.key("min_half_width"), min_half_width(), max_half_width())
      .above("gamma_shape", gamma_shape(), 0.0)
      .above("gamma_scale", gamma_scale(), 0.0)
      .at_least("gamma_offset", gamma_offset(), 0.0)
      .above("min_scale", min_scale(), 0.0)
      .that(max_scale() >= min_scale(), "max_scale", "must be >= '{}' = {}, got {}", c.key("min_scale"), min_scale(),
            max_scale())
      .above("label_k", label_k(), 0.0)
      .at_least("tolerance", tolerance(), 0.0);
}

SyntheticAnomaly natural_anomaly(const at::Tensor& image, const at::Tensor& source, at::Generator generator,
                                 const NaturalAnomalyOptions& o) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && source.sizes() == image.sizes(),
               "a natural anomaly needs a C x H x W image and a source of one shape, got {} and {}",
               shape_string(image.sizes().vec()), shape_string(source.sizes().vec()));
  check_options(o);
  const int64_t height = image.size(1), width = image.size(2);
  const auto original = image.to(torch::kFloat32);
  const auto donor = source.to(torch::kFloat32);
  auto result = original.clone();
  auto patches = torch::zeros({height, width});
  const int64_t min_h = std::llround(o.min_half_width() * height), max_h = std::llround(o.max_half_width() * height);
  const int64_t min_w = std::llround(o.min_half_width() * width), max_w = std::llround(o.max_half_width() * width);
  ADX_CHECK_AS(ShapeError, min_h >= 1 && min_w >= 1, "a natural anomaly needs an image of at least {} x {} px, got {} x {}",
               static_cast<int64_t>(std::ceil(0.5 / o.min_half_width())), static_cast<int64_t>(std::ceil(0.5 / o.min_half_width())),
               height, width);
  // An integer uniform in [low, high), as numpy's randint.
  auto randint = [&](int64_t low, int64_t high) { return low + uniform_index(generator, std::max<int64_t>(1, high - low)); };
  // Gamma(shape, scale) by Marsaglia and Tsang's method, from the generator's normals and uniforms.
  auto gamma = [&] {
    const double shape = o.gamma_shape() < 1 ? o.gamma_shape() + 1 : o.gamma_shape();
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    double value = 0;
    for (;;) {
      const double z = torch::empty({1}, torch::kDouble).normal_(0, 1, generator).item<double>();
      const double v = std::pow(1 + c * z, 3);
      if (v <= 0) continue;
      if (std::log(uniform(generator, 0, 1)) < 0.5 * z * z + d - d * v + d * std::log(v)) {
        value = d * v;
        break;
      }
    }
    if (o.gamma_shape() < 1) value *= std::pow(uniform(generator, 0, 1), 1.0 / o.gamma_shape());
    return value * o.gamma_scale();
  };
  for (int64_t p = 0; p < o.max_patches(); ++p) {
    if (p > 0 && uniform(generator, 0, 1) < 0.5) continue;
    const int64_t half_h = std::clamp<int64_t>(static_cast<int64_t>((o.gamma_offset() + gamma()) * height), min_h, max_h);
    const int64_t half_w = std::clamp<int64_t>(static_cast<int64_t>((o.gamma_offset() + gamma()) * width), min_w, max_w);
    const int64_t centre_y = randint(min_h, height - min_h), centre_x = randint(min_w, width - min_w);
    const int64_t top = std::max<int64_t>(0, centre_y - half_h), bottom = std::min(height, centre_y + half_h);
    const int64_t left = std::max<int64_t>(0, centre_x - half_w), right = std::min(width, centre_x + half_w);
    int64_t h = bottom - top, w = right - left;
    if (h < 3 || w < 3) continue;
    // Resize by a factor N(1, 0.5), clipped, keeping the aspect ratio within the bounds.
    const double scale = std::clamp(torch::empty({1}, torch::kDouble).normal_(1, 0.5, generator).item<double>(),
                                    o.min_scale(), o.max_scale());
    const double scaled_h = std::clamp(scale * static_cast<double>(h), static_cast<double>(min_h), static_cast<double>(max_h));
    const int64_t new_w = std::clamp<int64_t>(static_cast<int64_t>(scaled_h / h * w), min_w, max_w);
    const int64_t new_h = std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(new_w) / w * h), min_h, max_h);
    const auto patch = resize_image(donor.slice(1, top, bottom).slice(2, left, right), new_h, new_w);
    h = new_h, w = new_w;
    if (h < 3 || w < 3 || height - h / 2 - 1 <= h / 2 + 1 || width - w / 2 - 1 <= w / 2 + 1) continue;
    const int64_t to_y = randint(h / 2 + 1, height - h / 2 - 1) - h / 2;
    const int64_t to_x = randint(w / 2 + 1, width - w / 2 - 1) - w / 2;
    // The patch placed on a copy of the image; its outer ring stays the boundary, as the reference zeroes it.
    auto placed = result.clone();
    placed.slice(1, to_y, to_y + h).slice(2, to_x, to_x + w).copy_(patch);
    auto inside = torch::zeros({height, width});
    inside.slice(0, to_y + 1, to_y + h - 1).slice(1, to_x + 1, to_x + w - 1).fill_(1);
    if (inside.sum().item<double>() < 50) continue;
    PoissonBlendOptions blend;
    blend.mixed = o.mixed_gradients();
    result = poisson_blend(result, placed, inside, blend).clamp(0, 1);
    patches.slice(0, to_y, to_y + h).slice(1, to_x, to_x + w).fill_(1);
  }
  return {result.to(image.scalar_type()), natural_anomaly_label(original, result, patches, o)};
}

at::Tensor natural_anomaly_label(const at::Tensor& original, const at::Tensor& blended, const at::Tensor& patches,
                                 const NaturalAnomalyOptions& o) {
  ADX_CHECK_AS(ShapeError,
               original.dim() == 3 && blended.sizes() == original.sizes() && patches.dim() == 2 &&
                   patches.size(0) == original.size(1) && patches.size(1) == original.size(2),
               "a natural anomaly's label needs C x H x W images of one shape and an H x W patch mask, got {}, {} and {}",
               shape_string(original.sizes().vec()), shape_string(blended.sizes().vec()),
               shape_string(patches.sizes().vec()));
  const auto difference = (original.to(torch::kFloat32) - blended.to(torch::kFloat32)).abs().mean(0) * 255.0 *
                          patches.to(torch::kFloat32);
  const auto changed = median_filter((difference > o.tolerance()).to(torch::kFloat32), torch::ones({5, 5}, torch::kBool));
  const auto intensity = median_filter(difference * changed, disk_footprint(5));
  return changed / (1 + torch::exp(-o.label_k() * (intensity - o.label_x0())));
}

PatchBox cutpaste_box(int64_t height, int64_t width, at::Generator generator, double area_min, double area_max,
                      double aspect_min) {
  ADX_CHECK_AS(ValueError, 0 < area_min && area_min <= area_max && area_max <= 1 && 0 < aspect_min && aspect_min <= 1,
               "cutpaste needs 0 < area_min <= area_max <= 1 and aspect_min in (0, 1], got {}, {}, {}", area_min,
               area_max, aspect_min);
  ADX_CHECK_AS(ShapeError, height >= 2 && width >= 2, "cutpaste needs an image of at least 2 x 2, got {} x {}", height,
               width);
  const double area = uniform(generator, area_min, area_max) * static_cast<double>(height * width);
  const double aspect = std::exp(uniform(generator, std::log(aspect_min), -std::log(aspect_min)));
  PatchBox box;
  box.height = std::clamp<int64_t>(std::llround(std::sqrt(area * aspect)), 1, height - 1);
  box.width = std::clamp<int64_t>(std::llround(std::sqrt(area / aspect)), 1, width - 1);
  box.top = static_cast<int64_t>(uniform(generator, 0, static_cast<double>(height - box.height)));
  box.left = static_cast<int64_t>(uniform(generator, 0, static_cast<double>(width - box.width)));
  return box;
}

at::Tensor paste_patch(const at::Tensor& image, const PatchBox& from, const PatchBox& to) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3, "paste_patch needs a C x H x W image, got {}",
               shape_string(image.sizes().vec()));
  auto inside = [&](const PatchBox& b) {
    return b.top >= 0 && b.left >= 0 && b.height >= 1 && b.width >= 1 && b.top + b.height <= image.size(1) &&
           b.left + b.width <= image.size(2);
  };
  ADX_CHECK_AS(ValueError, inside(from) && inside(to) && from.height == to.height && from.width == to.width,
               "paste_patch boxes must lie in the {} x {} image and have one size", image.size(1), image.size(2));
  auto out = image.clone();
  out.slice(1, to.top, to.top + to.height)
      .slice(2, to.left, to.left + to.width)
      .copy_(image.slice(1, from.top, from.top + from.height).slice(2, from.left, from.left + from.width));
  return out;
}

at::Tensor color_jitter(const at::Tensor& image, at::Generator generator, double strength) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
               "color_jitter takes a 1 x H x W or 3 x H x W image, got {}", shape_string(image.sizes().vec()));
  ADX_CHECK_AS(ValueError, strength >= 0 && strength <= 0.5, "color_jitter strength must be in [0, 0.5], got {}",
               strength);
  auto x = image.to(torch::kFloat32);
  const auto grey = [](const at::Tensor& t) {
    return t.size(0) == 3 ? (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0) : t;
  };
  const auto order = torch::randperm(4, generator, torch::kLong);
  for (int64_t k = 0; k < 4; ++k) {
    switch (order[k].item<int64_t>()) {
      case 0:  // brightness
        x = x * uniform(generator, 1 - strength, 1 + strength);
        break;
      case 1: {  // contrast: towards the mean grey level
        const double factor = uniform(generator, 1 - strength, 1 + strength);
        x = factor * x + (1 - factor) * grey(x).mean();
        break;
      }
      case 2: {  // saturation: towards the pixel's grey
        const double factor = uniform(generator, 1 - strength, 1 + strength);
        if (x.size(0) == 3) x = factor * x + (1 - factor) * grey(x);
        break;
      }
      default: {  // hue
        const double turn = uniform(generator, -strength, strength);
        if (x.size(0) == 3) x = shift_hue_saturation(x, turn * 2 * std::acos(-1.0), 1.0);
        break;
      }
    }
    x = x.clamp(0, 1);
  }
  return x;
}

at::Tensor cutpaste(const at::Tensor& image, at::Generator generator) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3, "cutpaste takes a C x H x W image, got {}", shape_string(image.sizes().vec()));
  const int64_t height = image.size(1), width = image.size(2);
  const auto from = cutpaste_box(height, width, generator);
  PatchBox to = from;
  to.top = uniform_index(generator, height - from.height + 1);
  to.left = uniform_index(generator, width - from.width + 1);
  auto out = image.clone();
  const auto patch = image.slice(1, from.top, from.top + from.height).slice(2, from.left, from.left + from.width);
  out.slice(1, to.top, to.top + to.height).slice(2, to.left, to.left + to.width).copy_(color_jitter(patch, generator));
  return out;
}

at::Tensor cutpaste_scar(const at::Tensor& image, at::Generator generator) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && image.size(1) >= 16 && image.size(2) >= 16,
               "cutpaste_scar takes a C x H x W image of at least 16 x 16, got {}", shape_string(image.sizes().vec()));
  const int64_t height = image.size(1), width = image.size(2);
  const double unit = static_cast<double>(std::min(height, width)) / 256.0;
  const int64_t scar_w = std::clamp<int64_t>(std::llround(uniform(generator, 2, 16) * unit), 1, width - 1);
  const int64_t scar_h = std::clamp<int64_t>(std::llround(uniform(generator, 10, 25) * unit), 2, height - 1);
  const int64_t top = uniform_index(generator, height - scar_h + 1), left = uniform_index(generator, width - scar_w + 1);
  const auto patch = color_jitter(image.slice(1, top, top + scar_h).slice(2, left, left + scar_w), generator);
  // Rotated on a square canvas as large as its diagonal, with a mask of where the scar lies (PIL's
  // rotate(expand=True) with its alpha channel).
  const int64_t side = static_cast<int64_t>(std::ceil(std::hypot(scar_h, scar_w))) + 1;
  auto canvas = torch::zeros({image.size(0) + 1, side, side});
  const int64_t at_y = (side - scar_h) / 2, at_x = (side - scar_w) / 2;
  canvas.slice(0, 0, image.size(0)).slice(1, at_y, at_y + scar_h).slice(2, at_x, at_x + scar_w).copy_(patch);
  canvas[image.size(0)].slice(0, at_y, at_y + scar_h).slice(1, at_x, at_x + scar_w).fill_(1);
  canvas = rotate_image(canvas, uniform(generator, -45, 45));
  const int64_t to_y = uniform_index(generator, std::max<int64_t>(1, height - side + 1));
  const int64_t to_x = uniform_index(generator, std::max<int64_t>(1, width - side + 1));
  const int64_t fit_h = std::min(side, height - to_y), fit_w = std::min(side, width - to_x);
  auto out = image.clone();
  auto region = out.slice(1, to_y, to_y + fit_h).slice(2, to_x, to_x + fit_w);
  const auto placed = canvas.slice(1, 0, fit_h).slice(2, 0, fit_w);
  const auto inside = (placed[image.size(0)] > 0.5).unsqueeze(0).expand({image.size(0), fit_h, fit_w});
  region.copy_(torch::where(inside, placed.slice(0, 0, image.size(0)).to(out.scalar_type()), region));
  return out;
}

}  // namespace adx
