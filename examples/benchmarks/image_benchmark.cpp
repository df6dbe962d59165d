// Speed benchmark: adx's Deep SVDD, GANomaly and DRAEM against the same models
// written in Python with PyTorch (image_reference.py), on one-vs-rest
// Fashion-MNIST, timed in one run.
//
//   image_benchmark [--models deep_svdd,ganomaly,draem] [--class 0] [--epochs 5] [--pretrain-epochs 5]
//                   [--gan-epochs 1] [--width 64] [--draem-epochs 2] [--draem-train 240] [--draem-test 1000]
//                   [--threads 2] [--repeats 1] [--python /usr/bin/python3]
//
// DRAEM trains on the first --draem-train images of the normal class, resized
// to 128 px, and scores the first --draem-test test images; Python's synthetic
// anomalies are made before its timer (see image_reference.py), so its AUROC
// is not printed.
//
// Both sides use the same architecture, optimiser, batch size and
// preprocessing, no hold-out split and no early stopping (see
// image_reference.py). Runs alternate between the sides; the fastest of each counts.
#include "common/one_vs_rest.hpp"
#include "common/reference.hpp"

#include <iostream>
#include <sstream>


using adx::examples::json_number;
using adx::examples::Timing;

int main(int argc, char** argv) {
  int64_t normal_class = 0, epochs = 5, pretrain_epochs = 5, gan_epochs = 1, width = 64, threads = 2, repeats = 1;
  int64_t draem_epochs = 2, draem_train = 240, draem_test = 1000;
  std::string python = "/usr/bin/python3", data_dir = adx::kFashionMnistDir, models = "deep_svdd,ganomaly,draem";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--class") normal_class = std::stoll(v);
    else if (a == "--epochs") epochs = std::stoll(v);
    else if (a == "--pretrain-epochs") pretrain_epochs = std::stoll(v);
    else if (a == "--gan-epochs") gan_epochs = std::stoll(v);
    else if (a == "--width") width = std::stoll(v);
    else if (a == "--draem-epochs") draem_epochs = std::stoll(v);
    else if (a == "--draem-train") draem_train = std::stoll(v);
    else if (a == "--draem-test") draem_test = std::stoll(v);
    else if (a == "--threads") threads = std::stoll(v);
    else if (a == "--repeats") repeats = std::stoll(v);
    else if (a == "--python") python = v;
    else if (a == "--data") data_dir = v;
    else if (a == "--models") models = v;
    else { std::cerr << "unknown argument " << a << "\n"; return 2; }
  }
  try {
    adx::set_num_threads(static_cast<int>(threads));
    const auto train = adx::load_mnist_split(data_dir, "train");
    const auto test = adx::load_mnist_split(data_dir, "t10k");
    const adx::OptionMap common{{"train.patience", "0"},
                                {"runtime.validation_fraction", "0"},
                                {"runtime.threads", std::to_string(threads)}};
    std::stringstream list(models);
    std::string model;
    while (std::getline(list, model, ',')) {
      adx::OptionMap options = common;
      int64_t reference_epochs = epochs;
      if (model == "deep_svdd") {
        options["train.epochs"] = std::to_string(epochs);
        options["pretrain_train.epochs"] = std::to_string(pretrain_epochs);
        options["pretrain_train.patience"] = "0";
        std::cout << fmt::format("\ndeep_svdd: class {}, {} pretraining + {} training epochs, {} thread(s)\n",
                                 normal_class, pretrain_epochs, epochs, threads);
      } else if (model == "ganomaly") {
        options["train.epochs"] = std::to_string(gan_epochs);
        options["width"] = std::to_string(width);
        reference_epochs = gan_epochs;
        std::cout << fmt::format("\nganomaly: class {}, {} epoch(s), width {}, {} thread(s)\n", normal_class,
                                 gan_epochs, width, threads);
      } else if (model == "draem") {
        options["train.epochs"] = std::to_string(draem_epochs);
        reference_epochs = draem_epochs;
        std::cout << fmt::format("\ndraem: class {}, {} epoch(s) of {} images at 128 px, {} test images, {} thread(s)\n",
                                 normal_class, draem_epochs, draem_train, draem_test, threads);
      } else {
        throw adx::OptionError("image_benchmark knows deep_svdd, ganomaly and draem, not '" + model + "'");
      }
      const std::string command = fmt::format(
          "{} {}/image_reference.py --model {} --data {} --normal-class {} --epochs {} --pretrain-epochs {} "
          "--width {} --threads {} --draem-train {} --draem-test {}",
          python, ADX_BENCHMARK_DIR, model, data_dir, normal_class, reference_epochs, pretrain_epochs, width, threads,
          draem_train, draem_test);
      Timing adx_t, py_loader, py_tensor;
      for (int64_t r = 0; r < repeats; ++r) {
        for (const auto& line : adx::examples::run_reference(command)) {
          auto& slot = line.find("dataloader") != std::string::npos ? py_loader : py_tensor;
          slot.keep_best(json_number(line, "train_seconds"), json_number(line, "score_seconds"),
                         json_number(line, "auroc"));
        }
        const bool subset = model == "draem";  // DRAEM fits and scores the first images only
        const auto res = adx::examples::run_one_vs_rest(model, options, train, test, normal_class, adx::kinds::kImage,
                                                        false, subset ? draem_train : -1, subset ? draem_test : -1);
        adx_t.keep_best(res.train_seconds, static_cast<double>(res.scored) / res.score_items_per_second, res.auroc);
      }
      adx::examples::print_comparison(adx_t, {{"DataLoader", py_loader}, {"plain tensors", py_tensor}});
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
