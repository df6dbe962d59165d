#pragma once
// Shared core of the reconstruction family: train a module to reproduce
// normal data with the shared training loop, score = per-item mean squared error.
#include <adx/detectors/detector.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

/// Mean squared error per item over all remaining dimensions.
inline torch::Tensor per_item_mse(const torch::Tensor& reconstruction, const torch::Tensor& target) {
  return (reconstruction - target).pow(2).reshape({target.size(0), -1}).mean(1);
}

/// Mean squared error per step of sequence items (B x L x ...): B x L.
inline torch::Tensor per_step_mse(const torch::Tensor& reconstruction, const torch::Tensor& target) {
  return (reconstruction - target).pow(2).reshape({target.size(0), target.size(1), -1}).mean(2);
}

/// Error of every frame of sequence items B x L x C x H x W: B x L. `patch` 0 gives the mean squared
/// error over the whole frame (the video papers' score); `patch` > 0 the mean over the worst
/// patch x patch window (stride patch / 2), so that a small object's error is not averaged away by
/// the rest of the frame.
inline torch::Tensor per_frame_error(const torch::Tensor& reconstruction, const torch::Tensor& target, int64_t patch) {
  if (patch <= 0) return per_step_mse(reconstruction, target);
  const int64_t b = target.size(0), length = target.size(1);
  const auto squared = (reconstruction - target).pow(2).mean(2).flatten(0, 1).unsqueeze(1);  // (B L) x 1 x H x W
  const int64_t size = std::min({patch, squared.size(2), squared.size(3)});
  const auto windows = torch::avg_pool2d(squared, {size, size}, {std::max<int64_t>(1, size / 2), std::max<int64_t>(1, size / 2)});
  return windows.flatten(1).amax(1).view({b, length});
}

/// `Net` is a module holder whose forward(x) returns a reconstruction of x.
template <class Options, class Net>
class ReconstructionDetector : public DetectorWithOptions<Options> {
 public:
  using DetectorWithOptions<Options>::DetectorWithOptions;
  /// The trained network (empty before fit or load).
  const Net& net() const { return net_; }

 protected:
  /// Creates the network for one item shape.
  virtual Net make_net(const std::vector<int64_t>& item_shape) = 0;
  /// Training loss of a batch; the default is the mean reconstruction error.
  virtual torch::Tensor loss(const torch::Tensor& x, bool /*training*/) {
    return per_item_mse(net_->forward(x), x).mean();
  }

  void build(const std::vector<int64_t>& item_shape, const InputKind&) override {
    net_ = make_net(item_shape);
    net_->to(this->device());
  }
  void fit_model(const Data& train, const Data& validation) override {
    train_module(*net_, train, validation, this->options_.train(),
                 [this](const Batch& batch, bool training) { return loss(batch.x, training); }, this->progress(),
                 this->type());
  }
  Scores score_model(const Batch& batch) override {
    Scores s;
    const auto reconstruction = net_->forward(batch.x);
    s.per_item = per_item_mse(reconstruction, batch.x);
    // Series and video: each step's own error, so a short anomaly is not smeared over the window.
    if (this->fitted_kind() != nullptr && this->fitted_kind()->has_steps())
      s.step_map = per_step_mse(reconstruction, batch.x);
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }

  Net net_{nullptr};
};

}  // namespace adx
