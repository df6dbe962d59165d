#include <fmt/ranges.h>
#include <adx/core/error.hpp>
#include <adx/nn/feature_extractor.hpp>
#include <adx/nn/resnet.hpp>
#include <adx/nn/vit.hpp>

namespace adx::nn {

std::vector<std::string> backbone_names() {
  return {"resnet18", "wide_resnet50_2", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32"};
}

bool is_vision_transformer(const std::string& name) { return is_vit_name(name); }

void check_backbone_name(const std::string& name) {
  const auto names = backbone_names();
  ADX_CHECK_AS(OptionError, std::find(names.begin(), names.end(), name) != names.end(),
               "unknown backbone '{}'; choose one of {}", name, fmt::join(names, ", "));
}

std::string default_vit_layers(const std::string& name) {
  const int64_t depth = vit_config(name).layers;
  return "block" + std::to_string(depth / 2) + ",block" + std::to_string(depth * 3 / 4);
}

std::shared_ptr<FeatureExtractor> make_backbone(const std::string& name) {
  check_backbone_name(name);
  if (is_vit_name(name)) return VisionTransformer(vit_config(name)).ptr();
  return ResNet(resnet_arch_from_name(name)).ptr();
}

std::shared_ptr<FeatureExtractor> load_backbone(const std::string& name, const std::string& path) {
  check_backbone_name(name);
  if (is_vit_name(name)) return load_vit(name, path).ptr();
  return load_resnet(resnet_arch_from_name(name), path).ptr();
}

}  // namespace adx::nn
