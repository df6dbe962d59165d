// Image input: N x C x H x W with optional N x 1 x H x W masks; an item is an image.
#include "reading.hpp"

#include <adx/core/error.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/data/input_kind.hpp>

#include <filesystem>

#include <torch/types.h>

namespace adx {
namespace {

class ImageKind final : public RowKind {
 public:
  std::string name() const override { return kinds::kImage; }
  void validate(const Data& data, const char* what) const override {
    validate_values(data, what, 4, "N x C x H x W");
    const auto& x = data.x;
    if (data.masks.defined())
      ADX_CHECK_AS(ShapeError,
                   data.masks.dim() == 4 && data.masks.size(0) == x.size(0) && data.masks.size(2) == x.size(2) &&
                       data.masks.size(3) == x.size(3),
                   "{}: masks of shape {} do not match images of shape {}", what,
                   shape_string(data.masks.sizes().vec()), shape_string(x.sizes().vec()));
    if (data.labels.defined())
      ADX_CHECK_AS(ShapeError, data.labels.numel() == x.size(0), "{}: {} labels for {} images", what,
                   data.labels.numel(), x.size(0));
    check_finite(x, what, "item");
  }
  Preprocess default_preprocess() const override { return Preprocess::MinMax; }
  InputKindTraits traits() const override {
    InputKindTraits t = RowKind::traits();
    t.image_rows = true;
    return t;
  }
  /// A folder of images (resized and converted as the options say), or an NPY / IDX image stack.
  Data read(const std::string& path, const ReadOptions& options, std::vector<std::string>* columns) const override {
    if (std::filesystem::is_directory(path))
      return items_from(load_image_folder(path, options.image_size, options.channels).images);
    return items_from(kind_reading::image_values(kind_reading::read_array(path, false, columns), path));
  }
};

}  // namespace

std::shared_ptr<const InputKind> make_image_kind() { return std::make_shared<ImageKind>(); }

Data Data::images(at::Tensor x, at::Tensor masks) {
  Data d = adx::input_kind(kinds::kImage).items_from(std::move(x));
  d.masks = std::move(masks);
  return d;
}

}  // namespace adx
