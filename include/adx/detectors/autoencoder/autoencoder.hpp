#pragma once
// Autoencoder (MLP) with BatchNorm, ReLU and Dropout. Score = per-item
// reconstruction MSE. The same network, with input noise or a sparsity
// penalty switched on, is the denoising and the sparse autoencoder.
//
//   adx::Autoencoder ae(adx::AutoencoderOptions().hidden({128, 64}).bottleneck(16));
//   ae.fit(adx::Data::tabular(x_train));
//   auto scores = ae.score(adx::Data::tabular(x_test)).per_item;
#include <adx/detectors/components/bases/reconstruction.hpp>
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

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// Code width actually used for `in_features` inputs.
int64_t resolved_bottleneck(const AutoencoderOptions& o, int64_t in_features);

class MlpAutoencoderImpl : public torch::nn::Module {
 public:
  MlpAutoencoderImpl(int64_t in_features, const AutoencoderOptions& o);
  /// Code of flattened items; in (0, 1) when the sparsity penalty is on.
  torch::Tensor encode(const torch::Tensor& x);
  torch::Tensor decode(const torch::Tensor& code, c10::IntArrayRef shape);
  torch::Tensor forward(const torch::Tensor& x) { return decode(encode(x), x.sizes()); }

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};

 private:
  bool sigmoid_code_;
};
TORCH_MODULE(MlpAutoencoder);

/// Applies the training-time corruption of a denoising autoencoder.
torch::Tensor corrupt(const torch::Tensor& x, NoiseKind kind, double level);

/// KL(rho || rho_hat_j) summed over code units, rho_hat_j the batch-mean activation.
torch::Tensor kl_sparsity(const torch::Tensor& code, double rho);

class Autoencoder : public ReconstructionDetector<AutoencoderOptions, MlpAutoencoder> {
 public:
  using Options = AutoencoderOptions;
  explicit Autoencoder(Options options = Options());
  std::string type() const override { return "autoencoder"; }
  std::vector<std::string> input_kinds() const override;

 protected:
  MlpAutoencoder make_net(const std::vector<int64_t>& item_shape) override;
  torch::Tensor loss(const torch::Tensor& x, bool training) override;
};

}  // namespace adx
