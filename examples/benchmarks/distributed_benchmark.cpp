// Data-parallel training on this machine: the same training (same global
// batches, same epochs) as 1 process with 2 threads, 1 process with 1 thread,
// and 2 processes of 1 thread each joined by c10d's Gloo group on 127.0.0.1.
// Reports seconds per epoch, the collectives' time per step and the bytes each
// step all-reduces, from which the scaling across machines can be estimated.
// Then PatchCore's sharded memory bank: one fitted model scored whole by 1
// process, and split between 2 processes (each embeds half of every batch and
// searches its half of the bank), with the collectives' time per image.
//
//   distributed_benchmark [--models conv_autoencoder,ganomaly] [--class 0] [--epochs 2] [--batch 64]
//                         [--patchcore-train 1000] [--patchcore-test 400]
//
// The program is its own worker: with ADX_BENCH_WORKER set it joins the group from the environment.
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>

#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>

extern char** environ;

namespace {

adx::OptionMap options_for(const std::string& model, int64_t epochs, int64_t batch, int64_t threads) {
  adx::OptionMap o{{"train.epochs", std::to_string(epochs)}, {"train.batch_size", std::to_string(batch)},
                   {"train.patience", "0"}, {"runtime.validation_fraction", "0"},
                   {"runtime.threads", std::to_string(threads)}, {"runtime.seed", "1"}};
  if (model == "ganomaly") o["width"] = "32";
  return o;
}

torch::Tensor normal_images(int64_t normal_class) {
  const auto train = adx::load_mnist_split(adx::kFashionMnistDir, "train");
  return train.images.index({train.labels == normal_class});
}

struct Run {
  double seconds = 0, communication = 0;
};

// PatchCore's images: Fashion-MNIST at 64 px, so that ResNet-18's layer 2 gives an 8 x 8 patch grid.
torch::Tensor at_64_pixels(const torch::Tensor& images) {
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions().size(std::vector<int64_t>{64, 64}).mode(torch::kBilinear)
                                    .align_corners(false));
}
// The first `count` test images; class 0 is normal, the other classes anomalies (labels 1).
torch::Tensor patchcore_test_images(int64_t count, std::vector<int>* anomalous = nullptr) {
  const auto test = adx::load_mnist_split(adx::kFashionMnistDir, "t10k");
  if (anomalous) {
    const auto labels = test.labels.slice(0, 0, count).to(torch::kLong).contiguous();
    for (int64_t i = 0; i < labels.size(0); ++i) anomalous->push_back(labels[i].item<int64_t>() != 0 ? 1 : 0);
  }
  return at_64_pixels(test.images.slice(0, 0, count));
}
std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}
adx::OptionMap patchcore_options(int64_t threads) {
  return {{"backbone", "resnet18"}, {"coreset_ratio", "0.1"}, {"runtime.threads", std::to_string(threads)},
          {"runtime.seed", "1"}};
}

Run score_here(adx::Detector& detector, const torch::Tensor& images, torch::Tensor* scores) {
  detector.score(adx::Data::images(images.slice(0, 0, 16)));  // warm-up: a fresh process's first batch is slower
  auto* group = adx::current_process_group();
  const double before = group ? group->communication_seconds() : 0.0;
  const auto start = std::chrono::steady_clock::now();
  *scores = detector.score(adx::Data::images(images)).per_item;
  Run run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (group) run.communication = group->communication_seconds() - before;
  return run;
}

Run fit_here(const std::string& model, const adx::OptionMap& options, const torch::Tensor& images) {
  auto detector = adx::make_detector(model, options);
  const auto start = std::chrono::steady_clock::now();
  detector->fit(adx::Data::images(images));
  Run run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (auto* group = adx::current_process_group()) run.communication = group->communication_seconds();
  return run;
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(s);
  return ntohs(address.sin_port);
}

pid_t spawn_self(const std::vector<std::string>& extra, char* self) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.insert(env.end(), extra.begin(), extra.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {self, nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0)
    throw adx::Error("cannot start a worker process");
  return pid;
}

int worker() {
  const std::string model = std::getenv("ADX_BENCH_WORKER");
  auto group = adx::init_distributed_from_environment();
  if (model == "patchcore_shards") {  // the parent's model, split between the ranks
    auto detector = adx::load(std::getenv("ADX_BENCH_MODEL"));
    dynamic_cast<adx::Patchcore&>(*detector).shard_across(*group);
    torch::Tensor scores;
    const auto run = score_here(*detector, patchcore_test_images(std::stoll(std::getenv("ADX_BENCH_TEST"))), &scores);
    std::ofstream(std::getenv("ADX_BENCH_OUT")) << run.seconds << " " << run.communication << " "
                                                 << dynamic_cast<adx::Patchcore&>(*detector).memory_bank().size(0)
                                                 << "\n";
    if (group->rank() == 0) torch::save(scores, std::string(std::getenv("ADX_BENCH_OUT")) + ".pt");
    return 0;
  }
  const auto run = fit_here(model,
                            options_for(model, std::stoll(std::getenv("ADX_BENCH_EPOCHS")),
                                        std::stoll(std::getenv("ADX_BENCH_BATCH")), 1),
                            normal_images(std::stoll(std::getenv("ADX_BENCH_CLASS"))));
  std::ofstream(std::getenv("ADX_BENCH_OUT")) << run.seconds << " " << run.communication << "\n";
  return 0;
}

// Starts 2 ranks of this program on 127.0.0.1 with `extra` in their environment, waits for them, and
// returns the files named by ADX_BENCH_OUT (one per rank).
std::vector<std::string> run_two_ranks(const std::vector<std::string>& extra, char* self) {
  const int port = free_port();
  std::vector<pid_t> ranks;
  std::vector<std::string> outs;
  for (int r = 0; r < 2; ++r) {
    outs.push_back(fmt::format("/tmp/adx_distributed_benchmark_{}_{}.txt", getpid(), r));
    auto env = extra;
    env.insert(env.end(), {"ADX_RANK=" + std::to_string(r), "ADX_WORLD_SIZE=2", "ADX_MASTER_ADDR=127.0.0.1",
                           "ADX_MASTER_PORT=" + std::to_string(port), "ADX_BENCH_OUT=" + outs[r]});
    ranks.push_back(spawn_self(env, self));
  }
  for (auto pid : ranks) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw adx::Error("a worker failed");
  }
  return outs;
}

// One PatchCore model scored whole by 1 process (2 threads, then 1) and sharded between 2 processes.
void sharded_patchcore(int64_t train_count, int64_t test_count, char* self) {
  const auto train = at_64_pixels(normal_images(0).slice(0, 0, train_count));
  std::vector<int> anomalous;
  const auto test = patchcore_test_images(test_count, &anomalous);
  auto detector = adx::make_detector("patchcore", patchcore_options(2));
  detector->fit(adx::Data::images(train));
  const auto path = fmt::format("/tmp/adx_distributed_benchmark_{}_patchcore.adx", getpid());
  detector->save(path);
  const auto& bank = dynamic_cast<const adx::Patchcore&>(*detector).memory_bank();
  // The same model on 1 thread, for the single-process run and for every rank.
  auto file = adx::read_model_file(path);
  file.options["runtime.threads"] = "1";
  const auto one_thread_path = path + ".1thread.adx";
  adx::write_model_file(one_thread_path, file);
  torch::Tensor whole_scores, one_thread_scores;
  const auto two_threads = score_here(*detector, test, &whole_scores);
  const auto one_thread = score_here(*adx::load(one_thread_path), test, &one_thread_scores);
  const auto outs = run_two_ranks({"ADX_BENCH_WORKER=patchcore_shards", "ADX_BENCH_MODEL=" + one_thread_path,
                                   "ADX_BENCH_TEST=" + std::to_string(test_count)},
                                  self);
  Run sharded;
  int64_t shard_rows = 0;
  std::ifstream(outs[0]) >> sharded.seconds >> sharded.communication >> shard_rows;
  torch::Tensor sharded_scores;
  torch::load(sharded_scores, outs[0] + ".pt");
  for (const auto& f : outs) std::remove(f.c_str());
  std::remove((outs[0] + ".pt").c_str());
  std::remove(path.c_str());
  std::remove(one_thread_path.c_str());
  const double n = static_cast<double>(test_count);
  std::cout << fmt::format(
      "\nPatchCore (resnet18, coreset 10%) fitted on {} Fashion-MNIST class-0 images at 64 px: a bank of {} x {}; "
      "{} test images scored\n\n",
      train_count, bank.size(0), bank.size(1), test_count);
  std::cout << "| scoring | bank rows per process | images/s | collective ms per image (rank 0) | image AUROC "
               "(class 0 normal) | largest score difference from the whole bank |\n|---|---|---|---|---|---|\n";
  const double whole_auroc = adx::metrics::roc_auc(anomalous, to_vector(whole_scores));
  std::cout << fmt::format("| 1 process, 2 threads, whole bank | {} | {:.1f} | | {:.4f} | |\n", bank.size(0),
                           n / two_threads.seconds, whole_auroc);
  std::cout << fmt::format("| 1 process, 1 thread, whole bank | {} | {:.1f} | | {:.4f} | |\n", bank.size(0),
                           n / one_thread.seconds, adx::metrics::roc_auc(anomalous, to_vector(one_thread_scores)));
  std::cout << fmt::format("| 2 processes x 1 thread, sharded | {} (rank 0) | {:.1f} | {:.2f} | {:.4f} | {:.3g} |\n",
                           shard_rows, n / sharded.seconds, 1000.0 * sharded.communication / n,
                           adx::metrics::roc_auc(anomalous, to_vector(sharded_scores)),
                           (sharded_scores - whole_scores).abs().max().item<double>());
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("ADX_BENCH_WORKER")) {
    try {
      return worker();
    } catch (const std::exception& e) {
      std::cerr << "worker: " << e.what() << "\n";
      return 1;
    }
  }
  CLI::App app{"1 process against 2 data-parallel processes on this machine"};
  std::vector<std::string> models{"conv_autoencoder", "ganomaly"};
  int64_t normal_class = 0, epochs = 2, batch = 64;
  app.add_option("--models", models, "gradient-trained image detectors")->delimiter(',');
  app.add_option("--class", normal_class, "Fashion-MNIST class used as training data")->capture_default_str();
  app.add_option("--epochs", epochs, "epochs")->capture_default_str();
  app.add_option("--batch", batch, "global batch size")->capture_default_str();
  int64_t patchcore_train = 1000, patchcore_test = 400;
  app.add_option("--patchcore-train", patchcore_train, "PatchCore's training images (0: skip PatchCore)")
      ->capture_default_str();
  app.add_option("--patchcore-test", patchcore_test, "PatchCore's test images")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const auto images = normal_images(normal_class);
    const int64_t n = images.size(0);
    std::cout << fmt::format("Fashion-MNIST class {}: {} images, {} epochs, global batch {}\n\n", normal_class, n,
                             epochs, batch);
    std::cout << "| model | parameters | 1 process, 2 threads: s/epoch | 1 process, 1 thread: s/epoch | "
                 "2 processes x 1 thread: s/epoch | speed-up vs 2 threads | all-reduces per step | collective ms "
                 "per step (rank 0) | MB all-reduced per step |\n|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& model : models) {
      if (model.empty()) continue;  // --models "" runs PatchCore only
      const auto two_threads = fit_here(model, options_for(model, epochs, batch, 2), images);
      const auto one_thread = fit_here(model, options_for(model, epochs, batch, 1), images);
      const auto outs = run_two_ranks({"ADX_BENCH_WORKER=" + model, "ADX_BENCH_EPOCHS=" + std::to_string(epochs),
                                       "ADX_BENCH_BATCH=" + std::to_string(batch),
                                       "ADX_BENCH_CLASS=" + std::to_string(normal_class)},
                                      argv[0]);
      Run data_parallel;
      std::ifstream(outs[0]) >> data_parallel.seconds >> data_parallel.communication;
      for (const auto& f : outs) std::remove(f.c_str());
      // Parameters: one model's trainable tensors, read from a file it writes.
      auto probe = adx::make_detector(model, options_for(model, 1, batch, 2));
      probe->fit(adx::Data::images(images.slice(0, 0, 2 * batch)));
      const auto path = fmt::format("/tmp/adx_distributed_benchmark_{}.adx", getpid());
      probe->save(path);
      int64_t parameters = 0;
      for (const auto& [key, t] : adx::read_model_file(path).tensors)
        if (key.rfind("model.", 0) == 0 && t.is_floating_point() && key.find("running_") == std::string::npos)
          parameters += t.numel();
      std::remove(path.c_str());
      const int64_t steps_per_epoch = n / batch + ((n % batch) >= 4 ? 1 : 0);
      const int64_t reduces = model == "ganomaly" ? 2 : 1;  // one per optimiser
      const double steps = static_cast<double>(epochs * steps_per_epoch);
      std::cout << fmt::format("| {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.2f}x | {} | {:.2f} | {:.2f} |\n", model,
                               parameters, two_threads.seconds / epochs, one_thread.seconds / epochs,
                               data_parallel.seconds / epochs, two_threads.seconds / data_parallel.seconds, reduces,
                               1000.0 * data_parallel.communication / steps,
                               4.0 * static_cast<double>(parameters) / 1e6);
    }
    if (patchcore_train > 0) sharded_patchcore(patchcore_train, patchcore_test, argv[0]);
  } catch (const std::exception& e) {
    std::cerr << "distributed_benchmark: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
