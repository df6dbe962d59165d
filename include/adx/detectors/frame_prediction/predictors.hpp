#pragma once
// Networks that predict the next frame of a video from the frames before it:
// the U-Net of Liu et al. (CVPR 2018, "Future Frame Prediction for Anomaly
// Detection") and a convolutional LSTM (Shi et al. 2015) between a strided
// convolutional encoder and decoder. Both take B x K x C x H x W context frames
// in [-1, 1] and return B x C x H x W in [-1, 1] (tanh).
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

/// Liu et al.'s U-Net: per level two 3x3 conv + ReLU, 2x2 max pooling between levels; on the way up
/// a 2x2 stride-2 transposed conv, the skip concatenated, two 3x3 conv + ReLU; a 3x3 conv + tanh out.
/// Frames whose sides are not multiples of 2^(levels-1) are padded (replicate) and cropped back.
class PredictionUnetImpl : public torch::nn::Module {
 public:
  PredictionUnetImpl(int64_t context_frames, int64_t channels, std::vector<int64_t> widths);
  torch::Tensor forward(const torch::Tensor& context);

 private:
  std::vector<torch::nn::Sequential> downs_, ups_;
  std::vector<torch::nn::ConvTranspose2d> upsamples_;
  torch::nn::Conv2d out_{nullptr};
};
TORCH_MODULE(PredictionUnet);

/// One ConvLSTM cell: the four gates from a 3x3 (by default) convolution of [input, hidden].
class ConvLstmCellImpl : public torch::nn::Module {
 public:
  ConvLstmCellImpl(int64_t input_channels, int64_t hidden_channels, int64_t kernel = 3);
  /// One step: returns the new (hidden, cell); pass undefined tensors for the first step.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& input, const torch::Tensor& hidden,
                                                  const torch::Tensor& cell);
  int64_t hidden_channels() const { return hidden_; }

 private:
  torch::nn::Conv2d gates_{nullptr};
  int64_t hidden_;
};
TORCH_MODULE(ConvLstmCell);

/// Encoder (two stride-2 3x3 convs) -> ConvLSTM over the context frames -> decoder (two stride-2
/// transposed convs, tanh) applied to the last hidden state.
class ConvLstmPredictorImpl : public torch::nn::Module {
 public:
  ConvLstmPredictorImpl(int64_t channels, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& context);

 private:
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
  ConvLstmCell cell_{nullptr};
};
TORCH_MODULE(ConvLstmPredictor);

/// PatchGAN discriminator for the optional adversarial loss: 4x4 stride-2 convs with LeakyReLU 0.2
/// and batch norm after the first, then a 4x4 conv to one logit per patch (least-squares GAN).
torch::nn::Sequential make_patch_discriminator(int64_t channels, int64_t width);

}  // namespace adx::nn
