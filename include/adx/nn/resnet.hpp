#pragma once
// ResNet-18 and Wide-ResNet-50-2 with torchvision's module names and shapes
// (conv1, bn1, layer1.0.conv1, ..., fc), so that a torchvision state dict
// loads name for name. Used as frozen feature extractors by the industrial
// image detectors; they return named intermediate layers.
#include <adx/nn/feature_extractor.hpp>

#include <torch/torch.h>
#include <map>
#include <string>
#include <vector>

namespace adx::nn {

enum class ResNetArch { ResNet18, WideResNet50_2 };

/// "resnet18" or "wide_resnet50_2" (torchvision's names); anything else is an OptionError listing both.
ResNetArch resnet_arch_from_name(const std::string& name);
std::string resnet_arch_name(ResNetArch arch);

class ResNetImpl : public FeatureExtractor {
 public:
  explicit ResNetImpl(ResNetArch arch, int64_t num_classes = 1000);

  /// The classifier output, as torchvision's forward.
  torch::Tensor forward(const torch::Tensor& x);

  /// Outputs of the named stages ("conv1" = after the stem's max pool, "layer1" .. "layer4");
  /// the network runs only as deep as the deepest one asked for.
  std::map<std::string, torch::Tensor> features(const torch::Tensor& x, const std::vector<std::string>& layers) override;

  /// Channels of a named stage's output.
  int64_t channels(const std::string& layer) const override;
  /// Stride of a named stage's output relative to the input.
  int64_t stride(const std::string& layer) const override;
  std::string arch_name() const override { return resnet_arch_name(arch_); }

  ResNetArch arch() const { return arch_; }

 private:
  ResNetArch arch_;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  torch::nn::Linear fc{nullptr};
  std::map<std::string, int64_t> channels_;
};
TORCH_MODULE(ResNet);

/// ResNet with weights from `path`: a torch.save'd state dict (dict or OrderedDict) or a TorchScript
/// export of a torchvision model. The classifier head (fc.*) may be absent. Mismatches are IoErrors naming
/// the first differing parameter.
ResNet load_resnet(ResNetArch arch, const std::string& path);

}  // namespace adx::nn
