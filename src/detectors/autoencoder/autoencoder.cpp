#include <adx/detectors/autoencoder/autoencoder.hpp>
#include "detectors/builtin_detector.hpp"

#include <algorithm>

namespace adx {

int64_t resolved_bottleneck(const AutoencoderOptions& o, int64_t in_features) {
  if (o.bottleneck() > 0) return o.bottleneck();
  return std::clamp<int64_t>((in_features + 5) / 10, 2, 64);
}

MlpAutoencoderImpl::MlpAutoencoderImpl(int64_t in_features, const AutoencoderOptions& o)
    : sigmoid_code_(o.sparsity_weight() > 0) {
  const int64_t code = resolved_bottleneck(o, in_features);
  nn::MlpSpec enc{in_features, o.hidden(), code, o.batch_norm(), o.dropout()};
  std::vector<int64_t> reversed(o.hidden().rbegin(), o.hidden().rend());
  nn::MlpSpec dec{code, reversed, in_features, o.batch_norm(), o.dropout()};
  encoder = register_module("encoder", nn::make_mlp(enc));
  decoder = register_module("decoder", nn::make_mlp(dec));
}

torch::Tensor MlpAutoencoderImpl::encode(const torch::Tensor& x) {
  auto code = encoder->forward(x.reshape({x.size(0), -1}));
  return sigmoid_code_ ? torch::sigmoid(code) : code;
}

torch::Tensor MlpAutoencoderImpl::decode(const torch::Tensor& code, c10::IntArrayRef shape) {
  return decoder->forward(code).reshape(shape);
}

torch::Tensor corrupt(const torch::Tensor& x, NoiseKind kind, double level) {
  switch (kind) {
    case NoiseKind::None: return x;
    case NoiseKind::Gaussian: return x + level * torch::randn_like(x);
    case NoiseKind::Masking: return x * (torch::rand_like(x) >= level).to(x.scalar_type());
    case NoiseKind::Dropout: return torch::dropout(x, level, /*train=*/true);
  }
  return x;
}

torch::Tensor kl_sparsity(const torch::Tensor& code, double rho) {
  const auto rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6);
  return (rho * torch::log(rho / rho_hat) + (1 - rho) * torch::log((1 - rho) / (1 - rho_hat))).sum();
}

void AutoencoderOptions::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.each_at_least("hidden", hidden(), 1, 0)
      .at_least("bottleneck", bottleneck(), 0)
      .in("dropout", dropout(), 0.0, 1.0, "[)")
      .at_least("noise_level", noise_level(), 0.0)
      .that(noise() == NoiseKind::Gaussian || noise_level() < 1, "noise_level",
            "is a probability for {} noise and must be < 1, got {}", noise(), noise_level())
      .at_least("sparsity_weight", sparsity_weight(), 0.0)
      .in("sparsity_target", sparsity_target(), 0.0, 1.0, "()");
}

Autoencoder::Autoencoder(Options options) : ReconstructionDetector(std::move(options)) {}

std::vector<std::string> Autoencoder::input_kinds() const {
  return {kinds::kTabular, kinds::kImage, kinds::kSeries, kinds::kVideo};
}

MlpAutoencoder Autoencoder::make_net(const std::vector<int64_t>& item_shape) {
  return MlpAutoencoder(nn::numel_of(item_shape), options_);
}

torch::Tensor Autoencoder::loss(const torch::Tensor& x, bool training) {
  const auto input = training ? corrupt(x, options_.noise(), options_.noise_level()) : x;
  const auto code = net_->encode(input);
  auto value = per_item_mse(net_->decode(code, x.sizes()), x).mean();
  if (options_.sparsity_weight() > 0)
    value = value + options_.sparsity_weight() * kl_sparsity(code, options_.sparsity_target());
  return value;
}

ADX_BUILTIN_DETECTOR(autoencoder, factory_for<Autoencoder>(), "MLP autoencoder, score = reconstruction MSE")

}  // namespace adx
