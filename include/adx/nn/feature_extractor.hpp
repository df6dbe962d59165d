#pragma once
// A frozen network that turns images into named feature maps: the common face
// of the CNN (ResNet) and Vision Transformer backbones, so that the memory-bank
// and Gaussian scorers take either. Backbones are named as torchvision names
// them and load torchvision's state dicts.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace adx::nn {

class FeatureExtractor : public torch::nn::Module {
 public:
  /// Named feature maps (N x C x h x w) of N x 3 x H x W images, already normalised; the network runs
  /// only as deep as the deepest layer asked for. An unknown layer is an OptionError listing the layers.
  virtual std::map<std::string, torch::Tensor> features(const torch::Tensor& x, const std::vector<std::string>& layers) = 0;
  /// Channels of a named layer's output.
  virtual int64_t channels(const std::string& layer) const = 0;
  /// Stride of a named layer's output relative to the input.
  virtual int64_t stride(const std::string& layer) const = 0;
  /// torchvision's name of the architecture ("resnet18", "vit_b_16").
  virtual std::string arch_name() const = 0;
};

/// Every backbone name make_backbone accepts.
std::vector<std::string> backbone_names();
/// An OptionError listing backbone_names() unless `name` is one of them.
void check_backbone_name(const std::string& name);
/// A randomly initialised backbone; an unknown name is an OptionError listing backbone_names().
std::shared_ptr<FeatureExtractor> make_backbone(const std::string& name);
/// The backbone with weights from `path` (a torch.save'd state dict or a TorchScript export of the
/// torchvision model); the classifier head may be absent. Mismatches are IoErrors naming the entry.
std::shared_ptr<FeatureExtractor> load_backbone(const std::string& name, const std::string& path);
/// Whether `name` is a Vision Transformer (its layers are block1 .. blockL, all at the patch stride).
bool is_vision_transformer(const std::string& name);
/// The layers a ViT backbone uses when left at a detector's ResNet default: the blocks at half and
/// three quarters of its depth ("block6,block9" for 12 blocks), mid-level tokens that still carry local detail.
std::string default_vit_layers(const std::string& name);

}  // namespace adx::nn
