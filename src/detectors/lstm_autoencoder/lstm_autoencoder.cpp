#include <adx/detectors/lstm_autoencoder/lstm_autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

namespace adx {

LstmAutoencoderNetImpl::LstmAutoencoderNetImpl(int64_t features, const LstmAutoencoderOptions& o)
    : encoder(register_module("encoder", nn::LstmSummary(features, o.hidden(), o.layers()))),
      decoder(register_module("decoder", nn::LstmSummary(o.hidden(), o.hidden(), o.layers()))),
      output(register_module("output", torch::nn::Linear(o.hidden(), features))) {}

torch::Tensor LstmAutoencoderNetImpl::forward(const torch::Tensor& x) {
  const auto code = encoder->forward(x);
  const auto steps = code.unsqueeze(1).expand({x.size(0), x.size(1), code.size(1)}).contiguous();
  return output->forward(std::get<0>(decoder->lstm->forward(steps)));
}

void LstmAutoencoderOptions::check(const std::string& prefix) const {
  OptionChecks(prefix).at_least("hidden", hidden(), 1).at_least("layers", layers(), 1);
}

LstmAutoencoder::LstmAutoencoder(Options options) : ReconstructionDetector(std::move(options)) {}

LstmAutoencoderNet LstmAutoencoder::make_net(const std::vector<int64_t>& item_shape) {
  return LstmAutoencoderNet(item_shape.at(1), options_);
}

ADX_BUILTIN_DETECTOR(lstm_autoencoder, factory_for<LstmAutoencoder>(),
                     "repeat-vector LSTM autoencoder over a window, per-step error")

}  // namespace adx
