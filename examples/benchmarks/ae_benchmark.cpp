// Speed benchmark: adx's autoencoder against the same autoencoder written in
// Python with PyTorch, both on one-vs-rest Fashion-MNIST, timed in one run.
//
//   ae_benchmark [--class 0] [--epochs 20] [--threads 2] [--repeats 2] [--python /usr/bin/python3]
//
// Settings on both sides: MLP 784-128-64-32-16 (mirrored decoder), BatchNorm,
// ReLU, Dropout 0.1, batch 256, Adam lr 1e-3, weight decay 1e-5, min-max
// scaling, no validation split. Each side runs `repeats` times, alternating,
// and the fastest run of each counts.
#include "common/one_vs_rest.hpp"
#include "common/reference.hpp"

#include <iostream>


using adx::examples::json_number;
using adx::examples::Timing;

int main(int argc, char** argv) {
  int64_t normal_class = 0, epochs = 20, threads = 2, repeats = 2;
  std::string python = "/usr/bin/python3", data_dir = adx::kFashionMnistDir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--class") normal_class = std::stoll(v);
    else if (a == "--epochs") epochs = std::stoll(v);
    else if (a == "--threads") threads = std::stoll(v);
    else if (a == "--repeats") repeats = std::stoll(v);
    else if (a == "--python") python = v;
    else if (a == "--data") data_dir = v;
    else { std::cerr << "unknown argument " << a << "\n"; return 2; }
  }
  try {
    adx::set_num_threads(static_cast<int>(threads));
    const auto train = adx::load_mnist_split(data_dir, "train");
    const auto test = adx::load_mnist_split(data_dir, "t10k");
    const adx::OptionMap options{{"hidden", "128,64,32"},        {"bottleneck", "16"},
                                 {"dropout", "0.1"},             {"train.batch_size", "256"},
                                 {"train.lr", "0.001"},          {"train.weight_decay", "0.00001"},
                                 {"train.epochs", std::to_string(epochs)},
                                 {"train.patience", "0"},        {"runtime.validation_fraction", "0"},
                                 {"runtime.threads", std::to_string(threads)}};
    std::cout << fmt::format("autoencoder benchmark: class {}, {} epochs, {} thread(s), {} repeat(s)\n",
                             normal_class, epochs, threads, repeats);
    Timing adx_t, py_loader, py_tensor, py_tuned;
    const std::string command =
        fmt::format("{} {}/ae_reference.py --data {} --normal-class {} --epochs {} --threads {}", python,
                    ADX_BENCHMARK_DIR, data_dir, normal_class, epochs, threads);
    for (int64_t r = 0; r < repeats; ++r) {
      for (const auto& line : adx::examples::run_reference(command)) {
        auto& slot = line.find("dataloader") != std::string::npos   ? py_loader
                     : line.find("tensor-tuned") != std::string::npos ? py_tuned
                                                                       : py_tensor;
        slot.keep_best(json_number(line, "train_seconds"), json_number(line, "score_seconds"),
                       json_number(line, "auroc"));
      }
      const auto res = adx::examples::run_one_vs_rest("autoencoder", options, train, test, normal_class,
                                                      adx::kinds::kTabular);
      adx_t.keep_best(res.train_seconds, static_cast<double>(test.images.size(0)) / res.score_items_per_second,
                res.auroc);
    }
    adx::examples::print_comparison(adx_t, {{"DataLoader (PyOD style)", py_loader},
                                            {"plain tensors", py_tensor},
                                            {"plain tensors, tuned threads", py_tuned}});
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
