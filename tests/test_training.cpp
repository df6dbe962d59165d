// Behaviour of the shared training loop and of options that nothing else checks:
// early stopping restores the best epoch exactly, every training option changes the
// training, schedules follow their formulas, nu bounds the soft boundary from both
// sides, and scores agree across thread counts.
#include "test_helpers.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using adx::test::temp_path;

namespace {

std::vector<torch::Tensor> copies(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p.detach().clone());
  return out;
}

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

// Scores of an autoencoder trained with `options` on fixed data (seeded, 1 thread).
torch::Tensor autoencoder_scores(adx::OptionMap options) {
  torch::manual_seed(11);
  const auto train = torch::randn({200, 6});
  const auto test = torch::randn({50, 6});
  options["runtime.threads"] = "1";
  options["runtime.seed"] = "5";
  options["train.epochs"] = "6";
  options["train.batch_size"] = "32";
  options["train.patience"] = "0";
  auto detector = adx::make_detector("autoencoder", options);
  detector->fit(adx::Data::tabular(train));
  return detector->score(adx::Data::tabular(test)).per_item;
}

}  // namespace

TEST_CASE("early stopping restores exactly the weights of the best epoch", "[training]") {
  torch::manual_seed(3);
  auto model = torch::nn::Linear(4, 1);
  const auto x = torch::randn({256, 4}), y = x.matmul(torch::randn({4, 1})) + 0.3 * torch::randn({256, 1});
  const auto vx = torch::randn({128, 4}), vy = vx.matmul(torch::randn({4, 1}));  // a different relation: val loss turns
  auto data = adx::Data::tabular(torch::cat({x, y}, 1));
  auto validation = adx::Data::tabular(torch::cat({vx, vy}, 1));
  std::vector<torch::Tensor> best_weights;
  int64_t best_epoch = 0;
  auto options = adx::TrainOptions().epochs(200).batch_size(32).lr(0.05).patience(4).weight_decay(0);
  const auto result = adx::train_module(
      *model, data, validation, options,
      [&](const adx::Batch& batch, bool) {
        const auto in = batch.x.slice(1, 0, 4), target = batch.x.slice(1, 4, 5);
        return (model->forward(in) - target).pow(2).mean();
      },
      [&](const adx::EpochReport& report) {
        if (report.improved) {
          best_weights = copies(*model);
          best_epoch = report.epoch;
        }
      });
  INFO("best epoch " << result.best_epoch << " of " << result.epochs_run);
  REQUIRE(result.stopped_early);
  REQUIRE(result.best_epoch == best_epoch);
  REQUIRE(result.best_epoch < result.epochs_run);
  REQUIRE(same(copies(*model), best_weights));
}

TEST_CASE("early stopping ignores a warm-up: no epoch before it is kept or counted", "[training]") {
  torch::manual_seed(3);
  const auto x = torch::randn({256, 4}), y = x.matmul(torch::randn({4, 1})) + 0.3 * torch::randn({256, 1});
  const auto vx = torch::randn({128, 4}), vy = vx.matmul(torch::randn({4, 1}));
  auto data = adx::Data::tabular(torch::cat({x, y}, 1));
  auto validation = adx::Data::tabular(torch::cat({vx, vy}, 1));
  auto run = [&](int64_t warm_up, std::vector<int64_t>* improved) {
    torch::manual_seed(5);
    auto model = torch::nn::Linear(4, 1);
    adx::TrainStep step;
    step.name = "regression";
    step.parameters = model->parameters();
    auto loss = [&](const adx::Batch& batch) {
      return (model->forward(batch.x.slice(1, 0, 4)) - batch.x.slice(1, 4, 5)).pow(2).mean();
    };
    step.loss = loss;
    return adx::train_steps(
        *model, data, validation, adx::TrainOptions().epochs(200).batch_size(32).lr(0.05).patience(4).weight_decay(0),
        {step}, [&](const adx::Batch& batch, bool) { return loss(batch); },
        [&](const adx::EpochReport& report) {
          if (report.improved) improved->push_back(report.epoch);
        },
        "train", nullptr, warm_up);
  };
  std::vector<int64_t> plain_improved, warm_improved;
  const auto plain = run(0, &plain_improved);
  const int64_t warm_up = plain.best_epoch + 3;  // the plain run's best epoch lies inside this warm-up
  const auto warm = run(warm_up, &warm_improved);
  INFO("plain best epoch " << plain.best_epoch << ", with a warm-up of " << warm_up << ": " << warm.best_epoch);
  REQUIRE(warm.best_epoch > warm_up);
  REQUIRE(warm.epochs_run >= warm_up + 1);
  REQUIRE(warm_improved.front() == warm_up + 1);  // the first epoch after the warm-up is the first candidate
}

TEST_CASE("early stopping on several criteria: an epoch improves only when every criterion falls", "[training]") {
  // Scripted validation criteria per epoch (a, b): epoch 1 sets the best; 2 lowers a but raises b (no
  // improvement); 3 lowers both (best); 4 and 5 lower a only, and patience 2 stops after epoch 5. On a
  // alone, every epoch would have improved.
  const std::vector<std::pair<double, double>> script{{1.0, 1.0}, {0.5, 1.2}, {0.4, 0.9}, {0.3, 0.95}, {0.2, 0.99},
                                                      {0.1, 0.5}};
  torch::manual_seed(3);
  auto model = torch::nn::Linear(4, 1);
  const auto data = adx::Data::tabular(torch::randn({64, 5})), validation = adx::Data::tabular(torch::randn({16, 5}));
  int64_t epoch = 0;
  adx::TrainStep step;
  step.name = "regression";
  step.parameters = model->parameters();
  step.loss = [&](const adx::Batch& batch) {
    return (model->forward(batch.x.slice(1, 0, 4)) - batch.x.slice(1, 4, 5)).pow(2).mean();
  };
  std::vector<int64_t> improved;
  const auto result = adx::train_steps(
      *model, data, validation, adx::TrainOptions().epochs(6).batch_size(16).patience(2),
      {step},
      [&](const adx::Batch&, bool) {
        const auto& [a, b] = script.at(static_cast<size_t>(epoch));
        return torch::tensor({a, b}, torch::kFloat64);
      },
      [&](const adx::EpochReport& report) {
        if (report.improved) improved.push_back(report.epoch);
      },
      "train", [&](int64_t e) { epoch = e; });
  REQUIRE(improved == std::vector<int64_t>{1, 3});
  REQUIRE(result.best_epoch == 3);
  REQUIRE(result.epochs_run == 5);
  REQUIRE(result.stopped_early);
  REQUIRE(result.val_losses == std::vector<double>{1.0, 0.5, 0.4, 0.3, 0.2});  // the first criterion is reported
  REQUIRE(result.best_val_loss == 0.4);
}

TEST_CASE("a step that records only its own gradients makes the same updates and leaves the others alone",
          "[training]") {
  // A generator (first layer) and a critic (second layer) trained in turn, as a GAN's two steps.
  torch::manual_seed(3);
  const auto data = adx::Data::tabular(torch::randn({64, 4}));
  auto run = [&](bool only_own, std::vector<bool>* critic_graded) {
    torch::manual_seed(5);
    torch::nn::Sequential net(torch::nn::Linear(4, 3), torch::nn::Linear(3, 1));
    auto generator = net[0]->as<torch::nn::Linear>(), critic = net[1]->as<torch::nn::Linear>();
    adx::TrainStep generator_step, critic_step;
    generator_step.name = "generator";
    generator_step.parameters = generator->parameters();
    generator_step.only_own_gradients = only_own;
    generator_step.loss = [&, critic_graded](const adx::Batch& batch) {
      auto loss = critic->forward(torch::tanh(generator->forward(batch.x))).pow(2).mean();
      critic_graded->push_back(critic->weight.requires_grad());
      return loss;
    };
    critic_step.name = "critic";
    critic_step.parameters = critic->parameters();
    critic_step.loss = [&](const adx::Batch& batch) {
      return (critic->forward(torch::tanh(generator->forward(batch.x)).detach()) - 1).pow(2).mean();
    };
    adx::train_steps(*net, data, adx::Data(), adx::TrainOptions().epochs(3).batch_size(16).lr(0.01),
                     {generator_step, critic_step}, nullptr);
    std::vector<torch::Tensor> state;
    for (const auto& p : net->parameters()) {
      REQUIRE(p.requires_grad());  // every parameter learns again after the step
      state.push_back(p.detach().clone());
    }
    return state;
  };
  std::vector<bool> graded_plain, graded_own;
  const auto plain = run(false, &graded_plain), own = run(true, &graded_own);
  REQUIRE(graded_plain.size() == 12);
  REQUIRE(graded_plain.front());
  REQUIRE(graded_own.size() == 12);
  REQUIRE_FALSE(graded_own.front());
  for (size_t i = 0; i < plain.size(); ++i) REQUIRE(torch::equal(plain[i], own[i]));
}

TEST_CASE("learning-rate schedules follow their formulas", "[training]") {
  const double lr = 0.01;
  auto o = adx::TrainOptions().lr(lr).epochs(10);
  for (int64_t e = 0; e < 10; ++e) REQUIRE(adx::scheduled_lr(o, e) == Approx(lr));
  o.lr_schedule(adx::LrSchedule::Step).lr_step(3).lr_gamma(0.5);
  const double step_expected[] = {0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025, 0.0025, 0.00125};
  for (int64_t e = 0; e < 10; ++e) REQUIRE(adx::scheduled_lr(o, e) == Approx(step_expected[e]));
  // Cosine annealing to 0 over the epochs: lr/2 (1 + cos(pi e / E)).
  // A delay holds the full rate for its epochs before the steps start counting.
  o.lr_step_delay(2);
  const double delayed_expected[] = {0.01, 0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025};
  for (int64_t e = 0; e < 10; ++e) REQUIRE(adx::scheduled_lr(o, e) == Approx(delayed_expected[e]));
  o.lr_schedule(adx::LrSchedule::Cosine);
  REQUIRE(adx::scheduled_lr(o, 0) == Approx(lr));
  REQUIRE(adx::scheduled_lr(o, 5) == Approx(lr / 2));
  REQUIRE(adx::scheduled_lr(o, 9) == Approx(lr / 2 * (1 + std::cos(M_PI * 0.9))));
}

TEST_CASE("every training option changes the training", "[training]") {
  const auto baseline = autoencoder_scores({});
  REQUIRE(torch::equal(baseline, autoencoder_scores({})));  // the comparison itself is deterministic
  const std::vector<adx::OptionMap> variants{
      {{"train.optimizer", "adamw"}},
      {{"train.lr_schedule", "cosine"}},
      {{"train.lr_schedule", "step"}, {"train.lr_step", "2"}},
      {{"train.grad_clip", "0.01"}},
      {{"noise", "gaussian"}, {"noise_level", "0.2"}},
      {{"noise", "masking"}, {"noise_level", "0.2"}},
      {{"noise", "dropout"}, {"noise_level", "0.2"}},
      {{"train.weight_decay", "0.1"}},
  };
  for (const auto& variant : variants) {
    INFO(variant.begin()->first << "=" << variant.begin()->second);
    REQUIRE_FALSE(torch::allclose(baseline, autoencoder_scores(variant), 1e-6, 1e-7));
  }
  // AdamW differs from Adam only through weight decay: without it they train identically.
  REQUIRE(torch::equal(autoencoder_scores({{"train.weight_decay", "0"}}),
                       autoencoder_scores({{"train.weight_decay", "0"}, {"train.optimizer", "adamw"}})));
}

TEST_CASE("nu bounds the fraction outside the soft boundary from both sides", "[training][deep_svdd]") {
  // Ruff et al., Prop. 4: nu is an upper bound on the fraction of training items outside the
  // sphere and a lower bound on the fraction on or outside it. R is the (1 - nu) quantile of a
  // batch's training-mode distances, so the check uses full batches and a tiny learning rate:
  // BatchNorm's running statistics then match the batch's, and the last step barely moves phi.
  // The tolerance of 0.02 covers what remains: BatchNorm's running variance is unbiased
  // (n / (n - 1) larger), which shrinks eval-mode distances by about 0.25%, and items lie
  // densely around R.
  torch::manual_seed(2);
  const auto train = torch::randn({400, 5});
  for (const double nu : {0.05, 0.2}) {
    auto detector = adx::make_detector(
        "deep_svdd", {{"objective", "soft_boundary"}, {"nu", std::to_string(nu)}, {"rep_dim", "4"},
                      {"warm_up_epochs", "2"}, {"train.epochs", "60"}, {"train.batch_size", "400"},
                      {"train.lr", "1e-6"}, {"pretrain", "false"}, {"runtime.validation_fraction", "0"},
                      {"runtime.threads", "1"}});
    detector->fit(adx::Data::tabular(train));
    // Soft-boundary scores are ||phi(x) - c||^2 - R^2: positive outside the sphere.
    const auto scores = detector->score(adx::Data::tabular(train)).per_item;
    const double outside = (scores > 0).to(torch::kFloat64).mean().item<double>();
    const double on_or_outside = (scores >= -1e-6 * scores.abs().max().item<double>()).to(torch::kFloat64).mean().item<double>();
    INFO("nu " << nu << ": outside " << outside << ", on or outside " << on_or_outside);
    REQUIRE(outside <= nu + 0.02);
    REQUIRE(on_or_outside >= nu - 0.02);
  }
}

TEST_CASE("scores agree across thread counts", "[training][threads]") {
  const auto tabular = adx::test::easy_tabular();
  const auto images = adx::test::easy_images();
  torch::manual_seed(4);
  const auto rgb_train = torch::rand({6, 3, 32, 32}), rgb_test = torch::rand({4, 3, 32, 32});
  struct Pick {
    std::string name;
    adx::OptionMap options;
    adx::Data train, test;
  };
  const std::vector<Pick> picks{
      {"autoencoder", {{"train.epochs", "3"}}, adx::Data::tabular(tabular.train), adx::Data::tabular(tabular.test)},
      {"deep_svdd", {{"train.epochs", "3"}, {"pretrain_train.epochs", "2"}}, adx::Data::tabular(tabular.train),
       adx::Data::tabular(tabular.test)},
      {"conv_autoencoder", {{"train.epochs", "2"}, {"channels", "8,16"}}, adx::Data::images(images.train),
       adx::Data::images(images.test)},
      {"patchcore", {{"backbone", "resnet18"}}, adx::Data::images(rgb_train), adx::Data::images(rgb_test)},
  };
  for (const auto& pick : picks) {
    INFO(pick.name);
    auto options = pick.options;
    options["runtime.threads"] = "2";
    auto detector = adx::make_detector(pick.name, options);
    detector->fit(pick.train);
    const auto two = detector->score(pick.test).per_item;
    const auto path = temp_path("threads_" + pick.name + ".adx");
    detector->save(path);
    auto file = adx::read_model_file(path);
    file.options["runtime.threads"] = "1";
    auto single = adx::make_detector(file.type, file.options);
    single->restore(file);
    const auto one = single->score(pick.test).per_item;
    REQUIRE(torch::allclose(one, two, 1e-4, 1e-5));
  }
}

TEST_CASE("fit trains even when the caller holds a NoGradGuard", "[training]") {
  torch::NoGradGuard no_grad;
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "2"}, {"runtime.threads", "1"}});
  detector->fit(adx::Data::tabular(torch::randn({64, 4})));
  REQUIRE(detector->fitted());
}
