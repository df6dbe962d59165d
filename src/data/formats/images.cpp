#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/data/formats/images.hpp>
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

}  // namespace adx
