#pragma once
// Image files and folder datasets in MVTec AD layout:
//   <category>/train/good/*.png|jpg
//   <category>/test/<good|defect type>/*.png|jpg
//   <category>/ground_truth/<defect type>/<name>_mask.png
// PNG/JPEG/BMP are read with stb_image; PNGs are written with stb_image_write.
#include <ATen/Tensor.h>

#include <string>
#include <vector>

namespace adx {

/// Reads an image file as a `channels` x H x W float tensor in [0, 1] (channels 3: grey is repeated to
/// three channels; channels 1: colour is converted to grey). A missing or unreadable file is an IoError naming it.
at::Tensor read_image(const std::string& path, int channels = 3);

/// The image files (png, jpg, jpeg, bmp) in `folder`, and with `recursive` in its subfolders, sorted.
std::vector<std::string> list_image_files(const std::string& folder, bool recursive = false);

/// Reads a mask file as a 1 x H x W float tensor of 0 / 1 (any nonzero pixel is a defect).
at::Tensor read_mask(const std::string& path);

/// Decodes PNG, JPEG or BMP bytes (an HTTP body, say) as a `channels` x H x W float tensor in [0, 1]
/// (channels 1 = grey, 3 = RGB); `what` names the source in errors.
at::Tensor decode_image(const std::string& bytes, const std::string& what, int channels = 3);
/// A 1 x H x W or 3 x H x W tensor in [0, 1] as PNG bytes.
std::string encode_png(const at::Tensor& image);
/// Writes a C x H x W tensor in [0, 1] (C = 1 or 3) as a PNG, through a temp file and a rename.
void write_png(const std::string& path, const at::Tensor& image);

/// Writes `image` (3 x H x W in [0, 1]) blended half and half with `anomaly_map` (H x W, or 1 x H x W)
/// in the jet colour map, the map scaled from [low, high] to blue .. red: where a person sees the defect.
void write_heatmap_overlay(const std::string& path, const at::Tensor& image, const at::Tensor& anomaly_map,
                           double low, double high);

/// How images are brought to the network's size, as anomalib does:
/// resize to `resize` x `resize`, then center-crop `crop` x `crop` (0 = no crop).
struct ImageSize {
  int64_t resize = 256;
  int64_t crop = 0;
};

/// Resizes (bilinear; nearest for masks) and center-crops N x C x H x W images.
at::Tensor fit_image_size(const at::Tensor& images, const ImageSize& size, bool is_mask = false);

/// The images directly in a folder (png, jpg, bmp), sorted by file name.
struct ImageFolder {
  at::Tensor images;               ///< N x channels x H x W in [0, 1]
  std::vector<std::string> paths;  ///< one per image
};
/// Loads a folder of images; `size` > 0 resizes each to size x size, 0 needs them all of one size.
ImageFolder load_image_folder(const std::string& folder, int64_t size = 0, int channels = 3);
/// One category of an MVTec-layout folder, resized to one size.
struct MvtecCategory {
  std::string root;
  at::Tensor train;                    ///< N x 3 x S x S in [0, 1]
  at::Tensor test;                     ///< M x 3 x S x S in [0, 1]
  at::Tensor test_masks;               ///< M x 1 x S x S, 0 / 1 (all zero for good images)
  std::vector<int> test_labels;        ///< 1 = defective
  std::vector<std::string> test_paths;
  std::vector<std::string> test_defects;  ///< "good" or the defect type (folder name)
};

/// Loads a category folder. An empty or missing train/good folder, an unreadable
/// image and a mask whose size differs from its image are IoErrors naming the file.
MvtecCategory load_mvtec_category(const std::string& root, const ImageSize& size = {});

}  // namespace adx
