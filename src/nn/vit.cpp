#include <adx/core/error.hpp>
#include <adx/io/state_dict.hpp>
#include <adx/nn/vit.hpp>

#include <cmath>

namespace adx::nn {
namespace {

using namespace torch::nn;

// nn.MultiheadAttention's parameters (in_proj_weight, in_proj_bias, out_proj), batch first, no mask.
class SelfAttentionImpl : public Module {
 public:
  SelfAttentionImpl(int64_t hidden, int64_t heads) : heads_(heads) {
    in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * hidden, hidden}));
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * hidden}));
    out_proj = register_module("out_proj", Linear(hidden, hidden));
    torch::NoGradGuard no_grad;
    init::xavier_uniform_(in_proj_weight);
    out_proj->bias.zero_();
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t n = x.size(0), tokens = x.size(1), hidden = x.size(2), head_dim = hidden / heads_;
    const auto split = [&](const torch::Tensor& t) { return t.reshape({n, tokens, heads_, head_dim}).transpose(1, 2); };
    auto qkv = torch::nn::functional::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
    // Scaled before the product, as PyTorch's attention does.
    auto q = split(qkv[0]) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    auto attention = torch::softmax(torch::matmul(q, split(qkv[1]).transpose(-2, -1)), -1);
    auto y = torch::matmul(attention, split(qkv[2])).transpose(1, 2).reshape({n, tokens, hidden});
    return out_proj->forward(y);
  }
  torch::Tensor in_proj_weight, in_proj_bias;
  Linear out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(SelfAttention);

// torchvision's EncoderBlock: pre-norm attention and MLP, each with a residual connection.
class EncoderBlockImpl : public Module {
 public:
  EncoderBlockImpl(const ViTConfig& c) {
    ln_1 = register_module("ln_1", LayerNorm(LayerNormOptions({c.hidden}).eps(1e-6)));
    self_attention = register_module("self_attention", SelfAttention(c.hidden, c.heads));
    ln_2 = register_module("ln_2", LayerNorm(LayerNormOptions({c.hidden}).eps(1e-6)));
    // Indices 0 and 3 hold the linear layers, as torchvision's MLPBlock names them.
    mlp = register_module("mlp", Sequential(Linear(c.hidden, c.mlp), GELU(), Dropout(0.0), Linear(c.mlp, c.hidden),
                                            Dropout(0.0)));
    torch::NoGradGuard no_grad;
    for (auto& child : mlp->children()) {
      if (auto* linear = child->as<Linear>()) {
        init::xavier_uniform_(linear->weight);
        init::normal_(linear->bias, 0.0, 1e-6);
      }
    }
  }
  torch::Tensor forward(const torch::Tensor& input) {
    auto x = self_attention->forward(ln_1->forward(input)) + input;
    return x + mlp->forward(ln_2->forward(x));
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  SelfAttention self_attention{nullptr};
  Sequential mlp{nullptr};
};
TORCH_MODULE(EncoderBlock);

const std::vector<ViTConfig>& vit_configs() {
  static const std::vector<ViTConfig> configs = {
      {"vit_b_16", 16, 12, 12, 768, 3072, 224, 1000},
      {"vit_b_32", 32, 12, 12, 768, 3072, 224, 1000},
      {"vit_l_16", 16, 24, 16, 1024, 4096, 224, 1000},
      {"vit_l_32", 32, 24, 16, 1024, 4096, 224, 1000},
  };
  return configs;
}

}  // namespace

bool is_vit_name(const std::string& name) {
  for (const auto& c : vit_configs())
    if (c.name == name) return true;
  return false;
}

ViTConfig vit_config(const std::string& name) {
  for (const auto& c : vit_configs())
    if (c.name == name) return c;
  throw OptionError("unknown Vision Transformer '" + name + "'; choose vit_b_16, vit_b_32, vit_l_16 or vit_l_32");
}

VisionTransformerImpl::VisionTransformerImpl(ViTConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  ADX_CHECK_AS(OptionError, c.hidden % c.heads == 0 && c.image_size % c.patch_size == 0,
               "ViT sizes must divide: hidden {} by heads {}, image_size {} by patch_size {}", c.hidden, c.heads,
               c.image_size, c.patch_size);
  conv_proj = register_module("conv_proj", Conv2d(Conv2dOptions(3, c.hidden, c.patch_size).stride(c.patch_size)));
  class_token = register_parameter("class_token", torch::zeros({1, 1, c.hidden}));
  auto encoder = register_module("encoder", std::make_shared<Module>("Encoder"));
  const int64_t grid = c.image_size / c.patch_size;
  pos_embedding = encoder->register_parameter("pos_embedding", torch::empty({1, grid * grid + 1, c.hidden}));
  auto layers = encoder->register_module("layers", std::make_shared<Module>("Layers"));
  for (int64_t i = 0; i < c.layers; ++i)
    blocks_.push_back(layers->register_module("encoder_layer_" + std::to_string(i), EncoderBlock(c)));
  final_norm = encoder->register_module("ln", LayerNorm(LayerNormOptions({c.hidden}).eps(1e-6)));
  auto heads = register_module("heads", std::make_shared<Module>("Heads"));
  head = heads->register_module("head", Linear(c.hidden, c.num_classes));
  // torchvision's initialisation.
  torch::NoGradGuard no_grad;
  init::normal_(conv_proj->weight, 0.0, std::sqrt(1.0 / static_cast<double>(3 * c.patch_size * c.patch_size)));
  conv_proj->bias.zero_();
  init::normal_(pos_embedding, 0.0, 0.02);
  head->weight.zero_();
  head->bias.zero_();
}

torch::Tensor VisionTransformerImpl::position_embedding(int64_t grid_height, int64_t grid_width) const {
  const int64_t grid = config_.image_size / config_.patch_size;
  if (grid_height == grid && grid_width == grid) return pos_embedding;
  namespace F = torch::nn::functional;
  auto image = pos_embedding.slice(1, 1).transpose(1, 2).reshape({1, config_.hidden, grid, grid});
  image = F::interpolate(image, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{grid_height, grid_width})
                                    .mode(torch::kBicubic)
                                    .align_corners(true));
  return torch::cat({pos_embedding.slice(1, 0, 1), image.reshape({1, config_.hidden, -1}).transpose(1, 2)}, 1);
}

torch::Tensor VisionTransformerImpl::run(const torch::Tensor& x, int64_t blocks,
                                         const std::function<void(int64_t, const torch::Tensor&)>& record) {
  const int64_t p = config_.patch_size;
  ADX_CHECK_AS(ShapeError, x.dim() == 4 && x.size(1) == 3 && x.size(2) % p == 0 && x.size(3) % p == 0 && x.size(2) > 0,
               "{} takes N x 3 x H x W images with H and W multiples of {}, got {}", config_.name, p,
               std::string(c10::str(x.sizes())));
  auto patches = conv_proj->forward(x);  // N x hidden x h x w
  const int64_t n = x.size(0), h = patches.size(2), w = patches.size(3);
  auto tokens = torch::cat({class_token.expand({n, -1, -1}), patches.flatten(2).transpose(1, 2)}, 1);
  tokens = tokens + position_embedding(h, w);
  for (int64_t i = 0; i < blocks; ++i) {
    tokens = std::static_pointer_cast<EncoderBlockImpl>(blocks_[i])->forward(tokens);
    if (record) record(i, tokens);
  }
  return tokens;
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& x) {
  auto tokens = final_norm->forward(run(x, config_.layers, nullptr));
  return head->forward(tokens.select(1, 0));
}

int64_t VisionTransformerImpl::block_index(const std::string& layer) const {
  const auto fail = [&] {
    return OptionError(fmt::format("{} has no layer '{}'; choose block1 .. block{}", config_.name, layer, config_.layers));
  };
  if (layer.rfind("block", 0) != 0 || layer.size() == 5 || layer.size() > 8) throw fail();
  for (size_t i = 5; i < layer.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(layer[i]))) throw fail();
  const int64_t index = std::stoll(layer.substr(5));
  if (index < 1 || index > config_.layers) throw fail();
  return index;
}

std::map<std::string, torch::Tensor> VisionTransformerImpl::features(const torch::Tensor& x,
                                                                     const std::vector<std::string>& layers) {
  std::map<int64_t, std::string> wanted;
  for (const auto& name : layers) wanted[block_index(name) - 1] = name;
  std::map<std::string, torch::Tensor> out;
  if (wanted.empty()) return out;
  const int64_t h = x.size(2) / config_.patch_size, w = x.size(3) / config_.patch_size;
  run(x, wanted.rbegin()->first + 1, [&](int64_t i, const torch::Tensor& tokens) {
    auto it = wanted.find(i);
    if (it != wanted.end())
      out[it->second] = tokens.slice(1, 1).transpose(1, 2).reshape({tokens.size(0), config_.hidden, h, w});
  });
  return out;
}

int64_t VisionTransformerImpl::channels(const std::string& layer) const {
  block_index(layer);
  return config_.hidden;
}

int64_t VisionTransformerImpl::stride(const std::string& layer) const {
  block_index(layer);
  return config_.patch_size;
}

VisionTransformer load_vit(const std::string& name, const std::string& path) {
  VisionTransformer net(vit_config(name));
  auto state = load_state_dict(path);
  // torchvision before 0.13 named the MLP's layers linear_1 and linear_2 (its own loader renames them too).
  TensorMap renamed;
  for (auto& [key, value] : state) {
    std::string k = key;
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"mlp.linear_1.", "mlp.0."}, {"mlp.linear_2.", "mlp.3."}}) {
      const auto at = k.find(from);
      if (at != std::string::npos) k = k.substr(0, at) + to + k.substr(at + from.size());
    }
    renamed[k] = value;
  }
  LoadStateOptions options;
  options.optional_prefixes = {"heads."};
  load_into(*net, renamed, name + " weights from " + path, options);
  net->eval();
  return net;
}

}  // namespace adx::nn
