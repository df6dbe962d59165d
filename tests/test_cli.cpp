// The `adx` command line end to end: fit -> score -> eval -> info on a CSV and on
// Fashion-MNIST's IDX files, and the exit codes and messages scripts rely on.
#include "test_helpers.hpp"

#include <adx/data/formats/images.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/data/generators/injected_graphs.hpp>
#include <adx/data/generators/synthetic_industrial.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using adx::test::temp_path;

namespace {

struct Run {
  int code = -1;
  std::string output;  ///< stdout and stderr together
};

Run run(const std::string& arguments) {
  const std::string command = std::string(ADX_CLI) + " " + arguments + " 2>&1";
  Run r;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_csv(const std::string& path, const torch::Tensor& x, bool header) {
  std::ofstream out(path);
  if (header) {
    for (int64_t j = 0; j < x.size(1); ++j) out << (j ? "," : "") << "f" << j;
    out << "\n";
  }
  const auto v = x.to(torch::kFloat64).contiguous();
  for (int64_t i = 0; i < v.size(0); ++i) {
    for (int64_t j = 0; j < v.size(1); ++j) out << (j ? "," : "") << v[i][j].item<double>();
    out << "\n";
  }
}

// The JSON document in a command's output (progress lines on stderr come first).
nlohmann::json json_in(const std::string& output) { return nlohmann::json::parse(output.substr(output.find('{'))); }

}  // namespace

TEST_CASE("adx fit, score, eval and info on a CSV", "[cli]") {
  const auto data = adx::test::easy_tabular();
  const auto train = temp_path("cli_train.csv"), test = temp_path("cli_test.csv"), labels = temp_path("cli_labels.csv"),
             model = temp_path("cli_model.adx"), scores = temp_path("cli_scores.csv"),
             options = temp_path("cli_options.json");
  write_csv(train, data.train, true);
  write_csv(test, data.test, true);
  {
    std::ofstream out(labels);
    for (int l : data.labels) out << l << "\n";
    std::ofstream(options) << R"({"train": {"epochs": 30, "batch_size": 64}, "runtime": {"threads": 1, "seed": 3}})";
  }
  auto fit = run("fit autoencoder " + train + " bottleneck=3 --options-file " + options + " -o " + model +
                 " --version-label plant-7 --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  REQUIRE(fit.output.find("wrote " + model) != std::string::npos);

  auto score = run("score " + model + " " + test + " -o " + scores);
  REQUIRE(score.code == 0);
  std::ifstream in(scores);
  std::string line;
  std::getline(in, line);
  REQUIRE(line == "item,score,anomaly");
  int rows = 0;
  while (std::getline(in, line)) ++rows;
  REQUIRE(rows == 250);

  auto eval = run("eval " + model + " " + test + " --labels " + labels + " --format json");
  INFO(eval.output);
  REQUIRE(eval.code == 0);
  const auto metrics = json_in(eval.output);
  REQUIRE(metrics["items"] == 250);
  REQUIRE(metrics["anomalies"] == 50);
  REQUIRE(metrics["auroc"].get<double>() > 0.9);
  REQUIRE(run("eval " + model + " " + test + " --labels " + labels).output.find("| AUROC |") != std::string::npos);
  REQUIRE(metrics["left_out"] == 0);
  REQUIRE(eval.output.find("below chance") == std::string::npos);
  // Labels in scikit-learn's convention (1 = normal) without --normal-label: said, not passed over.
  const auto inverted = temp_path("cli_labels_inverted.csv");
  {
    std::ofstream out(inverted);
    for (int l : data.labels) out << 1 - l << "\n";
  }
  auto warned = run("eval " + model + " " + test + " --labels " + inverted + " --format json");
  REQUIRE(warned.code == 0);
  REQUIRE(warned.output.find("pass --normal-label 1") != std::string::npos);
  REQUIRE(warned.output.find("200 of 250 items are labelled anomalous") != std::string::npos);
  REQUIRE(eval.output.find("labelled anomalous") == std::string::npos);
  REQUIRE(run("eval " + model + " " + test + " --labels " + inverted + " --normal-label 1 --format json")
              .output.find("below chance") == std::string::npos);
  // fit names the normal class, and checks where it will write before it trains.
  auto unnamed = run("fit autoencoder " + test + " --labels " + labels + " -o " + temp_path("x.adx"));
  REQUIRE(unnamed.code == 1);
  REQUIRE(unnamed.output.find("needs --normal-label") != std::string::npos);
  auto nowhere = run("fit autoencoder " + train + " -o /nonexistent_folder/model.adx");
  REQUIRE(nowhere.code == 1);
  REQUIRE(nowhere.output.find("/nonexistent_folder does not exist") != std::string::npos);
  REQUIRE(nowhere.output.find("fitting") == std::string::npos);  // refused before training

  auto info = run("info " + model + " --json");
  REQUIRE(info.code == 0);
  const auto described = json_in(info.output);
  REQUIRE(described["detector"] == "autoencoder");
  REQUIRE(described["version"] == "plant-7");
  REQUIRE(described["training"]["items"] == 600);
  REQUIRE(described["options"]["train.epochs"] == "30");
  REQUIRE(described["options"]["bottleneck"] == "3");
  // The CSV header names the drift features.
  const auto loaded = adx::load(model);
  REQUIRE(loaded->drift_reference().feature_names.front() == "f0");
  REQUIRE(loaded->drift_reference().feature_names.back() == "f15");

  // "-" reads CSV from standard input, and gives the same scores as the file.
  auto piped = run("score " + model + " - < " + test);
  INFO(piped.output);
  REQUIRE(piped.code == 0);
  REQUIRE(piped.output == read_text(scores));
  // --format json: scores, flags and the threshold; a NaN score (an overflow) is null and flagged.
  const auto huge = temp_path("cli_huge.csv");
  write_csv(huge, torch::cat({data.test.slice(0, 0, 2), torch::full({1, 16}, 3e38)}), true);
  auto as_json = run("score " + model + " " + huge + " --format json");
  INFO(as_json.output);
  REQUIRE(as_json.code == 0);
  const auto scored = json_in(as_json.output);
  REQUIRE(scored["scores"].size() == 3);
  REQUIRE(scored["scores"][2].is_null());
  REQUIRE(scored["flags"][2].get<bool>());
  REQUIRE(scored["threshold"].is_number());
  const auto huge_csv = run("score " + model + " " + huge).output;
  const auto last_row = huge_csv.substr(huge_csv.find("\n2,") + 1);
  INFO(last_row);
  REQUIRE(last_row.rfind("2,nan,1", 0) == 0);
  REQUIRE(run("score " + model + " " + huge + " --format yaml").code == 1);
}

TEST_CASE("adx fit and eval on Fashion-MNIST's IDX files, one class as normal", "[cli][slow]") {
  const std::string dir = adx::kFashionMnistDir;
  const auto model = temp_path("cli_fmnist.adx");
  auto fit = run("fit conv_autoencoder " + dir + "/train-images-idx3-ubyte.gz --labels " + dir +
                 "/train-labels-idx1-ubyte.gz --normal-label 1 train.epochs=1 runtime.threads=2 -o " + model + " --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  REQUIRE(fit.output.find("6000 image items of shape [1 x 28 x 28]") != std::string::npos);
  auto eval = run("eval " + model + " " + dir + "/t10k-images-idx3-ubyte.gz --labels " + dir +
                  "/t10k-labels-idx1-ubyte.gz --normal-label 1 --format json");
  INFO(eval.output);
  REQUIRE(eval.code == 0);
  const auto metrics = json_in(eval.output);
  REQUIRE(metrics["items"] == 10000);
  REQUIRE(metrics["anomalies"] == 9000);
  REQUIRE(metrics["auroc"].get<double>() > 0.85);  // trousers against the other nine classes
}

TEST_CASE("adx fits and evaluates a graph from a feature file and an edge list", "[cli]") {
  namespace graph = adx::graph;
  const auto g = graph::inject_structural(graph::make_synthetic_graph({400, 1600, 8, 4, 0.9, 2.5, 1}), 10, 2, 0.0, 5);
  const auto features = temp_path("cli_nodes.csv"), edges = temp_path("cli_edges.csv"),
             labels = temp_path("cli_node_labels.csv"), model = temp_path("cli_graph.adx");
  write_csv(features, g.x, true);
  write_csv(edges, g.edge_index.t(), false);
  {
    std::ofstream out(labels);
    for (int64_t i = 0; i < g.labels.size(0); ++i) out << g.labels[i].item<int64_t>() << "\n";
  }
  auto fit = run("fit structural " + features + " --edges " + edges + " -o " + model + " --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  REQUIRE(fit.output.find("400 graph items") != std::string::npos);
  auto eval = run("eval " + model + " " + features + " --edges " + edges + " --labels " + labels + " --format json");
  INFO(eval.output);
  REQUIRE(eval.code == 0);
  REQUIRE(json_in(eval.output)["anomalies"] == 20);
  REQUIRE(json_in(eval.output)["auroc"].get<double>() > 0.8);  // the injected cliques stand out (0.88)
  REQUIRE(run("fit structural " + features + " --kind graph --quiet").output.find("--edges FILE") != std::string::npos);
}

TEST_CASE("adx fits on a folder of images and writes anomaly maps as PNG", "[cli]") {
  namespace fs = std::filesystem;
  const auto data = adx::test::easy_images(30, 4, 4);
  const auto train_dir = temp_path("cli_images_train"), test_dir = temp_path("cli_images_test"),
             maps_dir = temp_path("cli_maps"), model = temp_path("cli_padim.adx");
  for (const auto& dir : {train_dir, test_dir, maps_dir}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  const auto train = adx::test::nearest_upscale(data.train, 32), test = adx::test::nearest_upscale(data.test, 32);
  for (int64_t i = 0; i < train.size(0); ++i) adx::write_png(fmt::format("{}/{:03d}.png", train_dir, i), train[i]);
  for (int64_t i = 0; i < test.size(0); ++i) adx::write_png(fmt::format("{}/{:03d}.png", test_dir, i), test[i]);
  auto fit = run("fit padim " + train_dir + " backbone=resnet18 runtime.threads=2 -o " + model + " --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  REQUIRE(fit.output.find("30 image items of shape [3 x 32 x 32]") != std::string::npos);
  auto score = run("score " + model + " " + test_dir + " --maps " + maps_dir + " -o " + temp_path("cli_padim.csv"));
  INFO(score.output);
  REQUIRE(score.code == 0);
  for (int i = 0; i < 8; ++i) {
    const auto map = adx::read_mask(fmt::format("{}/map_{:05d}.png", maps_dir, i));
    REQUIRE(map.sizes() == torch::IntArrayRef({1, 32, 32}));
  }
  // A detector without maps says so.
  const auto rows = temp_path("cli_rows.csv"), plain = temp_path("cli_plain.adx");
  write_csv(rows, torch::randn({60, 4}), false);
  REQUIRE(run("fit autoencoder " + rows + " train.epochs=1 -o " + plain + " --quiet").code == 0);
  auto no_maps = run("score " + plain + " " + rows + " --maps " + maps_dir);
  REQUIRE(no_maps.code == 1);
  REQUIRE(no_maps.output.find("makes no anomaly maps") != std::string::npos);
}

TEST_CASE("adx eval reads an MVTec AD test folder: labels from folder names, masks from ground_truth", "[cli]") {
  namespace fs = std::filesystem;
  const auto root = temp_path("cli_mvtec");
  fs::remove_all(root);
  adx::write_synthetic_industrial(
      root, adx::SyntheticOptions{/*image_size=*/32, /*train_images=*/20, /*good_test_images=*/6, /*defects_per_type=*/3});
  const auto category = root + "/tiles", model = temp_path("cli_mvtec_padim.adx");
  auto fit = run("fit padim " + category + "/train/good backbone=resnet18 runtime.threads=2 -o " + model + " --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  auto eval = run("eval " + model + " " + category + "/test --format json");
  INFO(eval.output);
  REQUIRE(eval.code == 0);
  REQUIRE(eval.output.find("labels from the folder names") != std::string::npos);
  const auto metrics = json_in(eval.output);
  int64_t good = 0, images = 0;
  for (const auto& entry : fs::directory_iterator(category + "/test"))
    for (const auto& file : fs::directory_iterator(entry.path())) {
      (void)file;
      ++images;
      good += entry.path().filename() == "good";
    }
  REQUIRE(metrics["items"] == images);
  REQUIRE(metrics["anomalies"] == images - good);
  REQUIRE(metrics["pixel_auroc"].get<double>() > 0.5);
  REQUIRE(metrics["aupro"].get<double>() > 0.0);
  REQUIRE(run("eval " + model + " " + category + "/test").output.find("| pixel AUROC |") != std::string::npos);
  // A defect image whose mask is missing is named.
  fs::path defect_mask;
  for (const auto& entry : fs::recursive_directory_iterator(category + "/ground_truth"))
    if (entry.is_regular_file()) defect_mask = entry.path();
  fs::remove(defect_mask);
  auto missing = run("eval " + model + " " + category + "/test");
  REQUIRE(missing.code == 1);
  REQUIRE(missing.output.find(defect_mask.filename().string()) != std::string::npos);
  REQUIRE(missing.output.find("has no ground-truth mask") != std::string::npos);
}

TEST_CASE("adx exit codes: 0 success, 1 a user error in one line, 2 usage", "[cli]") {
  REQUIRE(run("--help").code == 0);
  REQUIRE(run("fit --help").code == 0);
  REQUIRE(run("list").code == 0);
  REQUIRE(run("list nothing").code == 1);
  // Usage: no subcommand, a missing argument, an unknown flag.
  REQUIRE(run("").code == 2);
  REQUIRE(run("fit").code == 2);
  REQUIRE(run("score model.adx data.csv --bogus").code == 2);
  // User errors: one line on stderr naming what was wrong.
  auto unknown = run("fit nothing " + temp_path("cli_train.csv"));
  REQUIRE(unknown.code == 1);
  REQUIRE(unknown.output.rfind("adx: error: unknown detector 'nothing'", 0) == 0);
  REQUIRE(std::count(unknown.output.begin(), unknown.output.end(), '\n') == 1);
  const auto train = temp_path("cli_small.csv");
  write_csv(train, torch::randn({50, 4}), false);
  auto bad_option = run("fit autoencoder " + train + " epochs=3 --quiet");
  REQUIRE(bad_option.code == 1);
  REQUIRE(bad_option.output.find("unknown option(s): epochs") != std::string::npos);
  REQUIRE(run("fit autoencoder " + train + " notapair --quiet").code == 1);
  auto missing = run("score " + temp_path("no_such_model.adx") + " " + train);
  REQUIRE(missing.code == 1);
  REQUIRE(missing.output.find("no_such_model.adx") != std::string::npos);
  auto foreign = run("info " + train);
  REQUIRE(foreign.code == 1);
  REQUIRE(foreign.output.find("not an adx model file") != std::string::npos);
  auto no_labels = run("eval " + temp_path("cli_model.adx") + " " + train);
  REQUIRE(no_labels.code == 1);
}

namespace {

std::chrono::steady_clock::time_point after_seconds(double seconds) {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Starts `adx serve MODEL --port 0 EXTRA...` with its output in `log`, and waits until it serves; returns
// its pid and port.
std::pair<pid_t, int> start_server(const std::string& model, const std::vector<std::string>& extra,
                                   const std::string& log) {
  std::filesystem::remove(log);  // "serving" must come from this server
  std::vector<std::string> words{ADX_CLI, "serve", model, "--port", "0"};
  words.insert(words.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // only async-signal-safe calls before exec
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(ADX_CLI, argv.data());
    _exit(127);
  }
  const auto until = after_seconds(60);
  while (read_text(log).find("serving") == std::string::npos && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto text = read_text(log);
  INFO(text);
  const auto at = text.find("://127.0.0.1:");
  REQUIRE(at != std::string::npos);
  return {pid, std::stoi(text.substr(at + 13))};
}

// Waits up to `seconds` for `pid` to exit; its wait status, or -1 (then it is killed).
int wait_exit(pid_t pid, double seconds) {
  int status = 0;
  pid_t done = 0;
  const auto until = after_seconds(seconds);
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == pid) return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

}  // namespace

TEST_CASE("adx serve stops cleanly on SIGTERM and SIGINT, every time", "[cli][server]") {
  const auto train = temp_path("cli_serve_train.csv"), model = temp_path("cli_serve_model.adx"),
             state = temp_path("cli_serve_state.adx");
  std::filesystem::remove(state);
  write_csv(train, torch::randn({300, 4}), false);
  const auto fit = run("fit autoencoder " + train + " train.epochs=2 runtime.threads=1 -o " + model + " --quiet");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  // Each try starts a server, waits until it listens, signals it, and needs exit status 0 within 30 s.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int signal_sent = attempt % 2 ? SIGINT : SIGTERM;
    INFO("attempt " << attempt << ", signal " << signal_sent);
    const auto log = temp_path("cli_serve_log_" + std::to_string(attempt) + ".txt");
    const auto server = start_server(model, {"--state", state}, log);
    REQUIRE(kill(server.first, signal_sent) == 0);
    const int status = wait_exit(server.first, 30);
    INFO(read_text(log));
    REQUIRE(status != -1);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(read_text(log).find("adx: stopped") != std::string::npos);
    // --state: the threshold in force is saved on the way out and resumed at the next start.
    REQUIRE(std::filesystem::exists(state));
    REQUIRE((read_text(log).find("resuming the threshold") != std::string::npos) == (attempt > 0));
  }

  SECTION("a request still in flight when the grace period ends does not hold the exit; the state is saved") {
    std::filesystem::remove(state);
    const auto log = temp_path("cli_serve_log_grace.txt");
    const auto server = start_server(model, {"--state", state, "--grace", "1"}, log);
    // A request whose head and first 20 KiB of body have come: a thread reads it, and waits for the rest
    // of the body until the request deadline (30 s).
    const int sock = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(server.second));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    const std::string half = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 100000\r\n\r\n" + std::string(20 * 1024, ' ');
    REQUIRE(send(sock, half.data(), half.size(), MSG_NOSIGNAL) > 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto signalled = std::chrono::steady_clock::now();
    REQUIRE(kill(server.first, SIGTERM) == 0);
    const int status = wait_exit(server.first, 20);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
    close(sock);
    INFO(read_text(log));
    REQUIRE(status != -1);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 1);  // not a clean stop: a request was cut short
    REQUIRE(seconds < 10);
    REQUIRE(read_text(log).find("grace period ended") != std::string::npos);
    REQUIRE(std::filesystem::exists(state));
  }
}
