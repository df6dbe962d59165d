#include <adx/detectors/tcn_autoencoder/tcn_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

TcnAutoencoderNetImpl::TcnAutoencoderNetImpl(int64_t features, const TcnAutoencoderOptions& o) : pooling_(o.pooling()) {
  encoder = register_module("encoder", nn::TemporalConvStack(features, o.channels(), o.kernel(), o.dilations()));
  to_code = register_module("to_code", torch::nn::Conv1d(torch::nn::Conv1dOptions(o.channels(), o.code_channels(), 1)));
  decoder = register_module("decoder", nn::TemporalConvStack(o.code_channels(), o.channels(), o.kernel(), o.dilations()));
  output = register_module("output", torch::nn::Conv1d(torch::nn::Conv1dOptions(o.channels(), features, 1)));
}

torch::Tensor TcnAutoencoderNetImpl::forward(const torch::Tensor& x) {
  const int64_t length = x.size(1);
  auto h = to_code->forward(encoder->forward(x.transpose(1, 2)));
  h = torch::avg_pool1d(h, {pooling_}, {pooling_}, {0}, /*ceil_mode=*/true);
  h = h.repeat_interleave(pooling_, 2).narrow(2, 0, length);
  return output->forward(decoder->forward(h)).transpose(1, 2);
}

void TcnAutoencoderOptions::check(const std::string& prefix) const {
  OptionChecks(prefix)
      .at_least("channels", channels(), 1)
      .at_least("kernel", kernel(), 1)
      .each_at_least("dilations", dilations(), 1)
      .at_least("code_channels", code_channels(), 1)
      .at_least("pooling", pooling(), 1);
}

TcnAutoencoder::TcnAutoencoder(Options options) : ReconstructionDetector(std::move(options)) {}

TcnAutoencoderNet TcnAutoencoder::make_net(const std::vector<int64_t>& item_shape) {
  return TcnAutoencoderNet(item_shape.at(1), options_);
}

ADX_BUILTIN_DETECTOR(tcn_autoencoder, factory_for<TcnAutoencoder>(),
                     "dilated causal convolutions with a pooled code, per-step error")

}  // namespace adx
