#include <adx/detectors/memae/memae.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

MemaeNetImpl::MemaeNetImpl(const std::vector<int64_t>& item_shape, const MemaeOptions& o) {
  namespace F = torch::nn;
  const auto& ch = o.channels();
  const int64_t in = item_shape.at(1);
  // The first layer halves H and W only (stride 1, 2, 2), the others all three axes (as the paper's model).
  auto stride_of = [](size_t layer) { return layer == 0 ? std::vector<int64_t>{1, 2, 2} : std::vector<int64_t>{2, 2, 2}; };
  F::Sequential enc, dec;
  int64_t width = in;
  for (size_t i = 0; i < ch.size(); ++i) {
    enc->push_back(F::Conv3d(F::Conv3dOptions(width, ch[i], 3).stride(stride_of(i)).padding(1)));
    enc->push_back(F::BatchNorm3d(ch[i]));
    enc->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
    width = ch[i];
  }
  for (size_t i = ch.size(); i-- > 0;) {
    const int64_t out = i == 0 ? in : ch[i - 1];
    const auto stride = stride_of(i);
    std::vector<int64_t> output_padding{stride[0] - 1, 1, 1};
    dec->push_back(F::ConvTranspose3d(
        F::ConvTranspose3dOptions(ch[i], out, 3).stride(stride).padding(1).output_padding(output_padding)));
    if (i == 0) break;  // the last layer gives the frames themselves
    dec->push_back(F::BatchNorm3d(out));
    dec->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  }
  encoder = register_module("encoder", enc);
  memory = register_module("memory", nn::Memory(nn::MemoryOptions{o.slots(), ch.back(), o.shrink()}));
  decoder = register_module("decoder", dec);
}

std::pair<torch::Tensor, torch::Tensor> MemaeNetImpl::forward_with_weights(const torch::Tensor& clips) {
  // B x C x L x H x W, in [-1, 1] as the reference feeds its network (Normalize(0.5, 0.5) of [0, 1] frames).
  const auto x = clips.permute({0, 2, 1, 3, 4}) * 2 - 1;
  auto read = memory->forward(encoder->forward(x));
  auto out = decoder->forward(read.code);
  // Lengths and sizes that are not multiples of the strides come back larger: crop to the input.
  out = out.slice(2, 0, x.size(2)).slice(3, 0, x.size(3)).slice(4, 0, x.size(4));
  return {((out.permute({0, 2, 1, 3, 4}) + 1) / 2).contiguous(), read.weights};
}

void MemaeOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .each_at_least("channels", channels(), 1)
      .at_least("slots", slots(), 1)
      .in("shrink", shrink(), 0.0, 1.0, "[)")
      .at_least("entropy_weight", entropy_weight(), 0.0)
      .at_least("patch", patch(), 0);
}

Memae::Memae(Options options) : ReconstructionDetector(std::move(options)) {}

torch::Tensor Memae::loss(const torch::Tensor& x, bool) {
  auto [reconstruction, weights] = net_->forward_with_weights(x);
  return per_item_mse(reconstruction, x).mean() + options_.entropy_weight() * nn::attention_entropy(weights);
}

}  // namespace adx

namespace adx {

Scores Memae::score_model(const Batch& batch) {
  Scores s;
  s.step_map = per_frame_error(net_->forward(batch.x), batch.x, options_.patch());
  s.per_item = s.step_map.mean(1);
  return s;
}

ADX_BUILTIN_DETECTOR(memae, factory_for<Memae>(),
                     "MemAE: 3-D conv autoencoder with a sparse memory of normal codes, per frame")

}  // namespace adx
