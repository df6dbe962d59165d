// One-vs-rest anomaly detection on Fashion-MNIST with adx's image detectors:
// train on one class, score all 10,000 test images, report AUROC, training time
// and scoring speed, and print a Markdown leaderboard.
//
//   fashion_mnist                       quick run: five detectors, classes 0, 1, 7
//   fashion_mnist --full                the full protocol: all 10 classes
//   fashion_mnist --full --detectors all                every registered detector (the leaderboard)
//   fashion_mnist --detectors vae --classes 0,5 --epochs 20 --threads 2
//   fashion_mnist --detectors anogan --set anogan:search_steps=50
#include "common/detector_sets.hpp"
#include "common/one_vs_rest.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

namespace {

const char* kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// Dense detectors see flattened pixels; every other detector sees images.
std::string kind_for(const std::string& name) {
  const bool images = adx::make_detector(name)->accepts(adx::kinds::kImage);
  const bool dense = name == "autoencoder" || name == "denoising_autoencoder" || name == "sparse_autoencoder" ||
                     name == "vae";
  return images && !dense ? adx::kinds::kImage : adx::kinds::kTabular;
}

}  // namespace

int main(int argc, char** argv) {
  std::string detector_list = "autoencoder,denoising_autoencoder,sparse_autoencoder,vae,conv_autoencoder";
  std::string class_list = "0,1,7", data_dir = adx::kFashionMnistDir, save_dir, epochs;
  int threads = 0;
  bool full = false, progress = false;
  std::vector<std::string> sets;
  CLI::App app{"one-vs-rest anomaly detection on Fashion-MNIST with adx's image detectors"};
  app.add_flag("--full", full, "the full protocol: all 10 classes");
  app.add_option("--detectors", detector_list, "detectors, comma-separated, or all")->capture_default_str();
  app.add_option("--classes", class_list, "normal classes 0-9, comma-separated")->capture_default_str();
  app.add_option("--epochs", epochs, "training epochs of every detector (default: each detector's own)");
  app.add_option("--set", sets, "an option of one detector: detector:key=value");
  app.add_option("--threads", threads, "threads (0 = all)")->capture_default_str();
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--save", save_dir, "folder to save the first class's model of each detector to");
  app.add_flag("--progress", progress, "draw a progress bar while training");
  std::string known;
  for (const auto& name : adx::detector_names()) known += " " + name;
  app.footer("detectors:" + known);
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> detectors;
  std::vector<int64_t> classes;
  std::map<std::string, adx::OptionMap> overrides;  // per detector, from --set
  try {
    detectors = adx::split_commas(detector_list);
    if (detectors == std::vector<std::string>{"all"}) {
      // Every detector that learns from the images themselves; the backbone detectors (patchcore,
      // padim, spade) need ImageNet weights and 3-channel photographs, see examples/industrial.cpp,
      // and an ensemble needs its members named (see examples/benchmarks/ensemble_benchmark.cpp).
      detectors.clear();
      for (const auto& name : adx::detector_names())
        if (name != "patchcore" && name != "padim" && name != "spade" && name != "ensemble") detectors.push_back(name);
    }
    overrides = adx::examples::parse_detector_sets(sets);
    for (const auto& c : adx::split_commas(full ? "0,1,2,3,4,5,6,7,8,9" : class_list)) {
      const bool digit = c.size() == 1 && c[0] >= '0' && c[0] <= '9';
      if (!digit) throw adx::OptionError("--classes takes class numbers 0-9 separated by commas, got '" + c + "'");
      classes.push_back(c[0] - '0');
    }
    if (classes.empty()) throw adx::OptionError("--classes needs at least one class number 0-9");
    const int used_threads = adx::set_num_threads(threads);
    std::cout << "adx Fashion-MNIST one-vs-rest: " << classes.size() << " class(es), " << used_threads
              << " thread(s), BLAS " << adx::blas_info().name << ", data from " << data_dir << "\n";
    const auto train = adx::load_mnist_split(data_dir, "train");
    const auto test = adx::load_mnist_split(data_dir, "t10k");

    struct Row {
      std::string name;
      double mean_auroc, train_seconds, images_per_second;
      std::vector<double> aurocs;
    };
    std::vector<Row> rows;
    for (const auto& name : detectors) {
      adx::OptionMap options{{"runtime.threads", std::to_string(threads)}};
      if (!epochs.empty()) options["train.epochs"] = epochs;
      for (const auto& kv : overrides[name]) options[kv.first] = kv.second;
      const auto kind = kind_for(name);
      std::cout << "\n== " << name;
      for (const auto& kv : overrides[name]) std::cout << " " << kv.first << "=" << kv.second;
      std::cout << "\n";
      double sum = 0, train_s = 0, rate = 0;
      std::vector<double> aurocs;
      for (auto c : classes) {
        const auto r = adx::examples::run_one_vs_rest(name, options, train, test, c, kind, progress);
        std::cout << fmt::format("  class {} {:<12} AUROC {:.4f}  AP {:.4f}  train {:6.1f}s  score {:8.0f} img/s\n",
                                 c, kClassNames[c], r.auroc, r.average_precision, r.train_seconds,
                                 r.score_items_per_second);
        std::cout.flush();
        sum += r.auroc;
        aurocs.push_back(r.auroc);
        train_s += r.train_seconds;
        rate += r.score_items_per_second;
        if (!save_dir.empty() && c == classes.front()) {
          auto model = adx::make_detector(name, options);
          // Saving a trained model: retrain deterministically on the same class and write it.
          const auto normal = train.images.index({train.labels == c});
          model->fit(adx::examples::images_as(kind, normal));
          model->save(save_dir + "/" + name + ".adx");
        }
      }
      const double n = static_cast<double>(classes.size());
      std::cout << fmt::format("  mean AUROC {:.4f}  (mean train {:.1f}s, mean score {:.0f} img/s)\n", sum / n,
                               train_s / n, rate / n);
      rows.push_back({name, sum / n, train_s / n, rate / n, aurocs});
    }
    std::cout << "\nsummary (mean AUROC over " << classes.size() << " class(es)):\n";
    for (const auto& r : rows) std::cout << fmt::format("  {:<24} {:.4f}\n", r.name, r.mean_auroc);
    // The same results as a Markdown leaderboard, best first.
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.mean_auroc > b.mean_auroc; });
    std::string header = "| detector | mean |", rule = "|---|---|";
    for (auto c : classes) header += fmt::format(" {} |", c), rule += "---|";
    std::cout << "\n" << header << " train s/class | score img/s |\n" << rule << "---|---|\n";
    for (const auto& r : rows) {
      std::string line = fmt::format("| `{}` | **{:.3f}** |", r.name, r.mean_auroc);
      for (double a : r.aurocs) line += fmt::format(" {:.3f} |", a);
      std::cout << line << fmt::format(" {:.1f} | {:.0f} |\n", r.train_seconds, r.images_per_second);
    }
    return 0;
  } catch (const std::exception& e) {  // adx::Error and anything the standard library throws
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
