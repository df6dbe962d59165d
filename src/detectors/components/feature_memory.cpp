#include <adx/detectors/components/feature_memory.hpp>


namespace adx {

BackboneImpl::BackboneImpl(nn::ResNetArch arch, std::vector<std::string> layers) : layers_(std::move(layers)) {
  net = register_module("net", nn::ResNet(arch));
  for (const auto& layer : layers_) net->channels(layer);  // an unknown layer is an OptionError now, not at fit
  mean_ = register_buffer("mean", torch::tensor({0.485f, 0.456f, 0.406f}).reshape({1, 3, 1, 1}));
  std_ = register_buffer("std", torch::tensor({0.229f, 0.224f, 0.225f}).reshape({1, 3, 1, 1}));
  for (auto& p : parameters()) p.set_requires_grad(false);
}

std::map<std::string, torch::Tensor> BackboneImpl::forward(const torch::Tensor& images) {
  auto x = images.size(1) == 1 ? images.expand({-1, 3, -1, -1}) : images;
  return net->features((x - mean_) / std_, layers_);
}

void BackboneImpl::load_weights(const std::string& path) {
  auto loaded = nn::load_resnet(net->arch(), path);
  torch::NoGradGuard no_grad;
  auto source = loaded->named_parameters(true);
  for (auto& p : net->named_parameters(true)) p.value().copy_(source[p.key()]);
  auto buffers = loaded->named_buffers(true);
  for (auto& b : net->named_buffers(true)) b.value().copy_(buffers[b.key()]);
}

torch::Tensor concat_layers(const std::map<std::string, torch::Tensor>& features,
                            const std::vector<std::string>& layers, bool bilinear, bool neighbourhood_average) {
  namespace F = torch::nn::functional;
  std::vector<torch::Tensor> parts;
  std::vector<int64_t> size;
  for (const auto& name : layers) {
    auto f = features.at(name);
    if (neighbourhood_average) f = torch::avg_pool2d(f, 3, 1, 1);
    if (size.empty()) {
      size = {f.size(2), f.size(3)};
    } else if (f.size(2) != size[0] || f.size(3) != size[1]) {
      auto options = F::InterpolateFuncOptions().size(size);
      f = bilinear ? F::interpolate(f, options.mode(torch::kBilinear).align_corners(false))
                   : F::interpolate(f, options.mode(torch::kNearest));
    }
    parts.push_back(f);
  }
  return torch::cat(parts, 1);
}

torch::Tensor upsample_and_blur(const torch::Tensor& patch_maps, int64_t height, int64_t width, double sigma) {
  namespace F = torch::nn::functional;
  auto maps = F::interpolate(patch_maps, F::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{height, width})
                                             .mode(torch::kBilinear)
                                             .align_corners(false));
  if (sigma <= 0) return maps;
  const int64_t radius = static_cast<int64_t>(std::lround(4.0 * sigma));
  auto kernel = torch::arange(-radius, radius + 1, maps.options()).div(sigma).square().mul(-0.5).exp();
  kernel = kernel / kernel.sum();
  // Separable blur: rows, then columns, with reflect padding (clamped to what the map size allows).
  const int64_t pad_w = std::min(radius, width - 1), pad_h = std::min(radius, height - 1);
  auto k_row = kernel.slice(0, radius - pad_w, radius + pad_w + 1);
  auto k_col = kernel.slice(0, radius - pad_h, radius + pad_h + 1);
  k_row = k_row / k_row.sum();
  k_col = k_col / k_col.sum();
  maps = torch::reflection_pad2d(maps, {pad_w, pad_w, pad_h, pad_h});
  maps = torch::conv2d(maps, k_row.reshape({1, 1, 1, -1}));
  return torch::conv2d(maps, k_col.reshape({1, 1, -1, 1}));
}

}  // namespace adx
