#pragma once
// The one training loop of adx. Every gradient-trained detector supplies only
// its loss on a batch; epochs, batching, shuffling, optimiser, learning-rate
// schedule, gradient clipping, early stopping and progress live here.
#include <adx/core/options.hpp>
#include <adx/core/progress.hpp>
#include <adx/data/input_kind.hpp>

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace torch {
namespace nn {
class Module;
}
namespace optim {
class Optimizer;
}
}  // namespace torch

namespace adx {

enum class OptimizerKind { Adam, AdamW };
ADX_ENUM_NAMES(OptimizerKind, {OptimizerKind::Adam, "adam"}, {OptimizerKind::AdamW, "adamw"});

enum class LrSchedule { Constant, Step, Cosine };
ADX_ENUM_NAMES(LrSchedule, {LrSchedule::Constant, "constant"}, {LrSchedule::Step, "step"},
               {LrSchedule::Cosine, "cosine"});

struct TrainOptions {
  ADX_OPTIONS_STRUCT;
  /// Maximum number of passes over the training data.
  ADX_ARG(int64_t, epochs) = 50;
  /// Items per gradient step.
  ADX_ARG(int64_t, batch_size) = 256;
  /// Parts each batch is split into, one forward and backward each, their gradients added as one step;
  /// BatchNorm normalises over each part and its running statistics take the parts' mean. Less memory
  /// per pass, and the very steps a data-parallel run with this many ranks takes.
  ADX_ARG(int64_t, micro_batches) = 1;
  /// Reshuffle the training data every epoch.
  ADX_ARG(bool, shuffle) = true;
  /// Adam (L2 penalty in the gradient) or AdamW (decoupled weight decay).
  ADX_ARG(OptimizerKind, optimizer) = OptimizerKind::Adam;
  /// Initial learning rate.
  ADX_ARG(double, lr) = 1e-3;
  /// Weight decay.
  ADX_ARG(double, weight_decay) = 1e-5;
  /// Adam's beta1 (GANs use 0.5).
  ADX_ARG(double, beta1) = 0.9;
  /// Adam's beta2.
  ADX_ARG(double, beta2) = 0.999;
  /// Learning-rate schedule over the epochs.
  ADX_ARG(LrSchedule, lr_schedule) = LrSchedule::Constant;
  /// Step schedule: epochs between decays.
  ADX_ARG(int64_t, lr_step) = 30;
  /// Step schedule: epochs at the full rate before the steps start counting (1 gives lr, lr, lr·gamma, …).
  ADX_ARG(int64_t, lr_step_delay) = 0;
  /// Step schedule: decay factor.
  ADX_ARG(double, lr_gamma) = 0.1;
  /// Early stopping: epochs without validation improvement before stopping (0 = off).
  ADX_ARG(int64_t, patience) = 10;
  /// Early stopping: smallest decrease of the validation loss that counts as improvement.
  ADX_ARG(double, min_delta) = 0.0;
  /// Clip the global gradient norm to this value (0 = off).
  ADX_ARG(double, grad_clip) = 0.0;

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// Loss of one batch. `training` is false during validation (no noise, no dropout). For validation a loss
/// may return several criteria (a 1-D tensor): early stopping then counts an epoch as an improvement only
/// when every criterion improved; the first is the reported validation loss.
using BatchLoss = std::function<at::Tensor(const Batch& batch, bool training)>;

/// Called with the 0-based epoch before its first batch (e.g. to start a warm-up phase).
using EpochHook = std::function<void(int64_t epoch)>;

struct TrainResult {
  int64_t epochs_run = 0;
  int64_t best_epoch = 0;
  double best_val_loss = -1.0;
  std::vector<double> train_losses;
  std::vector<double> val_losses;
  bool stopped_early = false;
};

/// Creates the optimiser the options ask for over `parameters`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& parameters,
                                                        const TrainOptions& options);

/// Learning rate of `epoch` (0-based) under the options' schedule.
double scheduled_lr(const TrainOptions& options, int64_t epoch);

/// Sets the learning rate of every parameter group of an Adam/AdamW optimiser.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

/// Trains `module` on the items of `train` with the loss `loss`; batches are
/// drawn and stacked by the data's input kind. Under a process group
/// (adx/core/distributed.hpp) every rank holds the same data and each takes its
/// share of every batch: rank 0's starting weights and shuffle order are
/// broadcast, gradients, losses and BatchNorm running statistics are averaged
/// over ranks, and the validation loss (hence early stopping) is computed over
/// every rank's share, so all ranks stop at the same epoch with the same state. With a non-empty `validation`
/// it tracks the validation loss, stops early after `patience` epochs without
/// improvement and restores the best state.
/// A non-finite loss stops training with adx::TrainingError.
TrainResult train_module(torch::nn::Module& module, const Data& train, const Data& validation,
                         const TrainOptions& options, const BatchLoss& loss,
                         const ProgressCallback& progress = nullptr, const std::string& stage = "train",
                         const EpochHook& on_epoch_start = nullptr);

/// One optimiser and its loss, stepped once per batch. Adversarial models
/// train several in turn (generator, then discriminator), each with its own
/// optimiser over its own parameters.
struct TrainStep {
  std::string name;                                            ///< named in errors ("discriminator loss ...")
  std::vector<at::Tensor> parameters;                       ///< what this step's optimiser updates
  std::function<at::Tensor(const Batch& batch)> loss;
  std::function<void(const at::Tensor& loss)> after_step;   ///< optional, e.g. re-initialise a collapsed D
  int64_t every = 1;  ///< step on every `every`-th batch only (WGAN: the generator after 5 critic steps)
  double lr_scale = 1.0;  ///< this step's learning rate relative to the options' (e.g. a slower discriminator)
  /// While the step runs, the module's other parameters record no gradients. For a step whose loss
  /// builds its own graph and leaves no output for a later step to differentiate through: a GAN's
  /// generator step then skips the discriminator's weight gradients and its real-image branch's
  /// backward pass (GANomaly's generator step takes about a sixth less time). The updates are the same.
  bool only_own_gradients = false;
};

/// The general loop behind train_module: per batch, every step in order.
/// The reported training loss is the first step's; `validation_loss` drives
/// early stopping. Epochs before `first_monitored_epoch` (0-based) are neither kept
/// as the best state nor counted toward patience: a warm-up whose loss is not
/// comparable with the later ones. A non-finite mean loss of any step is a
/// TrainingError naming it.
TrainResult train_steps(torch::nn::Module& module, const Data& train, const Data& validation,
                        const TrainOptions& options, const std::vector<TrainStep>& steps,
                        const BatchLoss& validation_loss, const ProgressCallback& progress = nullptr,
                        const std::string& stage = "train", const EpochHook& on_epoch_start = nullptr,
                        int64_t first_monitored_epoch = 0);

/// Copies of all parameters and buffers, for restoring a best state.
std::vector<at::Tensor> snapshot_state(torch::nn::Module& module);
void restore_state(torch::nn::Module& module, const std::vector<at::Tensor>& state);

}  // namespace adx
