#include <adx/detectors/frame_prediction/predictors.hpp>

namespace adx::nn {
namespace F = torch::nn;

namespace {
F::Sequential double_conv(int64_t in, int64_t out) {
  F::Sequential s;
  s->push_back(F::Conv2d(F::Conv2dOptions(in, out, 3).padding(1)));
  s->push_back(F::ReLU());
  s->push_back(F::Conv2d(F::Conv2dOptions(out, out, 3).padding(1)));
  s->push_back(F::ReLU());
  return s;
}

// B x K x C x H x W -> B x (K C) x H x W: the context frames stacked as channels.
torch::Tensor stack_frames(const torch::Tensor& context) {
  TORCH_CHECK(context.dim() == 5, "context frames must be B x K x C x H x W");
  return context.flatten(1, 2);
}
}  // namespace

PredictionUnetImpl::PredictionUnetImpl(int64_t context_frames, int64_t channels, std::vector<int64_t> widths) {
  TORCH_CHECK(!widths.empty(), "the U-Net needs at least one level");
  int64_t in = context_frames * channels;
  for (size_t level = 0; level < widths.size(); ++level) {
    downs_.push_back(register_module("down" + std::to_string(level), double_conv(in, widths[level])));
    in = widths[level];
  }
  for (size_t level = widths.size() - 1; level-- > 0;) {
    upsamples_.push_back(register_module(
        "upsample" + std::to_string(level),
        F::ConvTranspose2d(F::ConvTranspose2dOptions(widths[level + 1], widths[level], 2).stride(2))));
    ups_.push_back(register_module("up" + std::to_string(level), double_conv(2 * widths[level], widths[level])));
  }
  out_ = register_module("out", F::Conv2d(F::Conv2dOptions(widths[0], channels, 3).padding(1)));
}

torch::Tensor PredictionUnetImpl::forward(const torch::Tensor& context) {
  auto x = stack_frames(context);
  const int64_t height = x.size(2), width = x.size(3);
  const int64_t multiple = int64_t{1} << (downs_.size() - 1);
  const int64_t pad_h = (multiple - height % multiple) % multiple, pad_w = (multiple - width % multiple) % multiple;
  if (pad_h > 0 || pad_w > 0)
    x = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({0, pad_w, 0, pad_h}).mode(torch::kReplicate));
  std::vector<torch::Tensor> skips;
  for (size_t level = 0; level < downs_.size(); ++level) {
    if (level > 0) x = torch::max_pool2d(x, 2);
    x = downs_[level]->forward(x);
    skips.push_back(x);
  }
  for (size_t i = 0; i < ups_.size(); ++i) {
    const size_t level = downs_.size() - 2 - i;
    x = torch::relu(upsamples_[i]->forward(x));
    x = ups_[i]->forward(torch::cat({skips[level], x}, 1));
  }
  return torch::tanh(out_->forward(x)).slice(2, 0, height).slice(3, 0, width);
}

ConvLstmCellImpl::ConvLstmCellImpl(int64_t input_channels, int64_t hidden_channels, int64_t kernel)
    : hidden_(hidden_channels) {
  gates_ = register_module(
      "gates", F::Conv2d(F::Conv2dOptions(input_channels + hidden_channels, 4 * hidden_channels, kernel).padding(kernel / 2)));
}

std::pair<torch::Tensor, torch::Tensor> ConvLstmCellImpl::forward(const torch::Tensor& input, const torch::Tensor& hidden,
                                                                  const torch::Tensor& cell) {
  const auto zeros = [&] { return torch::zeros({input.size(0), hidden_, input.size(2), input.size(3)}, input.options()); };
  const auto h = hidden.defined() ? hidden : zeros();
  const auto c = cell.defined() ? cell : zeros();
  const auto gates = gates_->forward(torch::cat({input, h}, 1)).chunk(4, 1);
  const auto in_gate = torch::sigmoid(gates[0]), forget = torch::sigmoid(gates[1]);
  const auto out_gate = torch::sigmoid(gates[2]), candidate = torch::tanh(gates[3]);
  auto next_cell = forget * c + in_gate * candidate;
  return {out_gate * torch::tanh(next_cell), next_cell};
}

ConvLstmPredictorImpl::ConvLstmPredictorImpl(int64_t channels, int64_t hidden) {
  const int64_t half = std::max<int64_t>(1, hidden / 2);
  F::Sequential enc, dec;
  enc->push_back(F::Conv2d(F::Conv2dOptions(channels, half, 3).stride(2).padding(1)));
  enc->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  enc->push_back(F::Conv2d(F::Conv2dOptions(half, hidden, 3).stride(2).padding(1)));
  enc->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  dec->push_back(F::ConvTranspose2d(F::ConvTranspose2dOptions(hidden, half, 4).stride(2).padding(1)));
  dec->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  dec->push_back(F::ConvTranspose2d(F::ConvTranspose2dOptions(half, channels, 4).stride(2).padding(1)));
  encoder_ = register_module("encoder", enc);
  cell_ = register_module("cell", ConvLstmCell(hidden, hidden));
  decoder_ = register_module("decoder", dec);
}

torch::Tensor ConvLstmPredictorImpl::forward(const torch::Tensor& context) {
  TORCH_CHECK(context.dim() == 5, "context frames must be B x K x C x H x W");
  const int64_t height = context.size(3), width = context.size(4);
  // Every frame through the encoder at once, then the recurrence over the codes.
  const auto codes = encoder_->forward(context.flatten(0, 1));
  const auto steps = codes.view({context.size(0), context.size(1), codes.size(1), codes.size(2), codes.size(3)});
  torch::Tensor hidden, cell;
  for (int64_t k = 0; k < steps.size(1); ++k) std::tie(hidden, cell) = cell_->forward(steps.select(1, k), hidden, cell);
  auto out = decoder_->forward(hidden);
  // Odd sides come back one larger: crop to the frame.
  return torch::tanh(out).slice(2, 0, height).slice(3, 0, width);
}

torch::nn::Sequential make_patch_discriminator(int64_t channels, int64_t width) {
  F::Sequential d;
  d->push_back(F::Conv2d(F::Conv2dOptions(channels, width, 4).stride(2).padding(1)));
  d->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  d->push_back(F::Conv2d(F::Conv2dOptions(width, 2 * width, 4).stride(2).padding(1)));
  d->push_back(F::BatchNorm2d(2 * width));
  d->push_back(F::LeakyReLU(F::LeakyReLUOptions().negative_slope(0.2)));
  d->push_back(F::Conv2d(F::Conv2dOptions(2 * width, 1, 4).stride(1).padding(1)));
  return d;
}

}  // namespace adx::nn
