#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/images.hpp>
#include <adx/io/files.hpp>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

namespace fs = std::filesystem;

namespace adx {
namespace {

bool is_image_file(const fs::path& p) {
  auto ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<fs::path> image_files(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Largest image adx decodes (2^26 pixels, 8192 x 8192; 805 MB as RGB floats): a header
// claiming more is refused before any pixel memory is allocated.
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// stb's PNG decoder reads zero bits past the end of a broken compressed stream and can keep
// producing output until memory runs out (a 115-byte file asked for 2 GiB). So the image
// data of a PNG is inflated with zlib first, which rejects broken streams, and must not
// inflate past what the header's size allows.
void check_png_stream(const std::string& bytes, const std::string& path) {
  size_t at = 8;
  std::string idat;
  uint64_t limit = 0;
  bool seen_header = false;
  while (at + 12 <= bytes.size()) {
    const uint32_t length = read_big_endian32(bytes, at);
    const std::string type = bytes.substr(at + 4, 4);
    ADX_CHECK_AS(IoError, length <= bytes.size() - at - 12, "PNG {}: chunk '{}' runs past the end of the file", path,
                 type);
    if (type == "IHDR") {
      ADX_CHECK_AS(IoError, length >= 13, "PNG {}: header chunk too short", path);
      const uint64_t width = read_big_endian32(bytes, at + 8), height = read_big_endian32(bytes, at + 12);
      const uint64_t depth = static_cast<unsigned char>(bytes[at + 16]);
      // Up to 4 channels of up to 16 bits; each row has a filter byte. Adam7 interlacing adds
      // at most 7 extra partial rows per pass, bounded here by 8 extra full rows.
      limit = (height + 8) * (1 + (width * 4 * std::max<uint64_t>(depth, 8) + 7) / 8);
      seen_header = true;
    } else if (type == "IDAT") {
      idat.append(bytes, at + 8, length);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + length;
  }
  ADX_CHECK_AS(IoError, seen_header && !idat.empty(), "PNG {}: no header or no image data", path);
  z_stream stream{};
  ADX_CHECK_AS(IoError, inflateInit(&stream) == Z_OK, "PNG {}: zlib failed to start", path);
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&stream, inflateEnd);
  stream.next_in = reinterpret_cast<Bytef*>(idat.data());
  stream.avail_in = static_cast<uInt>(idat.size());
  std::vector<Bytef> out(1 << 16);
  uint64_t total = 0;
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size());
    status = inflate(&stream, Z_NO_FLUSH);
    total += out.size() - stream.avail_out;
    ADX_CHECK_AS(IoError, total <= limit, "PNG {}: its image data inflates past the {} bytes its size allows", path,
                 limit);
  }
  ADX_CHECK_AS(IoError, status == Z_STREAM_END, "PNG {}: corrupt or truncated image data (zlib status {})", path,
               status);
}

// Raw pixels as C x H x W uint8 -> float in [0, 1]. Only PNG, JPEG and BMP are decoded: stb
// knows more formats, but each is more foreign code that hostile files can reach.
at::Tensor decode_bytes(const std::string& bytes, const std::string& path, int wanted_channels, int* channels_in_file) {
  const bool png = bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
  const bool jpeg = bytes.size() >= 3 && bytes.compare(0, 3, "\xFF\xD8\xFF") == 0;
  const bool bmp = bytes.compare(0, 2, "BM") == 0;
  ADX_CHECK_AS(IoError, png || jpeg || bmp, "image {} is not a PNG, JPEG or BMP file", path);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX));
  int width = 0, height = 0;
  ADX_CHECK_AS(IoError, stbi_info_from_memory(data, size, &width, &height, channels_in_file) == 1,
               "cannot decode image {}: {}", path, stbi_failure_reason());
  ADX_CHECK_AS(IoError, int64_t{width} * height <= kMaxImagePixels,
               "image {} claims {} x {} pixels, more than the limit of {}", path, width, height, kMaxImagePixels);
  if (png) check_png_stream(bytes, path);
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(data, size, &width, &height, channels_in_file, wanted_channels), stbi_image_free);
  ADX_CHECK_AS(IoError, pixels != nullptr, "cannot decode image {}: {}", path, stbi_failure_reason());
  auto t = torch::from_blob(pixels.get(), {height, width, wanted_channels}, torch::kUInt8).clone();
  return t.permute({2, 0, 1}).to(torch::kFloat32).div_(255.0).contiguous();
}

at::Tensor decode(const std::string& path, int wanted_channels, int* channels_in_file) {
  if (!fs::exists(path)) throw IoError(fmt::format("image {} does not exist", path));
  return decode_bytes(read_regular_file(path, "image"), path, wanted_channels, channels_in_file);
}

}  // namespace

at::Tensor decode_image(const std::string& bytes, const std::string& what, int channels) {
  ADX_CHECK_AS(ValueError, channels == 1 || channels == 3, "images decode to 1 or 3 channels, not {}", channels);
  int in_file = 0;
  return decode_bytes(bytes, what, channels, &in_file);
}

std::string encode_png(const at::Tensor& image) {
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
               "encode_png takes a 1 x H x W or 3 x H x W tensor, got {}", std::string(c10::str(image.sizes())));
  const auto bytes = image.detach().to(torch::kCPU, torch::kFloat32).clamp(0, 1).mul(255.0).round()
                         .to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  std::string out;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int height = static_cast<int>(image.size(1)), width = static_cast<int>(image.size(2)),
            channels = static_cast<int>(image.size(0));
  ADX_CHECK_AS(IoError, stbi_write_png_to_func(append, &out, width, height, channels, bytes.data_ptr<uint8_t>(),
                                               width * channels) != 0,
               "cannot encode a {} x {} PNG", height, width);
  return out;
}

at::Tensor read_image(const std::string& path, int channels) {
  ADX_CHECK_AS(ValueError, channels == 1 || channels == 3, "images read as 1 or 3 channels, not {}", channels);
  int in_file = 0;
  return decode(path, channels, &in_file);
}

std::vector<std::string> list_image_files(const std::string& folder, bool recursive) {
  std::vector<std::string> files;
  if (!recursive) {
    for (const auto& f : image_files(folder)) files.push_back(f.string());
    return files;
  }
  if (!fs::is_directory(folder)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

at::Tensor read_mask(const std::string& path) {
  int channels = 0;
  return (decode(path, 1, &channels) > 0).to(torch::kFloat32);
}

void write_png(const std::string& path, const at::Tensor& image) {
  write_file_atomically(path, {encode_png(image)}, "PNG file");
}

void write_heatmap_overlay(const std::string& path, const at::Tensor& image, const at::Tensor& anomaly_map,
                           double low, double high) {
  const auto map = anomaly_map.detach().to(torch::kCPU, torch::kFloat32).reshape({-1, anomaly_map.size(-1)});
  ADX_CHECK_AS(ShapeError, image.dim() == 3 && image.size(0) == 3 && map.size(0) == image.size(1) &&
                               map.size(1) == image.size(2),
               "heatmap overlay needs a 3 x H x W image and an H x W map, got {} and {}",
               std::string(c10::str(image.sizes())), std::string(c10::str(anomaly_map.sizes())));
  const auto v = ((map - low) / std::max(1e-12, high - low)).clamp(0, 1) * 4.0;
  // Jet: blue (low) -> cyan -> yellow -> red (high).
  const auto jet = torch::stack({(1.5 - (v - 3).abs()).clamp(0, 1), (1.5 - (v - 2).abs()).clamp(0, 1),
                                 (1.5 - (v - 1).abs()).clamp(0, 1)});
  write_png(path, 0.5 * image.detach().to(torch::kCPU, torch::kFloat32) + 0.5 * jet);
}

at::Tensor fit_image_size(const at::Tensor& images, const ImageSize& size, bool is_mask) {
  ADX_CHECK_AS(OptionError, size.resize > 0 && size.crop >= 0 && size.crop <= size.resize,
               "image size needs resize > 0 and 0 <= crop <= resize, got resize {} and crop {}", size.resize,
               size.crop);
  ADX_CHECK_AS(ShapeError, images.dim() == 4 && images.numel() > 0,
               "fit_image_size takes images as N x C x H x W, got shape {}", shape_string(images.sizes().vec()));
  at::Tensor out = images;
  if (images.size(2) != size.resize || images.size(3) != size.resize) {
    namespace F = torch::nn::functional;
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{size.resize, size.resize});
    out = is_mask ? F::interpolate(images, options.mode(torch::kNearest))
                  : F::interpolate(images, options.mode(torch::kBilinear).align_corners(false)).clamp(0, 1);
  }
  if (size.crop > 0 && size.crop < size.resize) {
    const int64_t start = (size.resize - size.crop) / 2;
    out = out.slice(2, start, start + size.crop).slice(3, start, start + size.crop);
  }
  return out.contiguous();
}

ImageFolder load_image_folder(const std::string& folder, int64_t size, int channels) {
  ADX_CHECK_AS(IoError, fs::is_directory(folder), "image folder {} does not exist", folder);
  ADX_CHECK_AS(ValueError, channels == 1 || channels == 3, "images load as 1 or 3 channels, not {}", channels);
  ImageFolder out;
  std::vector<at::Tensor> images;
  for (const auto& f : image_files(folder)) {
    int in_file = 0;
    auto image = decode(f.string(), channels, &in_file).unsqueeze(0);
    if (size > 0) image = fit_image_size(image, ImageSize{size, 0});
    ADX_CHECK_AS(ShapeError, images.empty() || image.sizes() == images.front().sizes(),
                 "image {} is {} x {} but {} is {} x {}; give a size to resize them all", f.string(), image.size(2),
                 image.size(3), out.paths.front(), images.front().size(2), images.front().size(3));
    images.push_back(image);
    out.paths.push_back(f.string());
  }
  ADX_CHECK_AS(IoError, !images.empty(), "{} holds no images (png, jpg or bmp)", folder);
  out.images = torch::cat(images);
  return out;
}

MvtecCategory load_mvtec_category(const std::string& root, const ImageSize& size) {
  MvtecCategory c;
  c.root = root;
  ADX_CHECK_AS(IoError, fs::is_directory(root), "dataset folder {} does not exist", root);
  const auto train_files = image_files(fs::path(root) / "train" / "good");
  ADX_CHECK_AS(IoError, !train_files.empty(), "{} holds no training images (png, jpg or bmp)",
               (fs::path(root) / "train" / "good").string());
  std::vector<at::Tensor> train;
  for (const auto& f : train_files) train.push_back(fit_image_size(read_image(f.string()).unsqueeze(0), size));
  c.train = torch::cat(train);

  std::vector<at::Tensor> test, masks;
  std::vector<fs::path> defect_dirs;
  if (fs::is_directory(fs::path(root) / "test"))
    for (const auto& entry : fs::directory_iterator(fs::path(root) / "test"))
      if (entry.is_directory()) defect_dirs.push_back(entry.path());
  std::sort(defect_dirs.begin(), defect_dirs.end());
  for (const auto& dir : defect_dirs) {
    const std::string defect = dir.filename().string();
    for (const auto& f : image_files(dir)) {
      const auto image = read_image(f.string());
      at::Tensor mask = torch::zeros({1, image.size(1), image.size(2)});
      if (defect != "good") {
        const auto mask_path = fs::path(root) / "ground_truth" / defect / (f.stem().string() + "_mask.png");
        if (fs::exists(mask_path)) {
          mask = read_mask(mask_path.string());
          ADX_CHECK_AS(IoError, mask.size(1) == image.size(1) && mask.size(2) == image.size(2),
                       "mask {} is {}x{} but its image {} is {}x{}", mask_path.string(), mask.size(2), mask.size(1),
                       f.string(), image.size(2), image.size(1));
        }
      }
      test.push_back(fit_image_size(image.unsqueeze(0), size));
      masks.push_back(fit_image_size(mask.unsqueeze(0), size, /*is_mask=*/true));
      c.test_labels.push_back(defect == "good" ? 0 : 1);
      c.test_paths.push_back(f.string());
      c.test_defects.push_back(defect);
    }
  }
  if (!test.empty()) {
    c.test = torch::cat(test);
    c.test_masks = torch::cat(masks);
  }
  return c;
}

// ---------------------------------------------------------------- synthetic data set
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
