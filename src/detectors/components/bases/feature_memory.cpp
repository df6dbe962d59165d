#include <adx/detectors/components/bases/feature_memory.hpp>


#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace adx {

BackboneImpl::BackboneImpl(const std::string& name, std::vector<std::string> layers) : layers_(std::move(layers)) {
  net = register_module("net", nn::make_backbone(name));
  for (const auto& layer : layers_) net->channels(layer);  // an unknown layer is an OptionError now, not at fit
  mean_ = register_buffer("mean", torch::tensor({0.485f, 0.456f, 0.406f}).reshape({1, 3, 1, 1}));
  std_ = register_buffer("std", torch::tensor({0.229f, 0.224f, 0.225f}).reshape({1, 3, 1, 1}));
  for (auto& p : parameters()) p.set_requires_grad(false);
}

std::map<std::string, torch::Tensor> BackboneImpl::forward(const torch::Tensor& images) {
  auto x = images.size(1) == 1 ? images.expand({-1, 3, -1, -1}) : images;
  x = (x - mean_) / std_;
  if (!channels_last_ && !bfloat16_) return net->features(x, layers_);
  if (channels_last_) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  if (bfloat16_) x = x.to(torch::kBFloat16);
  auto features = inference_net().features(x, layers_);
  // Downstream code works on float32 in the standard layout.
  for (auto& [name, f] : features) f = f.to(torch::kFloat32).contiguous();
  return features;
}

void BackboneImpl::set_inference(bool channels_last, bool bfloat16) {
  ADX_CHECK_AS(OptionError, !bfloat16 || !mean_.device().is_cpu() || cpu_has_bfloat16(),
               "precision=bfloat16 needs a CPU with AVX-512 BF16 (or a CUDA device); this CPU lacks it, so "
               "bfloat16 convolutions would be emulated and slower than float32: use precision=float32");
  channels_last_ = channels_last;
  bfloat16_ = bfloat16;
  inference_net_ = nullptr;
  inference_source_.clear();
}

nn::FeatureExtractor& BackboneImpl::inference_net() {
  std::vector<std::pair<const void*, uint32_t>> source;
  for (const auto& t : net->parameters()) source.emplace_back(t.data_ptr(), t._version());
  for (const auto& t : net->buffers()) source.emplace_back(t.data_ptr(), t._version());
  if (inference_net_ && source == inference_source_) return *inference_net_;
  torch::NoGradGuard no_grad;
  {
    // Building a backbone draws its initial weights (all overwritten below); the global generator is put back
    // so that what follows (PatchCore's coreset, PaDiM's channels) draws as without the copy.
    auto generator = at::detail::getDefaultCPUGenerator();
    const auto state = [&] {
      std::lock_guard<std::mutex> lock(generator.mutex());
      return generator.get_state();
    }();
    inference_net_ = nn::make_backbone(net->arch_name());
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
  }
  const auto convert = [&](const torch::Tensor& t) {
    auto out = t.to(mean_.device(), bfloat16_ && t.is_floating_point() ? torch::kBFloat16 : t.scalar_type());
    return channels_last_ && out.dim() == 4 ? out.contiguous(torch::MemoryFormat::ChannelsLast) : out.contiguous();
  };
  auto parameters = net->named_parameters(true);
  for (auto& p : inference_net_->named_parameters(true)) p.value().set_data(convert(parameters[p.key()]));
  auto buffers = net->named_buffers(true);
  for (auto& b : inference_net_->named_buffers(true)) b.value().set_data(convert(buffers[b.key()]));
  for (auto& p : inference_net_->parameters()) p.set_requires_grad(false);
  inference_net_->eval();
  inference_source_ = std::move(source);
  return *inference_net_;
}

bool cpu_has_bfloat16() {
#if defined(__x86_64__) || defined(__i386__)
  // CPUID leaf 7, sub-leaf 1: EAX bit 5 is AVX512_BF16.
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  return (eax >> 5) & 1u;
#else
  return false;
#endif
}

void BackboneImpl::load_weights(const std::string& path) {
  auto loaded = nn::load_backbone(net->arch_name(), path);
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
