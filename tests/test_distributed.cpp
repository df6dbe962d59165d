// Data-parallel training on c10d's Gloo process group: 2 processes on
// 127.0.0.1 train the AE, Deep SVDD and GANomaly to the same model file that
// one process writes with the same global batches split the same way
// (train.micro_batches = 2), and build PatchCore's memory bank from their
// shares of the images with a distributed coreset, again the single-process
// file; PatchCore with a sharded bank scores as one process does, and its
// shards make the single-process file again; a rank that never joins, dies, or finds the port taken ends in a clear
// DistributedError within the timeout.
//
// The program is its own worker: started with ADX_TEST_WORKER set, it joins
// the process group from the environment, as `adx fit` would, and fits.
#define CATCH_CONFIG_RUNNER
#include "test_helpers.hpp"

#include <adx/core/distributed.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

using adx::Data;

namespace {

struct Job {
  std::string detector;
  adx::OptionMap options;
};

// Small models, a few epochs, BatchNorm and dropout at their defaults; train.micro_batches is set per run.
Job job(const std::string& name) {
  adx::OptionMap common{{"train.epochs", "3"}, {"train.batch_size", "32"}, {"runtime.threads", "1"},
                        {"runtime.seed", "11"}};
  if (name == "autoencoder") common["bottleneck"] = "4";
  if (name == "deep_svdd") {
    common["rep_dim"] = "8";
    common["pretrain_train.epochs"] = "2";
    common["pretrain_train.batch_size"] = "32";
  }
  if (name == "ganomaly") {
    common["latent"] = "8";
    common["width"] = "8";
  }
  if (name == "patchcore")  // no gradient training: the ranks share the backbone work and the coreset
    common = {{"backbone", "resnet18"}, {"coreset_ratio", "0.2"}, {"runtime.threads", "1"}, {"runtime.seed", "11"}};
  return {name, common};
}

torch::Tensor training_images(const std::string& name) {
  if (name == "patchcore") return adx::test::easy_images_at(64, 41, 10, 10).train;
  return adx::test::easy_images(150, 10, 10).train.clamp(0, 1);
}

// Rows for the coreset test: 37 features (no multiple of a vector width), split unevenly between 2 ranks.
torch::Tensor coreset_points() {
  torch::manual_seed(9);
  return torch::randn({501, 37});
}
constexpr int64_t kRank0Rows = 230;

// PatchCore with its bank in k-means cells, so that the shards' own cells and the whole bank's differ.
Job sharded_patchcore_job() {
  auto j = job("patchcore");
  j.options["search.exact_cells"] = "6";
  return j;
}
torch::Tensor patchcore_test_images() { return adx::test::easy_images_at(64, 2, 10, 10).test; }

// Worker for the sharded bank: fit with shard_bank, score, save; load the single-process file
// (ADX_TEST_SINGLE) and shard it, score, save; load the file the shards wrote (shards again), score. Files
// go to ADX_TEST_DIR; each rank writes its scores and shard sizes there.
void run_sharded_patchcore_worker(adx::ProcessGroup& group) {
  const std::string dir = std::getenv("ADX_TEST_DIR");
  const auto test = Data::images(patchcore_test_images());
  auto j = sharded_patchcore_job();
  j.options["shard_bank"] = "true";
  auto fitted = adx::make_detector(j.detector, j.options);
  fitted->fit(Data::images(training_images("patchcore")));
  const auto fitted_scores = fitted->score(test);
  fitted->save(dir + "/fit.adx");

  auto loaded = adx::load(std::getenv("ADX_TEST_SINGLE"));
  auto& loaded_patchcore = dynamic_cast<adx::Patchcore&>(*loaded);
  const bool whole_before = !loaded_patchcore.sharded();
  loaded_patchcore.shard_across(group);
  const auto loaded_scores = loaded->score(test);
  loaded->save(dir + "/resaved.adx");

  group.barrier();  // rank 0 has written fit.adx
  auto reloaded = adx::load(dir + "/fit.adx");
  const auto& reloaded_patchcore = dynamic_cast<const adx::Patchcore&>(*reloaded);
  const auto reloaded_scores = reloaded->score(test);

  // Ranks passing different images is refused on every rank, and the ranks stay in step.
  bool mismatch_refused = false;
  try {
    reloaded->score(Data::images(patchcore_test_images().slice(0, 0, group.rank() == 0 ? 3 : 2)));
  } catch (const adx::ValueError&) {
    mismatch_refused = true;
  }
  // A bank of one row: rank 0's shard is empty.
  auto tiny = adx::load(dir + "/tiny.adx");
  auto& tiny_patchcore = dynamic_cast<adx::Patchcore&>(*tiny);
  tiny_patchcore.shard_across(group);
  const auto tiny_scores = tiny->score(test).pixel_map;

  const auto& fitted_patchcore = dynamic_cast<const adx::Patchcore&>(*fitted);
  const auto facts = torch::tensor({fitted_patchcore.memory_bank().size(0), fitted_patchcore.bank().total_rows(),
                                    loaded_patchcore.memory_bank().size(0), reloaded_patchcore.memory_bank().size(0),
                                    int64_t{whole_before}, int64_t{reloaded_patchcore.sharded()},
                                    int64_t{mismatch_refused}, tiny_patchcore.memory_bank().size(0)},
                                   torch::kLong);
  torch::save(std::vector<torch::Tensor>{fitted_scores.per_item, fitted_scores.pixel_map, loaded_scores.per_item,
                                         loaded_scores.pixel_map, reloaded_scores.per_item, facts, tiny_scores},
              dir + "/rank" + std::to_string(group.rank()) + ".pt");
}

// Worker: join the group from the environment and fit; rank 0 writes the model file. The coreset worker
// selects from its share of coreset_points() and writes the indices and radius.
int run_worker() {
  try {
    const std::string name = std::getenv("ADX_TEST_WORKER");
    auto group = adx::init_distributed_from_environment();
    if (std::getenv("ADX_TEST_DIE")) std::_Exit(3);  // joined, then gone
    if (name == "patchcore_shards") {
      run_sharded_patchcore_worker(*group);
      return 0;
    }
    if (name == "coreset") {
      const auto points = coreset_points();
      const auto mine = group->rank() == 0 ? points.slice(0, 0, kRank0Rows) : points.slice(0, kRank0Rows);
      const auto coreset = adx::greedy_coreset_distributed(mine, 60, 321, *group);
      std::ofstream out(std::getenv("ADX_TEST_OUT"));
      out.precision(9);
      out << coreset.coverage_radius;
      for (auto i : coreset.indices) out << " " << i;
      return 0;
    }
    auto j = job(name);
    auto detector = adx::make_detector(j.detector, j.options);
    detector->fit(Data::images(training_images(name)));
    detector->save(std::getenv("ADX_TEST_OUT"));
    std::printf("rank %lld: communication %.3f s\n", static_cast<long long>(group->rank()),
                group->communication_seconds());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker failed: %s\n", e.what());
    return 1;
  }
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(s);
  return ntohs(address.sin_port);
}

// Starts this program as a worker with `extra` added to the environment.
pid_t spawn_worker(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.insert(env.end(), extra.begin(), extra.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  char* argv[] = {self.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  return pid;
}

// The worker's exit status, killing it after `seconds`.
int wait_worker(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

std::vector<std::string> rank_environment(int rank, int port, const std::string& name, const std::string& out) {
  return {"ADX_TEST_WORKER=" + name,       "ADX_RANK=" + std::to_string(rank), "ADX_WORLD_SIZE=2",
          "ADX_MASTER_ADDR=127.0.0.1",     "ADX_MASTER_PORT=" + std::to_string(port), "ADX_DIST_TIMEOUT=60",
          "ADX_TEST_OUT=" + out};
}

}  // namespace

TEST_CASE("2 data-parallel processes write the file that one process writes on the same global batches",
          "[distributed]") {
  for (const std::string name : {"autoencoder", "deep_svdd", "ganomaly", "patchcore"}) {
    INFO(name);
    const auto distributed_path = adx::test::temp_path("dp_" + name + "_rank0.adx");
    const auto single_path = adx::test::temp_path("dp_" + name + "_single.adx");
    std::filesystem::remove(distributed_path);
    const int port = free_port();
    const pid_t rank0 = spawn_worker(rank_environment(0, port, name, distributed_path));
    const pid_t rank1 = spawn_worker(rank_environment(1, port, name, adx::test::temp_path("dp_unused.adx")));
    REQUIRE(wait_worker(rank0, 300) == 0);
    REQUIRE(wait_worker(rank1, 60) == 0);
    // Only rank 0 writes.
    REQUIRE(!std::filesystem::exists(adx::test::temp_path("dp_unused.adx")));

    auto j = job(name);
    // Every training stage splits its batches as the 2 ranks do (Deep SVDD pretrains an autoencoder first).
    for (auto& [key, value] : adx::OptionMap(j.options))
      if (key.find("train.") != std::string::npos) j.options[key.substr(0, key.find("train.")) + "train.micro_batches"] = "2";
    auto single = adx::make_detector(j.detector, j.options);
    single->fit(Data::images(training_images(name)));
    single->save(single_path);

    const auto a = adx::read_model_file(distributed_path), b = adx::read_model_file(single_path);
    REQUIRE(a.tensors.size() == b.tensors.size());
    double largest = 0;
    for (const auto& [key, tensor] : b.tensors) {
      INFO(key);
      REQUIRE(a.tensors.count(key));
      REQUIRE(a.tensors.at(key).sizes() == tensor.sizes());
      if (tensor.is_floating_point())
        largest = std::max(largest, (a.tensors.at(key) - tensor).abs().max().item<double>());
      else
        REQUIRE(torch::equal(a.tensors.at(key), tensor));
    }
    INFO("largest difference between the two files' tensors " << largest);
    // Two ranks add two partial gradients, as one process adds its two parts': the same sums, computed at
    // the same shapes. What remains is how the all-reduce rounds its float32 sum against the local
    // accumulation, a few float32 steps per update over these few steps: 1e-6 is about 10 steps of weights
    // near 1, and a wrong split (another batch, a missing part) moves weights by 1e-3 or more.
    REQUIRE(largest <= 1e-6);
    const auto images = name == "patchcore" ? adx::test::easy_images_at(64, 2, 10, 10).test
                                            : adx::test::easy_images(10, 20, 10).test.clamp(0, 1);
    // Weights within 1e-6 give scores within about 1e-6 relative; 1e-5 leaves room for the scores' own
    // float32 arithmetic.
    REQUIRE(torch::allclose(adx::load(distributed_path)->score(Data::images(images)).per_item,
                            single->score(Data::images(images)).per_item, 1e-5, 1e-6));
  }
}

TEST_CASE("a sharded PatchCore bank scores as the whole bank does, and its shards write the whole bank's file",
          "[distributed]") {
  const auto dir = adx::test::temp_path("sharded_patchcore");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto j = sharded_patchcore_job();
  auto single = adx::make_detector(j.detector, j.options);
  single->fit(Data::images(training_images("patchcore")));
  const auto single_path = dir + "/single.adx";
  single->save(single_path);
  const auto test = Data::images(patchcore_test_images());
  const auto expected = single->score(test);
  const int64_t bank_rows = dynamic_cast<const adx::Patchcore&>(*single).memory_bank().size(0);
  auto tiny_options = j.options;
  tiny_options["coreset_ratio"] = "0.0001";  // a bank of one row
  auto tiny = adx::make_detector(j.detector, tiny_options);
  tiny->fit(Data::images(training_images("patchcore")));
  REQUIRE(dynamic_cast<const adx::Patchcore&>(*tiny).memory_bank().size(0) == 1);
  tiny->save(dir + "/tiny.adx");
  const auto tiny_expected = tiny->score(test).pixel_map;  // the image scores are all 0 with one neighbour

  const int port = free_port();
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    auto env = rank_environment(r, port, "patchcore_shards", dir + "/unused");
    env.push_back("ADX_TEST_DIR=" + dir);
    env.push_back("ADX_TEST_SINGLE=" + single_path);
    ranks.push_back(spawn_worker(env));
  }
  for (auto pid : ranks) REQUIRE(wait_worker(pid, 300) == 0);

  // Largest difference relative to the scores' scale. The search and the re-weighting decide every distance
  // with the fixed-order kernel (exact_search.hpp), so a shard adds no rounding of its own; what 1e-6 allows
  // is the backbone, which each rank runs on its share of the images, a batch of another size.
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).abs().max() / b.abs().max()).item<double>();
  };
  int64_t fitted_rows = 0, loaded_rows = 0;
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r);
    std::vector<torch::Tensor> saved;
    torch::load(saved, dir + "/rank" + std::to_string(r) + ".pt");
    REQUIRE(saved.size() == 7);
    const auto facts = saved[5];
    // A shard is a strict part of the bank, and the shards together are the bank.
    REQUIRE(facts[1].item<int64_t>() == bank_rows);
    REQUIRE(facts[0].item<int64_t>() < bank_rows);
    REQUIRE(facts[2].item<int64_t>() < bank_rows);
    REQUIRE(facts[3].item<int64_t>() == facts[2].item<int64_t>());
    fitted_rows += facts[0].item<int64_t>();
    loaded_rows += facts[2].item<int64_t>();
    REQUIRE(facts[4].item<int64_t>() == 1);  // a file without shard_bank loads whole
    REQUIRE(facts[5].item<int64_t>() == 1);  // a file with it loads into shards under a group
    REQUIRE(facts[6].item<int64_t>() == 1);
    REQUIRE(facts[7].item<int64_t>() == (r == 0 ? 0 : 1));  // rank 1 holds the row, rank 0 nothing
    REQUIRE(relative(saved[6], tiny_expected) <= 1e-6);
    const double fitted_image = relative(saved[0], expected.per_item), fitted_map = relative(saved[1], expected.pixel_map);
    const double loaded_image = relative(saved[2], expected.per_item), loaded_map = relative(saved[3], expected.pixel_map);
    const double reloaded_image = relative(saved[4], expected.per_item);
    INFO("relative differences: fitted " << fitted_image << " / " << fitted_map << ", loaded " << loaded_image
                                         << " / " << loaded_map << ", reloaded " << reloaded_image);
    CHECK(fitted_image <= 1e-6);
    CHECK(fitted_map <= 1e-6);
    CHECK(loaded_image <= 1e-6);
    CHECK(loaded_map <= 1e-6);
    CHECK(reloaded_image <= 1e-6);
  }
  REQUIRE(fitted_rows == bank_rows);
  REQUIRE(loaded_rows == bank_rows);

  // The shards of the distributed fit write the single-process file, threshold and cells included.
  const auto a = adx::read_model_file(dir + "/fit.adx"), b = adx::read_model_file(single_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [key, tensor] : b.tensors) {
    INFO(key);
    REQUIRE(a.tensors.count(key));
    REQUIRE(torch::equal(a.tensors.at(key), tensor));
  }
  // The loaded-and-sharded model's file holds the same bank (its rows possibly regrouped) and scores the same.
  auto resaved = adx::load(dir + "/resaved.adx");
  REQUIRE(dynamic_cast<const adx::Patchcore&>(*resaved).memory_bank().size(0) == bank_rows);
  REQUIRE(relative(resaved->score(test).per_item, expected.per_item) <= 1e-6);
}

TEST_CASE("the distributed coreset picks the rows one machine picks", "[distributed]") {
  const int port = free_port();
  std::vector<std::string> files;
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    files.push_back(adx::test::temp_path("coreset_rank" + std::to_string(r) + ".txt"));
    ranks.push_back(spawn_worker(rank_environment(r, port, "coreset", files.back())));
  }
  for (auto pid : ranks) REQUIRE(wait_worker(pid, 120) == 0);
  const auto single = adx::greedy_coreset(coreset_points(), 60, 321);
  for (const auto& file : files) {
    std::ifstream in(file);
    double radius = 0;
    in >> radius;
    std::vector<int64_t> indices;
    for (int64_t i; in >> i;) indices.push_back(i);
    REQUIRE(indices == single.indices);
    REQUIRE(radius == Approx(single.coverage_radius).epsilon(1e-7));
  }
  // Rows on both sides of the split were chosen.
  REQUIRE(std::count_if(single.indices.begin(), single.indices.end(), [](int64_t i) { return i < kRank0Rows; }) > 5);
  REQUIRE(std::count_if(single.indices.begin(), single.indices.end(), [](int64_t i) { return i >= kRank0Rows; }) > 5);
}

TEST_CASE("a batch split into micro-batches takes the whole batch's gradient", "[distributed]") {
  // One step on 10 items as 1, 2 or 3 parts (sizes 5/5 and 3/3/4): the gradient each part adds, weighted
  // by its share, is the whole batch's.
  const auto x = torch::randn({10, 4}, torch::TensorOptions().dtype(torch::kFloat64));
  std::vector<torch::Tensor> gradients;
  for (int64_t parts : {1, 2, 3}) {
    torch::manual_seed(1);
    torch::nn::Linear linear(4, 2);
    linear->to(torch::kFloat64);
    adx::TrainOptions o;
    o.epochs(1).batch_size(10).shuffle(false).micro_batches(parts);
    adx::train_module(*linear, Data::tabular(x), Data{}, o, [&](const adx::Batch& batch, bool) {
      return (linear->forward(batch.x) - 1.0).pow(2).mean();
    });
    gradients.push_back(linear->weight.grad().clone());
  }
  REQUIRE(torch::allclose(gradients[0], gradients[1], 1e-12, 1e-12));
  REQUIRE(torch::allclose(gradients[0], gradients[2], 1e-12, 1e-12));
  REQUIRE(gradients[0].abs().sum().item<double>() > 0.1);
  REQUIRE_THROWS_AS(adx::make_detector("autoencoder", {{"train.micro_batches", "0"}}), adx::OptionError);
}

TEST_CASE("a rank that never joins, dies or finds the port taken is a clear error within the timeout",
          "[distributed][errors]") {
  adx::DistributedOptions o;
  o.world_size = 2;
  o.timeout_seconds = 2;
  // Rank 0 alone: rank 1 never arrives.
  o.master_port = free_port();
  auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_AS(adx::ProcessGroup(o), adx::DistributedError);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("rank 0 waited " << waited << " s");
  REQUIRE(waited < 15);
  // Rank 1 with no rank 0 to meet.
  o.rank = 1;
  o.master_port = free_port();
  start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(adx::ProcessGroup(o), Catch::Contains("rendezvous") && Catch::Contains("rank 1 of 2"));
  waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(waited < 15);

  // The port is taken by another listener.
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(::listen(s, 4) == 0);
  socklen_t length = sizeof(address);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length);
  o.rank = 0;
  o.master_port = ntohs(address.sin_port);
  REQUIRE_THROWS_WITH(adx::ProcessGroup(o), Catch::Contains("already in use"));
  ::close(s);

  // Rank 1 joins and exits: rank 0's next collective fails instead of hanging.
  o.master_port = free_port();
  o.timeout_seconds = 10;
  auto env = rank_environment(1, o.master_port, "autoencoder", adx::test::temp_path("dp_dead.adx"));
  env.push_back("ADX_TEST_DIE=1");
  const pid_t peer = spawn_worker(env);
  adx::ProcessGroup group(o);
  start = std::chrono::steady_clock::now();
  auto t = torch::ones({1000});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  REQUIRE_THROWS_AS(group.all_reduce_sum(t), adx::DistributedError);
  REQUIRE(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 30);
  REQUIRE(wait_worker(peer, 30) == 3);

  // Settings from the environment: malformed values are option errors.
  setenv("ADX_WORLD_SIZE", "2", 1);
  setenv("ADX_RANK", "2", 1);
  REQUIRE_THROWS_WITH(adx::distributed_options_from_environment(), Catch::Contains("ADX_RANK"));
  setenv("ADX_RANK", "1", 1);
  setenv("MASTER_PORT", "70000", 1);
  REQUIRE_THROWS_WITH(adx::distributed_options_from_environment(), Catch::Contains("MASTER_PORT"));
  setenv("ADX_MASTER_PORT", "29511", 1);
  const auto parsed = adx::distributed_options_from_environment();
  REQUIRE(parsed);
  REQUIRE(parsed->rank == 1);
  REQUIRE(parsed->master_port == 29511);
  for (const char* v : {"ADX_WORLD_SIZE", "ADX_RANK", "MASTER_PORT", "ADX_MASTER_PORT"}) unsetenv(v);
  REQUIRE(!adx::distributed_options_from_environment());
}

int main(int argc, char* argv[]) {
  if (std::getenv("ADX_TEST_WORKER")) return run_worker();
  return Catch::Session().run(argc, argv);
}
