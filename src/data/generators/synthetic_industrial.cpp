#include <adx/core/error.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/generators/synthetic_industrial.hpp>
#include <adx/io/files.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

namespace fs = std::filesystem;

namespace adx {

namespace {

struct Canvas {
  at::Tensor xx, yy;  // pixel coordinates, S x S
  explicit Canvas(int64_t s) {
    const auto r = torch::arange(s, torch::kFloat32);
    auto grids = torch::meshgrid({r, r}, "ij");
    yy = grids[0];
    xx = grids[1];
  }
  at::Tensor disc(double cx, double cy, double radius) const {
    return ((xx - cx).square() + (yy - cy).square() <= radius * radius).to(torch::kFloat32);
  }
  // Pixels within `half_width` of the segment (x0, y0) - (x1, y1).
  at::Tensor segment(double x0, double y0, double x1, double y1, double half_width) const {
    const double dx = x1 - x0, dy = y1 - y0, length2 = std::max(1e-9, dx * dx + dy * dy);
    const auto t = (((xx - x0) * dx + (yy - y0) * dy) / length2).clamp(0, 1);
    const auto d2 = (xx - (x0 + t * dx)).square() + (yy - (y0 + t * dy)).square();
    return (d2 <= half_width * half_width).to(torch::kFloat32);
  }
};

at::Tensor rgb(double r, double g, double b) { return torch::tensor({r, g, b}, torch::kFloat32).reshape({3, 1, 1}); }

// A defect-free image of `category`; `object` receives where the part is (all ones for textures).
at::Tensor normal_image(const std::string& category, const Canvas& cv, int64_t s, std::mt19937_64& rng,
                        at::Tensor* object) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double phase = u(rng) * 6.2832, jitter_x = (u(rng) - 0.5) * 8, jitter_y = (u(rng) - 0.5) * 8;
  auto noise = [&](double level) {
    return torch::randn({1, s, s}) * level;  // seeded through torch::manual_seed by the caller
  };
  *object = torch::ones({1, s, s});
  if (category == "weave") {
    const auto pattern = 0.5 + 0.25 * torch::sin(cv.xx * 0.45 + phase) * torch::sin(cv.yy * 0.45 + phase * 0.7);
    return (rgb(0.85, 0.78, 0.62) * pattern.unsqueeze(0) + noise(0.03)).clamp(0, 1);
  }
  if (category == "grain") {
    const auto warp = cv.xx + 6.0 * torch::sin(cv.yy * 0.05 + phase);
    const auto pattern = 0.55 + 0.2 * torch::sin(warp * 0.35) + 0.05 * torch::sin(warp * 1.3 + phase);
    return (rgb(0.75, 0.5, 0.3) * pattern.unsqueeze(0) + noise(0.02)).clamp(0, 1);
  }
  if (category == "tiles") {
    const double period = s / 8.0, offset = u(rng) * period;
    const auto gx = torch::remainder(cv.xx + offset, period), gy = torch::remainder(cv.yy + offset, period);
    const auto grout = ((gx < 3) | (gy < 3)).to(torch::kFloat32);
    const auto base = 0.7 - 0.35 * grout;
    return (rgb(0.8, 0.82, 0.85) * base.unsqueeze(0) + noise(0.02)).clamp(0, 1);
  }
  const double cx = s / 2.0 + jitter_x, cy = s / 2.0 + jitter_y;
  if (category == "washer") {
    const auto ring = cv.disc(cx, cy, s * 0.32) - cv.disc(cx, cy, s * 0.12);
    *object = ring.unsqueeze(0);
    const auto shade = 0.55 + 0.25 * (cv.xx - cx + cv.yy - cy) / s;
    return (rgb(0.12, 0.12, 0.14) + ring.unsqueeze(0) * rgb(0.7, 0.7, 0.72) * shade.unsqueeze(0) + noise(0.02))
        .clamp(0, 1);
  }
  if (category == "plate") {
    const double half = s * 0.3;
    auto plate = ((cv.xx - cx).abs() <= half) & ((cv.yy - cy).abs() <= half);
    auto body = plate.to(torch::kFloat32);
    for (double sx : {-1.0, 1.0})
      for (double sy : {-1.0, 1.0}) body = body - cv.disc(cx + sx * half * 0.7, cy + sy * half * 0.7, s * 0.04);
    body = body.clamp(0, 1);
    *object = body.unsqueeze(0);
    return (rgb(0.25, 0.35, 0.3) + body.unsqueeze(0) * rgb(0.45, 0.4, 0.3) + noise(0.02)).clamp(0, 1);
  }
  throw OptionError("unknown synthetic category " + category);
}

// Draws `defect` on `image` inside `object`; returns the mask (1 x S x S).
at::Tensor add_defect(const std::string& defect, at::Tensor& image, const at::Tensor& object, const Canvas& cv,
                      int64_t s, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // A centre on the part: try random points until one lies on it.
  double cx = s / 2.0, cy = s / 2.0;
  const auto on_part = object[0];
  for (int attempt = 0; attempt < 200; ++attempt) {
    const double x = s * (0.15 + 0.7 * u(rng)), y = s * (0.15 + 0.7 * u(rng));
    if (on_part[static_cast<int64_t>(y)][static_cast<int64_t>(x)].item<float>() > 0.5) {
      cx = x;
      cy = y;
      break;
    }
  }
  at::Tensor mask;
  at::Tensor colour = rgb(0.05, 0.05, 0.05);
  const double scale = s / 256.0;
  if (defect == "scratch") {
    const double angle = u(rng) * 3.1416, length = (40 + 60 * u(rng)) * scale;
    mask = cv.segment(cx - std::cos(angle) * length / 2, cy - std::sin(angle) * length / 2,
                      cx + std::cos(angle) * length / 2, cy + std::sin(angle) * length / 2, 1.2 * scale + 0.3);
    colour = rgb(0.95, 0.95, 0.95);
  } else if (defect == "spot") {
    mask = cv.disc(cx, cy, (4 + 6 * u(rng)) * scale);
    colour = rgb(0.1, 0.08, 0.05);
  } else if (defect == "hole") {
    mask = cv.disc(cx, cy, (8 + 8 * u(rng)) * scale);
    colour = rgb(0.0, 0.0, 0.0);
  } else if (defect == "crack") {
    mask = torch::zeros({s, s});
    double x = cx, y = cy, angle = u(rng) * 6.2832;
    for (int k = 0; k < 6; ++k) {
      angle += (u(rng) - 0.5) * 1.2;
      const double nx = x + std::cos(angle) * 12 * scale, ny = y + std::sin(angle) * 12 * scale;
      mask = torch::maximum(mask, cv.segment(x, y, nx, ny, 1.0 * scale + 0.3));
      x = nx;
      y = ny;
    }
    colour = rgb(0.08, 0.06, 0.06);
  } else if (defect == "stain") {
    const double radius = (12 + 12 * u(rng)) * scale;
    const auto d2 = (cv.xx - cx).square() + (cv.yy - cy).square();
    const auto alpha = torch::exp(-d2 / (2 * radius * radius / 4)) * 0.7 * object[0];
    mask = (alpha > 0.2).to(torch::kFloat32);
    image = image * (1 - alpha.unsqueeze(0)) + alpha.unsqueeze(0) * rgb(0.6, 0.15, 0.1);
    mask = mask.unsqueeze(0) * object;
    return mask;
  } else {
    throw OptionError("unknown synthetic defect " + defect);
  }
  mask = mask.unsqueeze(0) * object;
  image = image * (1 - mask) + mask * colour;
  return mask;
}

}  // namespace

std::vector<std::string> write_synthetic_industrial(const std::string& root, const SyntheticOptions& o) {
  ADX_CHECK_AS(OptionError, o.image_size >= 32 && o.train_images > 0 && o.good_test_images >= 0 &&
                                o.defects_per_type > 0,
               "synthetic data needs image_size >= 32 and positive image counts, got size {}, {} train, {} good "
               "test, {} per defect",
               o.image_size, o.train_images, o.good_test_images, o.defects_per_type);
  const std::vector<std::string> categories{"weave", "grain", "tiles", "washer", "plate"};
  const std::vector<std::string> defects{"scratch", "spot", "hole", "crack", "stain"};
  const Canvas cv(o.image_size);
  const int64_t s = o.image_size;
  for (size_t ci = 0; ci < categories.size(); ++ci) {
    const auto& category = categories[ci];
    std::mt19937_64 rng(o.seed * 1000003 + ci);
    torch::manual_seed(o.seed * 1000003 + ci);
    const fs::path base = fs::path(root) / category;
    std::error_code ec;
    for (const char* sub : {"train/good", "test/good"}) fs::create_directories(base / sub, ec);
    at::Tensor object;
    for (int64_t i = 0; i < o.train_images; ++i)
      write_png((base / "train/good" / fmt::format("{:03d}.png", i)).string(), normal_image(category, cv, s, rng, &object));
    for (int64_t i = 0; i < o.good_test_images; ++i)
      write_png((base / "test/good" / fmt::format("{:03d}.png", i)).string(), normal_image(category, cv, s, rng, &object));
    for (const auto& defect : defects) {
      fs::create_directories(base / "test" / defect, ec);
      fs::create_directories(base / "ground_truth" / defect, ec);
      for (int64_t i = 0; i < o.defects_per_type; ++i) {
        auto image = normal_image(category, cv, s, rng, &object);
        const auto mask = add_defect(defect, image, object, cv, s, rng);
        write_png((base / "test" / defect / fmt::format("{:03d}.png", i)).string(), image);
        write_png((base / "ground_truth" / defect / fmt::format("{:03d}_mask.png", i)).string(), mask);
      }
    }
    ADX_CHECK_AS(IoError, fs::is_directory(base / "train/good"), "cannot create {}", (base / "train/good").string());
  }
  return categories;
}

}  // namespace adx
