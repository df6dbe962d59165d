#include <adx/detectors/nsa/nsa.hpp>
#include <adx/detectors/nsa/network.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

struct Nsa::Network : torch::nn::Module {
  Network() : segmenter(register_module("segmenter", nn::ResNetSegmenter())) {}
  nn::ResNetSegmenter segmenter;
  /// Logits of images with 1 or 3 channels (grey repeated for the RGB encoder).
  torch::Tensor forward(const torch::Tensor& x) {
    return segmenter->forward(x.size(1) == 1 ? x.expand({x.size(0), 3, x.size(2), x.size(3)}) : x);
  }
};

// The encoder halves the image 5 times.
constexpr int64_t kSizeMultiple = 32;

void NsaOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  check_synthetic_options(*this, c, kSizeMultiple);
}

const OptionRenames& NsaOptions::renamed_options() {
  static const OptionRenames renames{
      {"max_patches", "synthesis.max_patches"},   {"min_half_width", "synthesis.min_half_width"},
      {"max_half_width", "synthesis.max_half_width"}, {"min_scale", "synthesis.min_scale"},
      {"max_scale", "synthesis.max_scale"},       {"mixed_gradients", "synthesis.mixed_gradients"},
      {"label_k", "synthesis.label_k"},           {"label_x0", "synthesis.label_x0"}};
  return renames;
}

Nsa::Nsa(Options options) : SyntheticAnomalyDetector(std::move(options), kSizeMultiple) {}

Nsa::~Nsa() = default;

torch::nn::Module* Nsa::model() { return network_.get(); }

void Nsa::build_networks(int64_t) {
  network_ = std::make_shared<Network>();
  network_->to(device());
}

Nsa::Example Nsa::synthesize(const torch::Tensor& images, at::Generator generator) const {
  ADX_CHECK_AS(ShapeError, images.dim() == 4, "nsa synthesizes from N x C x H x W images, got {}",
               shape_string(images.sizes().vec()));
  const auto& source = anomaly_source();
  // Synthesis runs on the CPU, as a data loader would, and the batch moves to the device once.
  const auto cpu = images.detach().to(torch::kCPU, torch::kFloat32);
  std::vector<torch::Tensor> inputs, labels;
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    const auto drawn = source.draw(cpu.size(1), cpu.size(2), cpu.size(3), generator);
    auto anomaly = natural_anomaly(cpu[i], drawn, generator, options_.synthesis());
    inputs.push_back(anomaly.image), labels.push_back(anomaly.mask.unsqueeze(0));
  }
  return {stack_like(inputs, images), stack_like(labels, images)};
}

torch::Tensor Nsa::synthetic_loss(const torch::Tensor& working_images, at::Generator generator) {
  const auto example = synthesize(working_images, generator);
  return torch::binary_cross_entropy_with_logits(network_->forward(example.input), example.label);
}

torch::Tensor Nsa::anomaly_map(const torch::Tensor& working_images) {
  return torch::sigmoid(network_->forward(working_images));
}

torch::Tensor Nsa::image_scores(const torch::Tensor& maps) const {
  if (options_.image_score() == NsaImageScore::Mean) return maps.flatten(1).mean(1);
  return SyntheticAnomalyDetector::image_scores(maps);
}

ADX_BUILTIN_DETECTOR(nsa, factory_for<Nsa>(),
                     "NSA: segments Poisson-blended patches of other normal images; map = anomaly probability")

}  // namespace adx
