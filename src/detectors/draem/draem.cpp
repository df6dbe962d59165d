#include <adx/detectors/draem/draem.hpp>
#include <adx/detectors/draem/network.hpp>
#include <adx/detectors/draem/losses.hpp>
#include <adx/nn/conv.hpp>
#include "detectors/builtin_detector.hpp"

#include <cmath>

namespace adx {

struct Draem::Networks : torch::nn::Module {
  Networks(int64_t channels, int64_t reconstruction_width, int64_t segmentation_width)
      : reconstructive(register_module("reconstructive", nn::ReconstructiveNetwork(channels, reconstruction_width))),
        discriminative(register_module("discriminative", nn::DiscriminativeNetwork(2 * channels, segmentation_width))) {}
  nn::ReconstructiveNetwork reconstructive;
  nn::DiscriminativeNetwork discriminative;
};

// The discriminative network halves the image 5 times.
// The networks halve the image 5 times.
constexpr int64_t kSizeMultiple = 32;

void DraemOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_synthetic_options(*this, c, kSizeMultiple);
  c.at_least("reconstruction_width", reconstruction_width(), 1)
      .at_least("segmentation_width", segmentation_width(), 1)
      .in("anomaly_probability", anomaly_probability(), 0.0, 1.0)
      .in("rotate_probability", rotate_probability(), 0.0, 1.0);
}

const OptionRenames& DraemOptions::renamed_options() {
  static const OptionRenames renames{{"opacity_min", "synthesis.opacity_min"},
                                     {"opacity_max", "synthesis.opacity_max"}};
  return renames;
}

Draem::Draem(Options options) : SyntheticAnomalyDetector(std::move(options), kSizeMultiple) {}

Draem::~Draem() = default;

torch::nn::Module* Draem::model() { return networks_.get(); }

void Draem::build_networks(int64_t channels) {
  networks_ = std::make_shared<Networks>(channels, options_.reconstruction_width(), options_.segmentation_width());
  networks_->to(device());
  nn::use_channels_last(*networks_);
}

Draem::Example Draem::synthesize(const torch::Tensor& images, at::Generator generator) const {
  ADX_CHECK_AS(ShapeError, images.dim() == 4, "draem synthesizes from N x C x H x W images, got {}",
               shape_string(images.sizes().vec()));
  const auto& source = anomaly_source();
  // Synthesis runs on the CPU, as a data loader would, and the batch moves to the device once.
  const auto cpu = images.detach().to(torch::kCPU, torch::kFloat32);
  auto uniform = [&](double low, double high) { return draw_uniform(generator, low, high); };
  std::vector<torch::Tensor> inputs, targets, masks;
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    auto image = cpu[i];
    if (uniform(0, 1) < options_.rotate_probability()) image = rotate_image(image, uniform(-90, 90));
    torch::Tensor input = image, mask = torch::zeros({image.size(1), image.size(2)});
    if (uniform(0, 1) < options_.anomaly_probability()) {
      const auto drawn = source.draw(image.size(0), image.size(1), image.size(2), generator);
      auto anomaly = perlin_anomaly(image, augment_anomaly_source(drawn, generator), generator, options_.synthesis());
      input = anomaly.image, mask = anomaly.mask;
    }
    inputs.push_back(input), targets.push_back(image), masks.push_back(mask.unsqueeze(0));
  }
  return {stack_like(inputs, images), stack_like(targets, images), stack_like(masks, images)};
}

torch::Tensor Draem::synthetic_loss(const torch::Tensor& working_images, at::Generator generator) {
  const auto example = synthesize(working_images, generator);
  const auto input = nn::channels_last(example.input);
  const auto reconstruction = networks_->reconstructive->forward(input);
  const auto logits = networks_->discriminative->forward(torch::cat({reconstruction, input}, 1));
  return torch::mse_loss(reconstruction, example.target) + (1 - nn::ssim(reconstruction, example.target)) +
         nn::focal_loss(torch::softmax(logits, 1), example.mask);
}

torch::Tensor Draem::anomaly_map(const torch::Tensor& working_images) {
  const auto input = nn::channels_last(working_images);
  const auto reconstruction = networks_->reconstructive->forward(input);
  const auto logits = networks_->discriminative->forward(torch::cat({reconstruction, input}, 1));
  return torch::softmax(logits, 1).slice(1, 1, 2).contiguous();
}

ADX_BUILTIN_DETECTOR(draem, factory_for<Draem>(),
                     "DRAEM: reconstruction + segmentation of synthetic anomalies; map = anomaly probability")

}  // namespace adx
