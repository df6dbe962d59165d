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
Nsa::Nsa(Options options) : SyntheticAnomalyDetector(std::move(options), 32) {
  const auto& o = options_;
  natural_.max_patches = o.max_patches();
  natural_.min_half_width = o.min_half_width();
  natural_.max_half_width = o.max_half_width();
  natural_.min_scale = o.min_scale();
  natural_.max_scale = o.max_scale();
  natural_.mixed_gradients = o.mixed_gradients();
  natural_.label_k = o.label_k();
  natural_.label_x0 = o.label_x0();
  ADX_CHECK_AS(OptionError, o.max_patches() >= 1, "max_patches must be >= 1, got {}", o.max_patches());
  ADX_CHECK_AS(OptionError, 0 < o.min_half_width() && o.min_half_width() <= o.max_half_width() && o.max_half_width() < 0.5,
               "half-widths need 0 < min_half_width <= max_half_width < 0.5, got {} and {}", o.min_half_width(),
               o.max_half_width());
  ADX_CHECK_AS(OptionError, 0 < o.min_scale() && o.min_scale() <= o.max_scale(),
               "scales need 0 < min_scale <= max_scale, got {} and {}", o.min_scale(), o.max_scale());
  ADX_CHECK_AS(OptionError, o.label_k() > 0, "label_k must be > 0, got {}", o.label_k());
}

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
    auto anomaly = natural_anomaly(cpu[i], drawn, generator, natural_);
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
