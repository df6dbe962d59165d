#include <adx/detectors/conv_autoencoder/conv_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

ConvAutoencoderNetImpl::ConvAutoencoderNetImpl(const std::vector<int64_t>& item_shape, const ConvAutoencoderOptions& o)
    : channels_(item_shape[0]), height_(item_shape[1]), width_(item_shape[2]) {
  const auto& ch = o.channels();
  code_h_ = nn::downsampled(height_, ch.size());
  code_w_ = nn::downsampled(width_, ch.size());
  const int64_t flat = ch.back() * code_h_ * code_w_;
  encoder = register_module("encoder", nn::make_conv_encoder(channels_, ch, o.batch_norm()));
  to_code = register_module("to_code", torch::nn::Linear(flat, o.latent()));
  from_code = register_module("from_code", torch::nn::Linear(o.latent(), flat));
  decoder = register_module("decoder", nn::make_conv_decoder(ch, channels_, o.batch_norm()));
}

torch::Tensor ConvAutoencoderNetImpl::forward(const torch::Tensor& x) {
  const auto code = to_code->forward(encoder->forward(x).flatten(1));
  auto h = torch::leaky_relu(from_code->forward(code), 0.2).reshape({x.size(0), -1, code_h_, code_w_});
  auto out = decoder->forward(h);
  // Sizes that are not multiples of 2^levels come back slightly larger; crop to the input.
  return out.slice(2, 0, height_).slice(3, 0, width_);
}

void ConvAutoencoderOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).each_at_least("channels", channels(), 1).at_least("latent", latent(), 1);
}

ConvAutoencoder::ConvAutoencoder(Options options) : ReconstructionDetector(std::move(options)) {}

ConvAutoencoderNet ConvAutoencoder::make_net(const std::vector<int64_t>& shape) {
  const int64_t min_side = int64_t{1} << options_.channels().size();
  ADX_CHECK_AS(ShapeError, shape[1] >= min_side && shape[2] >= min_side,
               "conv_autoencoder with {} conv layers needs images of at least {}x{}, got {}x{}",
               options_.channels().size(), min_side, min_side, shape[1], shape[2]);
  return ConvAutoencoderNet(shape, options_);
}

ADX_BUILTIN_DETECTOR(conv_autoencoder, factory_for<ConvAutoencoder>(), "convolutional autoencoder for images")

}  // namespace adx
