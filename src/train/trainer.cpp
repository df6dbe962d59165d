#include <adx/core/distributed.hpp>
#include <adx/core/error.hpp>
#include <adx/train/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_set>

namespace adx {

void TrainOptions::check(const std::string& prefix) const {
  // Counts up to 1e9 and rates up to 1e6: larger values are typing mistakes, not settings.
  constexpr int64_t kMaxCount = 1000000000;
  OptionChecks(prefix)
      .in("epochs", epochs(), int64_t{0}, kMaxCount)
      .in("batch_size", batch_size(), int64_t{1}, kMaxCount)
      .in("micro_batches", micro_batches(), int64_t{1}, int64_t{1000000})
      .in("lr", lr(), 0.0, 1e6, "(]")
      .in("weight_decay", weight_decay(), 0.0, 1e6)
      .in("beta1", beta1(), 0.0, 1.0, "[)")
      .in("beta2", beta2(), 0.0, 1.0, "[)")
      .in("lr_step", lr_step(), int64_t{1}, kMaxCount)
      .in("lr_step_delay", lr_step_delay(), int64_t{0}, kMaxCount)
      .in("lr_gamma", lr_gamma(), 0.0, 1.0, "(]")
      .in("patience", patience(), int64_t{0}, kMaxCount)
      .at_least("min_delta", min_delta(), 0.0)
      .at_least("grad_clip", grad_clip(), 0.0);
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
    case LrSchedule::Step: {
      const int64_t counted = std::max<int64_t>(0, epoch - o.lr_step_delay());
      return o.lr() * std::pow(o.lr_gamma(), static_cast<double>(counted / std::max<int64_t>(1, o.lr_step())));
    }
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

// The validation loss's mean over `data`: one value per criterion (a BatchLoss may return several).
std::vector<double> mean_loss_over(const Data& data, int64_t batch_size, const BatchLoss& loss, ProcessGroup* group) {
  const auto& kind = data.input_kind();
  const int64_t n = kind.size(data);
  // Under a process group each rank scores its share and the sums meet in one all-reduce.
  const auto [begin, end] = share_of(group, n);
  torch::Tensor total;
  if (end > begin) {
    const auto share = group == nullptr ? data : kind.slice(data, begin, end);
    const auto weighted = map_batches(share, batch_size, [&](const Batch& batch) {
      const auto value = loss(batch, false).detach().to(torch::kFloat64) * batch.size();
      return value.reshape({1, value.numel()});
    });
    total = weighted.sum(0).cpu();
  } else {
    // A rank with no share still needs the number of criteria for the all-reduce: one item's loss tells it.
    total = torch::zeros({loss(kind.collate(kind.slice(data, 0, 1)), false).numel()}, torch::kFloat64);
  }
  if (group) group->all_reduce_sum(total);
  total /= static_cast<double>(n);
  return std::vector<double>(total.data_ptr<double>(), total.data_ptr<double>() + total.numel());
}

// BatchNorm's running statistics, which each part of a split batch updates from the same start and
// which then take the parts' mean.
struct RunningStatistics {
  std::vector<torch::Tensor> averaged;  // running_mean, running_var
  std::vector<torch::Tensor> counters;  // num_batches_tracked
  std::vector<torch::Tensor> start, sums;

  explicit RunningStatistics(torch::nn::Module& module) {
    for (const auto& b : module.named_buffers()) {
      const auto& name = b.key();
      const auto ends_with = [&](const std::string& suffix) {
        return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (ends_with("running_mean") || ends_with("running_var")) averaged.push_back(b.value());
      else if (ends_with("num_batches_tracked")) counters.push_back(b.value());
    }
  }
  void begin_step() {
    start.clear();
    sums.clear();
    for (const auto& t : averaged) {
      start.push_back(t.detach().clone());
      sums.push_back(torch::zeros_like(t));
    }
    for (const auto& t : counters) start.push_back(t.detach().clone());
  }
  // Before each part: back to the step's start, so every part updates from the same values.
  void begin_part() {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& t : averaged) t.copy_(start[i++]);
    for (auto& t : counters) t.copy_(start[i++]);
  }
  void end_part() {
    for (size_t i = 0; i < averaged.size(); ++i) sums[i] += averaged[i].detach();
  }
  // `reduced`: the parts' sums of every rank, in the order of flat_sums(); sets the means.
  torch::Tensor flat_sums() const {
    std::vector<torch::Tensor> flat;
    for (const auto& t : sums) flat.push_back(t.reshape({-1}));
    return flat.empty() ? torch::Tensor() : torch::cat(flat);
  }
  void set_means(const torch::Tensor& reduced, int64_t parts) {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (auto& t : averaged) {
      t.copy_(reduced.slice(0, offset, offset + t.numel()).view_as(t) / static_cast<double>(parts));
      offset += t.numel();
    }
  }
};

// The gradients of `parameters` that backward defined, the step's loss and the running-statistics sums,
// in one buffer for one all-reduce; written back after it.
void all_reduce_step(ProcessGroup& group, const std::vector<torch::Tensor>& parameters, torch::Tensor& loss,
                     RunningStatistics* statistics, int64_t parts) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : parameters)
    if (p.grad().defined()) flat.push_back(p.grad().reshape({-1}).to(torch::kFloat32));
  flat.push_back(loss.reshape({1}).to(torch::kFloat32));
  torch::Tensor statistic_sums;
  if (statistics) {
    statistic_sums = statistics->flat_sums();
    if (statistic_sums.defined()) flat.push_back(statistic_sums.to(torch::kFloat32));
  }
  auto buffer = torch::cat(flat);
  group.all_reduce_sum(buffer);
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    auto grad = p.grad();
    grad.copy_(buffer.slice(0, offset, offset + grad.numel()).view_as(grad));
    offset += grad.numel();
  }
  loss = buffer.slice(0, offset, offset + 1).reshape({}).to(loss.options());
  offset += 1;
  if (statistics && statistic_sums.defined()) statistics->set_means(buffer.slice(0, offset), parts);
}

// A seed for part `part` of gradient step `step` (splitmix64 of the run's base): a split batch draws its
// dropout and noise per part from that part's own seed, so a part draws the same wherever it runs.
uint64_t part_seed(uint64_t base, int64_t step, int64_t part, int64_t parts) {
  uint64_t z = base + static_cast<uint64_t>(step) * static_cast<uint64_t>(parts + 1) + static_cast<uint64_t>(part) +
               0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Every rank starts from rank 0's parameters and buffers.
void broadcast_state(ProcessGroup& group, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    auto data = p.detach();
    group.broadcast(data, 0);
  }
  for (auto& b : module.buffers()) group.broadcast(b, 0);
}

// While it lives, the module's parameters that a step does not update record no gradients
// (TrainStep::only_own_gradients): the step's optimiser never reads them.
class OnlyUpdatedParametersLearn {
 public:
  OnlyUpdatedParametersLearn(torch::nn::Module& module, const std::vector<torch::Tensor>& updated) {
    std::unordered_set<const void*> learning;
    for (const auto& p : updated) learning.insert(p.unsafeGetTensorImpl());
    for (auto& p : module.parameters())
      if (p.requires_grad() && !learning.count(p.unsafeGetTensorImpl())) {
        p.requires_grad_(false);
        paused_.push_back(p);
      }
  }
  ~OnlyUpdatedParametersLearn() {
    for (auto& p : paused_) p.requires_grad_(true);
  }
  OnlyUpdatedParametersLearn(const OnlyUpdatedParametersLearn&) = delete;
  OnlyUpdatedParametersLearn& operator=(const OnlyUpdatedParametersLearn&) = delete;

 private:
  std::vector<torch::Tensor> paused_;
};

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
  std::vector<double> best;  // per validation criterion
  int64_t since_best = 0;
  int64_t batch_index = 0;  // counts across epochs, so a step with `every` > batches per epoch still runs
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(train.x.device());
  ProcessGroup* group = current_process_group();
  const int64_t ranks = group ? group->world_size() : 1, rank = group ? group->rank() : 0;
  // Each batch splits into `parts` parts, `micro_batches` of them on every rank.
  const int64_t parts = ranks * o.micro_batches();
  ADX_CHECK_AS(ShapeError, std::min(o.batch_size(), n) >= 2 * parts,
               "{}: batches of {} items cannot give each of {} parts ({} rank(s) x {} micro-batches) 2 items; "
               "use a larger train.batch_size or fewer parts",
               stage, std::min(o.batch_size(), n), parts, ranks, o.micro_batches());
  std::optional<RunningStatistics> statistics;
  if (parts > 1) statistics.emplace(module);
  if (group) broadcast_state(*group, module);
  // The base of the per-part seeds: drawn once, rank 0's for every rank.
  uint64_t seed_base = 0;
  int64_t split_steps = 0;
  if (parts > 1) {
    auto base = torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, torch::kLong);
    if (group) group->broadcast(base, 0);
    seed_base = static_cast<uint64_t>(base.item<int64_t>());
  }

  for (int64_t epoch = 0; epoch < o.epochs(); ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(o, epoch);
    for (size_t k = 0; k < optimizers.size(); ++k) set_learning_rate(*optimizers[k], lr * steps[k].lr_scale);
    if (on_epoch_start) on_epoch_start(epoch);
    module.train();
    auto order = o.shuffle() ? torch::randperm(n, torch::TensorOptions().dtype(torch::kLong))
                             : torch::arange(n, torch::TensorOptions().dtype(torch::kLong));
    if (group && o.shuffle()) group->broadcast(order, 0);
    std::vector<torch::Tensor> totals(steps.size(), torch::zeros({}, f64));
    std::vector<int64_t> counted(steps.size(), 0);
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t end = std::min(n, begin + batch_size);
      // A trailing batch that cannot give every part 2 items breaks batch statistics; it joins the next
      // epoch's shuffle.
      if (end - begin < 2 * parts) continue;
      const auto part_batch = [&](int64_t part) {
        const int64_t from = begin + (end - begin) * part / parts, to = begin + (end - begin) * (part + 1) / parts;
        return kind.collate(o.shuffle() ? kind.select(train, order.slice(0, from, to)) : kind.slice(train, from, to));
      };
      // This rank's parts, made once: every step of the batch sees the same part tensors.
      std::vector<Batch> local_parts;
      for (int64_t part = rank * o.micro_batches(); part < (rank + 1) * o.micro_batches(); ++part)
        local_parts.push_back(part_batch(part));
      for (size_t k = 0; k < steps.size(); ++k) {
        if ((batch_index + 1) % steps[k].every != 0) continue;
        optimizers[k]->zero_grad();
        torch::Tensor value;
        std::optional<OnlyUpdatedParametersLearn> only_updated;
        if (steps[k].only_own_gradients) only_updated.emplace(module, steps[k].parameters);
        if (parts == 1) {
          value = steps[k].loss(local_parts.front());
          value.backward();
        } else {
          // Each part's loss weighted by its share of the batch: the gradients add up to the batch mean's.
          statistics->begin_step();
          value = torch::zeros({}, f64);
          for (int64_t local = 0; local < o.micro_batches(); ++local) {
            statistics->begin_part();
            torch::manual_seed(part_seed(seed_base, split_steps, rank * o.micro_batches() + local, parts));
            const auto& batch = local_parts[local];
            auto weighted = steps[k].loss(batch) * (static_cast<double>(batch.size()) / static_cast<double>(end - begin));
            weighted.backward();
            statistics->end_part();
            value = value + weighted.detach().to(torch::kFloat64);
          }
          // Every rank leaves the step with the same generator state.
          torch::manual_seed(part_seed(seed_base, split_steps, parts, parts));
          ++split_steps;
          if (group) {
            all_reduce_step(*group, steps[k].parameters, value, &*statistics, parts);
          } else {
            statistics->set_means(statistics->flat_sums(), parts);
          }
        }
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
      const auto val = mean_loss_over(validation, std::max<int64_t>(batch_size, 1024), validation_loss, group);
      const double val_loss = val.front();
      result.val_losses.push_back(val_loss);
      report.val_loss = val_loss;
      // An improvement lowers every criterion by more than min_delta (with several, as the Anomaly
      // Transformer's reference stops when either of its two losses stops improving).
      bool improved = std::all_of(val.begin(), val.end(), [](double v) { return std::isfinite(v); });
      for (size_t c = 0; improved && c < best.size(); ++c) improved = val[c] < best[c] - o.min_delta();
      if (epoch < first_monitored_epoch) {
        // Warm-up: reported, but neither a candidate for the best state nor counted toward patience.
      } else if (improved) {
        best = val;
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
    result.best_val_loss = best.front();
  }
  module.eval();
  return result;
}

}  // namespace adx
