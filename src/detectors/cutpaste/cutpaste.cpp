#include <adx/detectors/components/bases/feature_memory.hpp>
#include <adx/detectors/components/bases/self_supervised.hpp>
#include <adx/detectors/cutpaste/cutpaste.hpp>
#include <adx/nn/resnet.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {
// Named, not anonymous: the nested Networks struct of the public class holds these modules.
namespace cutpaste_network {

// A ResNet-18 (ImageNet-normalised input, grey repeated to RGB), its pooled layer-4 features, a projection
// head of Linear-BN-ReLU layers and a linear classifier, as CutPaste's reference model.
class ClassifierImpl : public torch::nn::Module {
 public:
  ClassifierImpl(const std::vector<int64_t>& head, int64_t classes, const std::string& weights) {
    using namespace torch::nn;
    encoder_ = register_module("encoder", weights.empty() ? nn::ResNet(nn::ResNetArch::ResNet18)
                                                          : nn::load_resnet(nn::ResNetArch::ResNet18, weights));
    int64_t in = 512;
    Sequential layers;
    for (const int64_t width : head) {
      layers->push_back(Linear(in, width));
      layers->push_back(BatchNorm1d(width));
      layers->push_back(ReLU(ReLUOptions(true)));
      in = width;
    }
    head_ = register_module("head", layers);
    out_ = register_module("out", Linear(in, classes));
    mean_ = register_buffer("mean", torch::tensor({0.485f, 0.456f, 0.406f}).reshape({1, 3, 1, 1}));
    std_ = register_buffer("std", torch::tensor({0.229f, 0.224f, 0.225f}).reshape({1, 3, 1, 1}));
  }
  /// The 512 pooled layer-4 features the density is fitted on.
  torch::Tensor embed(const torch::Tensor& images) {
    const auto rgb = images.size(1) == 1 ? images.expand({-1, 3, -1, -1}) : images;
    const auto features = encoder_->features((rgb - mean_) / std_, {"layer4"}).at("layer4");
    return torch::adaptive_avg_pool2d(features, {1, 1}).flatten(1);
  }
  torch::Tensor forward(const torch::Tensor& images) { return out_->forward(head_->forward(embed(images))); }

 private:
  nn::ResNet encoder_{nullptr};
  torch::nn::Sequential head_{nullptr};
  torch::nn::Linear out_{nullptr};
  torch::Tensor mean_, std_;
};
TORCH_MODULE(Classifier);

// Features of many images in chunks, L2-normalised (the reference fits its density on normalised features).
torch::Tensor normalised_embeddings(Classifier& classifier, const torch::Tensor& images, int64_t chunk) {
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < images.size(0); begin += chunk)
    parts.push_back(torch::nn::functional::normalize(
        classifier->embed(images.slice(0, begin, std::min(images.size(0), begin + chunk))),
        torch::nn::functional::NormalizeFuncOptions().dim(1)));
  return torch::cat(parts);
}

}  // namespace cutpaste_network

struct Cutpaste::Networks : torch::nn::Module {
  Networks(const CutpasteOptions& o, int64_t classes) {
    image = register_module("image", cutpaste_network::Classifier(o.head(), classes, o.weights()));
    if (o.localization())
      patch = register_module("patch", cutpaste_network::Classifier(o.head(), classes, o.weights()));
  }
  cutpaste_network::Classifier image{nullptr}, patch{nullptr};
};

void CutpasteOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.that(image_size() == 0 || image_size() >= 64, "image_size", "must be 0 or >= 64, got {}", image_size());
  c.each_at_least("head", head(), 1, 0).at_least("patch_size", patch_size(), 0).at_least("patch_stride", patch_stride(), 0);
}

Cutpaste::Cutpaste(Options options) : DetectorWithOptions(std::move(options)) {}

Cutpaste::~Cutpaste() = default;

torch::nn::Module* Cutpaste::model() { return networks_.get(); }

int64_t Cutpaste::patch_size() const {
  return options_.patch_size() > 0 ? options_.patch_size() : std::min(working_height_, working_width_) / 4;
}

int64_t Cutpaste::patch_stride() const {
  return options_.patch_stride() > 0 ? options_.patch_stride() : std::max<int64_t>(1, patch_size() / 4);
}

void Cutpaste::build(const std::vector<int64_t>& item_shape, const InputKind&) {
  ADX_CHECK_AS(ShapeError, item_shape[0] == 1 || item_shape[0] == 3, "cutpaste takes grey or RGB images, got {} channels",
               item_shape[0]);
  std::tie(working_height_, working_width_) = working_size(options_.image_size(), item_shape, 1, type());
  ADX_CHECK_AS(ShapeError, std::min(working_height_, working_width_) >= 64,
               "cutpaste needs images of at least 64 x 64 (or image_size), got {} x {}", working_height_, working_width_);
  ADX_CHECK_AS(OptionError,
               !options_.localization() || (patch_size() >= 16 && patch_size() <= std::min(working_height_, working_width_)),
               "patch_size must be between 16 and the working side {}, got {}", std::min(working_height_, working_width_),
               patch_size());
  networks_ = std::make_shared<Networks>(options_, classes());
  networks_->to(device());
}

torch::Tensor Cutpaste::to_working_size(const torch::Tensor& images) const {
  return resize_bilinear(images, working_height_, working_width_);
}

std::pair<torch::Tensor, torch::Tensor> Cutpaste::augmented_batch(const torch::Tensor& images,
                                                                  at::Generator generator) const {
  ADX_CHECK_AS(ShapeError, images.dim() == 4, "cutpaste augments N x C x H x W images, got {}",
               shape_string(images.sizes().vec()));
  // Synthesis runs on the CPU, as a data loader would, and the batch moves to the device once.
  const auto cpu = images.detach().to(torch::kCPU, torch::kFloat32);
  std::vector<torch::Tensor> inputs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    const auto image = color_jitter(cpu[i], generator);  // the reference jitters every training image first
    inputs.push_back(image), labels.push_back(0);
    if (options_.variant() != CutpasteVariant::Scar) inputs.push_back(cutpaste(image, generator)), labels.push_back(1);
    if (options_.variant() != CutpasteVariant::Patch)
      inputs.push_back(cutpaste_scar(image, generator)), labels.push_back(classes() - 1);
  }
  return {stack_like(inputs, images), torch::tensor(labels, torch::kLong).to(images.device())};
}

torch::Tensor Cutpaste::patches(const torch::Tensor& working_images) const {
  const int64_t p = patch_size(), stride = patch_stride(), c = working_images.size(1);
  // N x C x gh x gw x p x p, then one patch per row.
  return working_images.unfold(2, p, stride).unfold(3, p, stride).permute({0, 2, 3, 1, 4, 5}).reshape({-1, c, p, p});
}

void Cutpaste::fit_model(const Data& train, const Data& validation) {
  check_unit_range(train.x, type());
  const auto validation_seed = static_cast<uint64_t>(runtime().seed()) + 1;
  train_module(
      *networks_, train, validation, options_.train(),
      [&](const Batch& batch, bool training) {
        auto generator = training ? at::detail::getDefaultCPUGenerator() : validation_generator_;
        const auto images = to_working_size(batch.x);
        auto [inputs, labels] = augmented_batch(images, generator);
        auto loss = torch::cross_entropy_loss(networks_->image->forward(inputs), labels);
        if (options_.localization()) {
          // One random patch of each image, augmented inside the patch.
          const int64_t p = patch_size();
          std::vector<torch::Tensor> crops;
          for (int64_t i = 0; i < images.size(0); ++i) {
            const int64_t top = static_cast<int64_t>(draw_uniform(generator, 0, static_cast<double>(working_height_ - p + 1)));
            const int64_t left = static_cast<int64_t>(draw_uniform(generator, 0, static_cast<double>(working_width_ - p + 1)));
            crops.push_back(images[i].slice(1, top, top + p).slice(2, left, left + p));
          }
          auto [patch_inputs, patch_labels] = augmented_batch(torch::stack(crops), generator);
          loss = loss + torch::cross_entropy_loss(networks_->patch->forward(patch_inputs), patch_labels);
        }
        return loss;
      },
      progress(), type(), [&](int64_t) { validation_generator_ = at::detail::createCPUGenerator(validation_seed); });

  // The densities of the normal images' features, image-level and (for the map) patch-level.
  torch::NoGradGuard no_grad;
  networks_->eval();
  const int64_t chunk = std::max<int64_t>(1, runtime().score_batch_size() / 16);
  const auto images = to_working_size(train.x);
  image_density_ = fit_gaussian_density(cutpaste_network::normalised_embeddings(networks_->image, images, chunk));
  if (options_.localization()) {
    std::vector<torch::Tensor> features;
    for (int64_t begin = 0; begin < images.size(0); begin += chunk)
      features.push_back(cutpaste_network::normalised_embeddings(
          networks_->patch, patches(images.slice(0, begin, std::min(images.size(0), begin + chunk))), 4 * chunk));
    patch_density_ = fit_gaussian_density(torch::cat(features));
  }
}

Scores Cutpaste::score_model(const Batch& batch) {
  networks_->eval();
  const auto images = to_working_size(batch.x);
  const int64_t chunk = std::max<int64_t>(1, runtime().score_batch_size() / 16);
  Scores s;
  s.per_item = mahalanobis_distances(image_density_,
                                     cutpaste_network::normalised_embeddings(networks_->image, images, chunk));
  if (options_.localization()) {
    const int64_t p = patch_size(), stride = patch_stride();
    const int64_t grid_h = (working_height_ - p) / stride + 1, grid_w = (working_width_ - p) / stride + 1;
    // A chunk of images at a time: every image has grid_h x grid_w patches.
    std::vector<torch::Tensor> parts;
    for (int64_t begin = 0; begin < images.size(0); begin += chunk) {
      const auto part = patches(images.slice(0, begin, std::min(images.size(0), begin + chunk)));
      parts.push_back(mahalanobis_distances(patch_density_, cutpaste_network::normalised_embeddings(networks_->patch, part, 4 * chunk)));
    }
    const auto distances = torch::cat(parts);
    // Each patch's distance at its centre, spread over the image: the grid resized to the area the centres
    // span, padded by half a patch with the nearest value, and blurred over the patch (sigma = p / 4).
    const auto grid = distances.reshape({images.size(0), 1, grid_h, grid_w});
    namespace F = torch::nn::functional;
    const int64_t inner_h = working_height_ - p + 1, inner_w = working_width_ - p + 1;
    const auto inner = resize_bilinear(grid, inner_h, inner_w);
    const auto full = F::pad(inner, F::PadFuncOptions({p / 2, working_width_ - inner_w - p / 2, p / 2,
                                                 working_height_ - inner_h - p / 2})
                                  .mode(torch::kReplicate));
    // The blur's sigma is p / 4 working pixels; the map is blurred after resizing to the input, so it is
    // measured in the input's pixels there.
    const double input_pixels_per_working =
        0.5 * (static_cast<double>(batch.x.size(2)) / static_cast<double>(working_height_) +
               static_cast<double>(batch.x.size(3)) / static_cast<double>(working_width_));
    s.pixel_map = upsample_and_blur(full, batch.x.size(2), batch.x.size(3),
                                    static_cast<double>(p) / 4.0 * input_pixels_per_working);
  }
  return s;
}

void Cutpaste::save_extra(TensorMap& state) const {
  state["cutpaste.image_mean"] = image_density_.mean;
  state["cutpaste.image_precision"] = image_density_.precision;
  if (options_.localization()) {
    state["cutpaste.patch_mean"] = patch_density_.mean;
    state["cutpaste.patch_precision"] = patch_density_.precision;
  }
}

void Cutpaste::load_extra(const TensorMap& state) {
  auto density = [&](const std::string& name) {
    const auto mean = state.find("cutpaste." + name + "_mean"), precision = state.find("cutpaste." + name + "_precision");
    ADX_CHECK_AS(IoError, mean != state.end() && precision != state.end() && mean->second.dim() == 1 &&
                              precision->second.dim() == 2 && precision->second.size(0) == mean->second.size(0) &&
                              precision->second.size(1) == mean->second.size(0),
                 "model file lacks cutpaste's {}-level density (a mean and a square precision)", name);
    GaussianDensity d;
    d.mean = mean->second.to(torch::kFloat64);
    d.precision = precision->second.to(torch::kFloat64);
    return d;
  };
  image_density_ = density("image");
  if (options_.localization()) patch_density_ = density("patch");
}

ADX_BUILTIN_DETECTOR(cutpaste, factory_for<Cutpaste>(),
                     "CutPaste: classifier of cut-paste and scar augmentations, Gaussian density of its features; patch-level map")

}  // namespace adx
