#include <adx/core/error.hpp>
#include <adx/train/trainer.hpp>

#include <chrono>
#include <cmath>

namespace adx {

void TrainOptions::check(const std::string& prefix) const {
  constexpr double kHuge = 1e300;
  // `value` must lie between `low` and `high`, each end open or closed as `range` shows.
  auto in = [&](const char* name, double value, double low, bool low_open, double high, bool high_open,
                const char* range) {
    const bool ok = (low_open ? value > low : value >= low) && (high_open ? value < high : value <= high);
    ADX_CHECK_AS(OptionError, ok, "option '{}{}' must be in {}, got {}", prefix, name, range, value);
  };
  in("epochs", static_cast<double>(epochs()), 0, false, 1e9, false, "[0, 1e9]");
  in("batch_size", static_cast<double>(batch_size()), 1, false, 1e9, false, "[1, 1e9]");
  in("lr", lr(), 0, true, 1e6, false, "(0, 1e6]");
  in("weight_decay", weight_decay(), 0, false, 1e6, false, "[0, 1e6]");
  in("beta1", beta1(), 0, false, 1, true, "[0, 1)");
  in("beta2", beta2(), 0, false, 1, true, "[0, 1)");
  in("lr_step", static_cast<double>(lr_step()), 1, false, 1e9, false, "[1, 1e9]");
  in("lr_gamma", lr_gamma(), 0, true, 1, false, "(0, 1]");
  in("patience", static_cast<double>(patience()), 0, false, 1e9, false, "[0, 1e9]");
  in("min_delta", min_delta(), 0, false, kHuge, false, "[0, inf)");
  in("grad_clip", grad_clip(), 0, false, kHuge, false, "[0, inf)");
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& parameters,
                                                        const TrainOptions& o) {
  check_options(o);
  if (o.optimizer() == OptimizerKind::AdamW)
    return std::make_unique<torch::optim::AdamW>(
        parameters,
        torch::optim::AdamWOptions(o.lr()).weight_decay(o.weight_decay()).betas({o.beta1(), o.beta2()}));
  return std::make_unique<torch::optim::Adam>(
      parameters, torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay()).betas({o.beta1(), o.beta2()}));
}

double scheduled_lr(const TrainOptions& o, int64_t epoch) {
  switch (o.lr_schedule()) {
    case LrSchedule::Constant: return o.lr();
    case LrSchedule::Step:
      return o.lr() * std::pow(o.lr_gamma(), static_cast<double>(epoch / std::max<int64_t>(1, o.lr_step())));
    case LrSchedule::Cosine:
      return o.lr() * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(o.epochs())));
  }
  return o.lr();
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

std::vector<torch::Tensor> snapshot_state(torch::nn::Module& module) {
  std::vector<torch::Tensor> state;
  for (const auto& p : module.parameters()) state.push_back(p.detach().clone());
  for (const auto& b : module.buffers()) state.push_back(b.detach().clone());
  return state;
}

void restore_state(torch::nn::Module& module, const std::vector<torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : module.parameters()) p.copy_(state.at(i++));
  for (auto& b : module.buffers()) b.copy_(state.at(i++));
}

namespace {

double mean_loss_over(const Data& data, int64_t batch_size, const BatchLoss& loss) {
  const auto weighted = map_batches(data, batch_size, [&](const Batch& batch) {
    return (loss(batch, false).detach().to(torch::kFloat64) * batch.size()).reshape({1});
  });
  return weighted.sum().item<double>() / static_cast<double>(data.size());
}

}  // namespace

TrainResult train_module(torch::nn::Module& module, const Data& train, const Data& validation,
                         const TrainOptions& o, const BatchLoss& loss, const ProgressCallback& progress,
                         const std::string& stage, const EpochHook& on_epoch_start) {
  TrainStep step;
  step.name = "loss";
  step.parameters = module.parameters();
  step.loss = [&loss](const Batch& batch) { return loss(batch, true); };
  return train_steps(module, train, validation, o, {step}, loss, progress, stage, on_epoch_start);
}

TrainResult train_steps(torch::nn::Module& module, const Data& train, const Data& validation,
                        const TrainOptions& o, const std::vector<TrainStep>& steps, const BatchLoss& validation_loss,
                        const ProgressCallback& progress, const std::string& stage,
                        const EpochHook& on_epoch_start, int64_t first_monitored_epoch) {
  check_options(o);
  ADX_CHECK_AS(OptionError, o.epochs() >= 1, "epochs must be >= 1, got {}", o.epochs());
  const auto& kind = train.input_kind();
  const int64_t n = kind.size(train);
  ADX_CHECK_AS(ShapeError, n >= 2, "training needs at least 2 items, got {}", n);
  ADX_CHECK(!steps.empty(), "{}: training needs at least one optimisation step", stage);
  for (const auto& step : steps)
    ADX_CHECK_AS(OptionError, step.every >= 1, "{}: step '{}' must run every >= 1 batches, got {}", stage,
                 step.name, step.every);
  std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
  for (const auto& step : steps) optimizers.push_back(make_optimizer(step.parameters, o));
  const bool validate = validation.size() > 0;
  const int64_t batch_size = std::min(o.batch_size(), n);
  TrainResult result;
  std::vector<torch::Tensor> best_state;
  double best = std::numeric_limits<double>::infinity();
  int64_t since_best = 0;
  int64_t batch_index = 0;  // counts across epochs, so a step with `every` > batches per epoch still runs
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(train.x.device());

  for (int64_t epoch = 0; epoch < o.epochs(); ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(o, epoch);
    for (size_t k = 0; k < optimizers.size(); ++k) set_learning_rate(*optimizers[k], lr * steps[k].lr_scale);
    if (on_epoch_start) on_epoch_start(epoch);
    module.train();
    const auto order = o.shuffle() ? torch::randperm(n, torch::TensorOptions().dtype(torch::kLong))
                                   : torch::arange(n, torch::TensorOptions().dtype(torch::kLong));
    std::vector<torch::Tensor> totals(steps.size(), torch::zeros({}, f64));
    std::vector<int64_t> counted(steps.size(), 0);
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t end = std::min(n, begin + batch_size);
      // A trailing batch of one item breaks batch statistics; it joins the next epoch's shuffle.
      if (end - begin < 2) continue;
      const auto batch = kind.collate(o.shuffle() ? kind.select(train, order.slice(0, begin, end))
                                                  : kind.slice(train, begin, end));
      for (size_t k = 0; k < steps.size(); ++k) {
        if ((batch_index + 1) % steps[k].every != 0) continue;
        optimizers[k]->zero_grad();
        auto value = steps[k].loss(batch);
        value.backward();
        if (o.grad_clip() > 0) torch::nn::utils::clip_grad_norm_(steps[k].parameters, o.grad_clip());
        optimizers[k]->step();
        totals[k] += value.detach().to(torch::kFloat64) * (end - begin);
        counted[k] += end - begin;
        if (steps[k].after_step) steps[k].after_step(value.detach());
      }
      ++batch_index;
    }
    std::vector<double> means;
    for (size_t k = 0; k < steps.size(); ++k) {
      means.push_back(totals[k].item<double>() / static_cast<double>(std::max<int64_t>(1, counted[k])));
      if (!std::isfinite(means[k]))
        throw TrainingError(fmt::format("{}: {} became {} in epoch {}; training diverged, no weights were kept. "
                                        "Lower the learning rate (now {}) or check the input scaling",
                                        stage, steps.size() == 1 ? "training loss" : steps[k].name + " loss",
                                        means[k], epoch + 1, lr));
    }
    const double train_loss = means.front();
    result.train_losses.push_back(train_loss);
    EpochReport report;
    report.epoch = epoch + 1;
    report.epochs = o.epochs();
    report.train_loss = train_loss;
    report.learning_rate = lr;
    report.stage = stage;
    if (validate) {
      module.eval();
      const double val_loss = mean_loss_over(validation, std::max<int64_t>(batch_size, 1024), validation_loss);
      result.val_losses.push_back(val_loss);
      report.val_loss = val_loss;
      if (epoch < first_monitored_epoch) {
        // Warm-up: reported, but neither a candidate for the best state nor counted toward patience.
      } else if (std::isfinite(val_loss) && val_loss < best - o.min_delta()) {
        best = val_loss;
        result.best_epoch = epoch + 1;
        best_state = snapshot_state(module);
        since_best = 0;
        report.improved = true;
      } else {
        ++since_best;
      }
    }
    result.epochs_run = epoch + 1;
    const bool stop = validate && o.patience() > 0 && since_best >= o.patience();
    report.last = stop || epoch + 1 == o.epochs();
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress) progress(report);
    if (stop) {
      result.stopped_early = true;
      break;
    }
  }
  if (validate && !best_state.empty()) {
    restore_state(module, best_state);
    result.best_val_loss = best;
  }
  module.eval();
  return result;
}

}  // namespace adx
