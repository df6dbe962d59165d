#pragma once
// Vision Transformer (Dosovitskiy et al., ICLR 2021) with torchvision's module
// names and shapes (conv_proj, class_token, encoder.pos_embedding,
// encoder.layers.encoder_layer_<i>.{ln_1, self_attention, ln_2, mlp},
// encoder.ln, heads.head), so that torchvision's vit_b_16, vit_b_32, vit_l_16
// and vit_l_32 state dicts load name for name. As a feature extractor it
// returns the patch tokens of blocks as maps on the patch grid.
#include <adx/nn/feature_extractor.hpp>

#include <torch/torch.h>

namespace adx::nn {

/// A torchvision ViT's sizes.
struct ViTConfig {
  std::string name;
  int64_t patch_size = 16;
  int64_t layers = 12;
  int64_t heads = 12;
  int64_t hidden = 768;
  int64_t mlp = 3072;
  /// The image side its position embeddings were trained for (other sizes interpolate them).
  int64_t image_size = 224;
  int64_t num_classes = 1000;
};

/// vit_b_16, vit_b_32, vit_l_16 or vit_l_32; anything else is an OptionError listing them.
ViTConfig vit_config(const std::string& name);
bool is_vit_name(const std::string& name);

class VisionTransformerImpl : public FeatureExtractor {
 public:
  explicit VisionTransformerImpl(ViTConfig config);

  /// The classifier output (class token after the final LayerNorm), as torchvision's forward.
  torch::Tensor forward(const torch::Tensor& x);
  /// "block1" .. "blockL": the patch tokens after that encoder block (before the final LayerNorm), as
  /// N x hidden x H/patch x W/patch maps. Image sides must be multiples of the patch size; at sides
  /// other than image_size the position embeddings are resized bicubically, as torchvision's
  /// interpolate_embeddings does.
  std::map<std::string, torch::Tensor> features(const torch::Tensor& x, const std::vector<std::string>& layers) override;
  int64_t channels(const std::string& layer) const override;
  int64_t stride(const std::string& layer) const override;
  std::string arch_name() const override { return config_.name; }
  const ViTConfig& config() const { return config_; }

  /// The position embeddings (1 x (1 + h w) x hidden) for an h x w patch grid.
  torch::Tensor position_embedding(int64_t grid_height, int64_t grid_width) const;

 private:
  /// Tokens (class token first) after blocks 1 .. `blocks`; `record(i, tokens)` sees each block's output.
  torch::Tensor run(const torch::Tensor& x, int64_t blocks, const std::function<void(int64_t, const torch::Tensor&)>& record);
  int64_t block_index(const std::string& layer) const;

  ViTConfig config_;
  torch::nn::Conv2d conv_proj{nullptr};
  torch::Tensor class_token;
  torch::Tensor pos_embedding;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks_;
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(VisionTransformer);

/// A ViT with weights from `path` (see load_backbone).
VisionTransformer load_vit(const std::string& name, const std::string& path);

}  // namespace adx::nn
