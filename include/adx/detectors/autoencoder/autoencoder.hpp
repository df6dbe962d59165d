#pragma once
// Autoencoder (MLP) with BatchNorm, ReLU and Dropout. Score = per-item
// reconstruction MSE. The same network, with input noise or a sparsity
// penalty switched on, is the denoising and the sparse autoencoder.
//
//   adx::Autoencoder ae(adx::AutoencoderOptions().hidden({128, 64}).bottleneck(16));
//   ae.fit(adx::Data::tabular(x_train));
//   auto scores = ae.score(adx::Data::tabular(x_test)).per_item;
#include <adx/detectors/components/reconstruction.hpp>
#include <adx/nn/mlp.hpp>

#include <torch/torch.h>

namespace adx {

enum class NoiseKind {
  None,      ///< plain autoencoder
  Gaussian,  ///< x + noise_level * N(0, 1)
  Masking,   ///< each feature set to 0 with probability noise_level
  Dropout,   ///< inverted dropout with probability noise_level
};
ADX_ENUM_NAMES(NoiseKind, {NoiseKind::None, "none"}, {NoiseKind::Gaussian, "gaussian"},
               {NoiseKind::Masking, "masking"}, {NoiseKind::Dropout, "dropout"});

struct AutoencoderOptions {
  ADX_OPTIONS_STRUCT;
  /// Widths of the encoder's hidden layers; the decoder mirrors them.
  ADX_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{128, 64};
  /// Code width; 0 picks 10% of the input width, clamped to [2, 64].
  ADX_ARG(int64_t, bottleneck) = 0;
  /// BatchNorm after each hidden layer.
  ADX_ARG(bool, batch_norm) = true;
  /// Dropout after each hidden layer.
  ADX_ARG(double, dropout) = 0.1;
  /// Corruption applied to the input during training (denoising autoencoder).
  ADX_ARG(NoiseKind, noise) = NoiseKind::None;
  /// Strength of the corruption: standard deviation or probability.
  ADX_ARG(double, noise_level) = 0.1;
  /// Weight beta of the KL sparsity penalty on the code (sparse autoencoder; 0 = off).
  ADX_ARG(double, sparsity_weight) = 0.0;
  /// Target mean activation rho of each code unit.
  ADX_ARG(double, sparsity_target) = 0.05;
  /// Training loop settings.
  ADX_ARG(TrainOptions, train) = TrainOptions();
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);
};

/// Code width actually used for `in_features` inputs.
inline int64_t resolved_bottleneck(const AutoencoderOptions& o, int64_t in_features) {
  if (o.bottleneck() > 0) return o.bottleneck();
  return std::clamp<int64_t>((in_features + 5) / 10, 2, 64);
}

class MlpAutoencoderImpl : public torch::nn::Module {
 public:
  MlpAutoencoderImpl(int64_t in_features, const AutoencoderOptions& o)
      : sigmoid_code_(o.sparsity_weight() > 0) {
    const int64_t code = resolved_bottleneck(o, in_features);
    nn::MlpSpec enc{in_features, o.hidden(), code, o.batch_norm(), o.dropout()};
    std::vector<int64_t> reversed(o.hidden().rbegin(), o.hidden().rend());
    nn::MlpSpec dec{code, reversed, in_features, o.batch_norm(), o.dropout()};
    encoder = register_module("encoder", nn::make_mlp(enc));
    decoder = register_module("decoder", nn::make_mlp(dec));
  }
  /// Code of flattened items; in (0, 1) when the sparsity penalty is on.
  torch::Tensor encode(const torch::Tensor& x) {
    auto code = encoder->forward(x.reshape({x.size(0), -1}));
    return sigmoid_code_ ? torch::sigmoid(code) : code;
  }
  torch::Tensor decode(const torch::Tensor& code, c10::IntArrayRef shape) {
    return decoder->forward(code).reshape(shape);
  }
  torch::Tensor forward(const torch::Tensor& x) { return decode(encode(x), x.sizes()); }

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};

 private:
  bool sigmoid_code_;
};
TORCH_MODULE(MlpAutoencoder);

/// Applies the training-time corruption of a denoising autoencoder.
inline torch::Tensor corrupt(const torch::Tensor& x, NoiseKind kind, double level) {
  switch (kind) {
    case NoiseKind::None: return x;
    case NoiseKind::Gaussian: return x + level * torch::randn_like(x);
    case NoiseKind::Masking: return x * (torch::rand_like(x) >= level).to(x.scalar_type());
    case NoiseKind::Dropout: return torch::dropout(x, level, /*train=*/true);
  }
  return x;
}

/// KL(rho || rho_hat_j) summed over code units, rho_hat_j the batch-mean activation.
inline torch::Tensor kl_sparsity(const torch::Tensor& code, double rho) {
  const auto rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6);
  return (rho * torch::log(rho / rho_hat) + (1 - rho) * torch::log((1 - rho) / (1 - rho_hat))).sum();
}

class Autoencoder : public ReconstructionDetector<AutoencoderOptions, MlpAutoencoder> {
 public:
  using Options = AutoencoderOptions;
  explicit Autoencoder(Options options = Options()) : ReconstructionDetector(std::move(options)) {
    const auto& o = options_;
    ADX_CHECK_AS(OptionError, o.dropout() >= 0 && o.dropout() < 1, "dropout must be in [0, 1), got {}",
                 o.dropout());
    ADX_CHECK_AS(OptionError, o.noise_level() >= 0, "noise_level must be >= 0, got {}", o.noise_level());
    ADX_CHECK_AS(OptionError, o.noise() == NoiseKind::Gaussian || o.noise_level() < 1,
                 "noise_level is a probability for {} noise and must be < 1, got {}",
                 detail::option_to_string(o.noise()), o.noise_level());
    ADX_CHECK_AS(OptionError, o.sparsity_target() > 0 && o.sparsity_target() < 1,
                 "sparsity_target must be in (0, 1), got {}", o.sparsity_target());
    for (auto h : o.hidden()) ADX_CHECK_AS(OptionError, h > 0, "hidden widths must be > 0, got {}", h);
  }
  std::string type() const override { return "autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kTabular, kinds::kImage, kinds::kSeries, kinds::kVideo}; }

 protected:
  MlpAutoencoder make_net(const std::vector<int64_t>& item_shape) override {
    return MlpAutoencoder(nn::numel_of(item_shape), options_);
  }
  torch::Tensor loss(const torch::Tensor& x, bool training) override {
    const auto input = training ? corrupt(x, options_.noise(), options_.noise_level()) : x;
    const auto code = net_->encode(input);
    auto value = per_item_mse(net_->decode(code, x.sizes()), x).mean();
    if (options_.sparsity_weight() > 0)
      value = value + options_.sparsity_weight() * kl_sparsity(code, options_.sparsity_target());
    return value;
  }
};

}  // namespace adx
