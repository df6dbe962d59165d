#include <adx/core/error.hpp>
#include <adx/io/state_dict.hpp>
#include <adx/nn/resnet.hpp>

namespace adx::nn {
namespace {

using namespace torch::nn;

Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
  return Conv2d(Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// Residual block: BasicBlock (two 3x3) or Bottleneck (1x1, 3x3, 1x1 with expansion 4), torchvision layout.
class BlockImpl : public Module {
 public:
  BlockImpl(bool bottleneck, int64_t in, int64_t planes, int64_t stride, int64_t width) : bottleneck_(bottleneck) {
    const int64_t out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      conv1 = register_module("conv1", conv(in, width, 1));
      bn1 = register_module("bn1", BatchNorm2d(width));
      conv2 = register_module("conv2", conv(width, width, 3, stride));
      bn2 = register_module("bn2", BatchNorm2d(width));
      conv3 = register_module("conv3", conv(width, out, 1));
      bn3 = register_module("bn3", BatchNorm2d(out));
    } else {
      conv1 = register_module("conv1", conv(in, planes, 3, stride));
      bn1 = register_module("bn1", BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3));
      bn2 = register_module("bn2", BatchNorm2d(planes));
    }
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", Sequential(conv(in, out, 1, stride), BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1->forward(conv1->forward(x)));
    y = bn2->forward(conv2->forward(y));
    if (bottleneck_) y = bn3->forward(conv3->forward(torch::relu(y)));
    return torch::relu(y + (downsample ? downsample->forward(x) : x));
  }

 private:
  bool bottleneck_;
  Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  Sequential downsample{nullptr};
};
TORCH_MODULE(Block);

const char* kStageNames[4] = {"layer1", "layer2", "layer3", "layer4"};

}  // namespace

ResNetArch resnet_arch_from_name(const std::string& name) {
  if (name == "resnet18") return ResNetArch::ResNet18;
  if (name == "wide_resnet50_2") return ResNetArch::WideResNet50_2;
  throw OptionError("unknown backbone '" + name + "'; choose resnet18 or wide_resnet50_2");
}

std::string resnet_arch_name(ResNetArch arch) {
  return arch == ResNetArch::ResNet18 ? "resnet18" : "wide_resnet50_2";
}

ResNetImpl::ResNetImpl(ResNetArch arch, int64_t num_classes) : arch_(arch) {
  const bool bottleneck = arch == ResNetArch::WideResNet50_2;
  const std::vector<int64_t> depth = bottleneck ? std::vector<int64_t>{3, 4, 6, 3} : std::vector<int64_t>{2, 2, 2, 2};
  conv1 = register_module("conv1", conv(3, 64, 7, 2));
  bn1 = register_module("bn1", BatchNorm2d(64));
  channels_["conv1"] = 64;
  int64_t in = 64;
  for (int64_t s = 0; s < 4; ++s) {
    const int64_t planes = 64 << s;
    // Wide-ResNet-50-2: bottleneck width twice torchvision's default (width_per_group 128).
    const int64_t width = planes * 2;
    Sequential stage;
    for (int64_t b = 0; b < depth[s]; ++b) {
      stage->push_back(Block(bottleneck, in, planes, b == 0 && s > 0 ? 2 : 1, width));
      in = bottleneck ? planes * 4 : planes;
    }
    stages_.push_back(register_module(kStageNames[s], stage));
    channels_[kStageNames[s]] = in;
  }
  fc = register_module("fc", Linear(in, num_classes));
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  auto y = features(x, {"layer4"}).at("layer4");
  return fc->forward(torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1));
}

std::map<std::string, torch::Tensor> ResNetImpl::features(const torch::Tensor& x,
                                                          const std::vector<std::string>& layers) {
  int64_t deepest = -1;
  for (const auto& name : layers) {
    ADX_CHECK_AS(OptionError, channels_.count(name), "{} has no layer '{}'; choose conv1, layer1, layer2, layer3 or layer4",
                 resnet_arch_name(arch_), name);
    for (int64_t s = 0; s < 4; ++s)
      if (name == kStageNames[s]) deepest = std::max(deepest, s);
  }
  ADX_CHECK_AS(ShapeError, x.dim() == 4 && x.size(1) == 3, "{} takes N x 3 x H x W images, got {}",
               resnet_arch_name(arch_), std::string(c10::str(x.sizes())));
  std::map<std::string, torch::Tensor> out;
  auto wanted = [&](const std::string& n) { return std::find(layers.begin(), layers.end(), n) != layers.end(); };
  auto y = torch::max_pool2d(torch::relu(bn1->forward(conv1->forward(x))), 3, 2, 1);
  if (wanted("conv1")) out["conv1"] = y;
  for (int64_t s = 0; s <= deepest; ++s) {
    y = stages_[s]->forward(y);
    if (wanted(kStageNames[s])) out[kStageNames[s]] = y;
  }
  return out;
}

int64_t ResNetImpl::channels(const std::string& layer) const {
  auto it = channels_.find(layer);
  ADX_CHECK_AS(OptionError, it != channels_.end(), "{} has no layer '{}'", resnet_arch_name(arch_), layer);
  return it->second;
}

int64_t ResNetImpl::stride(const std::string& layer) const {
  if (layer == "conv1" || layer == "layer1") return 4;
  if (layer == "layer2") return 8;
  if (layer == "layer3") return 16;
  if (layer == "layer4") return 32;
  throw OptionError(fmt::format("{} has no layer '{}'", resnet_arch_name(arch_), layer));
}

ResNet load_resnet(ResNetArch arch, const std::string& path) {
  ResNet net(arch);
  LoadStateOptions options;
  options.optional_prefixes = {"fc."};
  load_into(*net, load_state_dict(path), resnet_arch_name(arch) + " weights from " + path, options);
  net->eval();
  return net;
}

}  // namespace adx::nn
