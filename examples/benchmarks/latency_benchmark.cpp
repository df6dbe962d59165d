// Batch-1 latency of the image detectors, and PatchCore's settings with accuracy beside speed.
//
//   latency_benchmark [--part detectors,patchcore] [--size 256] [--small-size 64] [--train 100] [--calls 50]
//                     [--threads 2]
//                     [--categories grain,plate,tiles,washer,weave] [--work DIR]
//                     [--fmnist-classes 10] [--fmnist-train 200] [--fmnist-test 500] [--fmnist-size 128]
//
// detectors: every registered detector that takes images, at its default settings (the training
//   length cut to one epoch: scoring costs the same however long a model trained), fitted on one
//   synthetic category (--size px for PatchCore, PaDiM and SPADE, --small-size px for the others),
//   then scored one test image per call: p50, p99 and mean over --calls warm calls (at least 10, fewer
//   than --calls once 30 s are spent), and images/s when scoring the whole test set at once.
// patchcore: PatchCore at its default settings and at the real-time preset (and the settings the
//   preset was chosen from) on every synthetic category: image AUROC, AUPRO, batch-1 p50 and p99,
//   images/s and the memory bank's size; and the image AUROC on real photographs adx did not generate,
//   Fashion-MNIST one-vs-rest (each class in turn normal), resized to --fmnist-size px.
#include "common/one_vs_rest.hpp"
#include "common/synthetic_industrial.hpp"
#include "common/timing.hpp"

#include <adx/base.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/metrics/pixel_tensors.hpp>
#include <adx/serve/monitoring.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

namespace {

using adx::examples::Clock;
using adx::examples::seconds_since;

struct Latency {
  double p50 = 0, p99 = 0, mean = 0, images_per_s = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

// `calls` single-image scores after three warm-up calls, cycling through `test` (fewer, but at least 10, for a
// detector that needs more than `budget_s` for them); then the whole set at once.
Latency measure(adx::Detector& detector, const adx::Data& test, int64_t calls, double budget_s = 30) {
  adx::LatencyWindow window(calls);
  int64_t timed = 0;
  const auto start = Clock::now();
  for (int64_t i = 0; i < calls + 3; ++i) {
    const int64_t at = i % test.size();
    const auto one = test.slice(at, at + 1);
    const auto t0 = Clock::now();
    detector.score(one);
    if (i >= 3) {
      window.record(1000 * seconds_since(t0));
      ++timed;
    }
    if (timed >= 10 && seconds_since(start) > budget_s) break;
  }
  const auto summary = window.summary();
  Latency l;
  l.p50 = summary.p50_ms;
  l.p99 = summary.p99_ms;
  l.mean = summary.mean_ms;
  const auto t0 = Clock::now();
  detector.score(test);
  l.images_per_s = static_cast<double>(test.size()) / seconds_since(t0);
  return l;
}

bool takes_images(const std::string& name) { return adx::make_detector(name)->accepts(adx::kinds::kImage); }

// The detector's defaults with one training epoch, where it trains by epochs.
std::unique_ptr<adx::Detector> one_epoch(const std::string& name, int threads) {
  const adx::OptionMap runtime{{"runtime.threads", std::to_string(threads)}};
  for (const auto* key : {"train.epochs", "epochs"}) {
    auto options = runtime;
    options[key] = "1";
    try {
      return adx::make_detector(name, options);
    } catch (const adx::OptionError&) {
    }
  }
  return adx::make_detector(name, runtime);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Batch-1 latency of the image detectors, and PatchCore's real-time settings"};
  int64_t size = 256, train_images = 100, calls = 50;
  int threads = 2;
  std::string parts = "detectors,patchcore", categories = "grain,plate,tiles,washer,weave", work = "latency_benchmark";
  app.add_option("--part", parts, "detectors, patchcore or both")->capture_default_str();
  app.add_option("--size", size, "image size (the backbone detectors)")->capture_default_str();
  int64_t small_size = 64;
  app.add_option("--small-size", small_size, "image size for the detectors without a backbone")->capture_default_str();
  app.add_option("--train", train_images, "training images per category")->capture_default_str();
  app.add_option("--calls", calls, "timed single-image calls")->capture_default_str();
  app.add_option("--threads", threads, "threads")->capture_default_str();
  app.add_option("--categories", categories, "synthetic categories for the PatchCore table")->capture_default_str();
  app.add_option("--work", work, "folder for the generated data")->capture_default_str();
  int64_t fmnist_classes = 10, fmnist_train_images = 200, fmnist_test_images = 500, fmnist_size = 128;
  app.add_option("--fmnist-classes", fmnist_classes, "Fashion-MNIST classes taken in turn as normal (0 = none)")
      ->capture_default_str();
  app.add_option("--fmnist-train", fmnist_train_images, "Fashion-MNIST training images per class")->capture_default_str();
  app.add_option("--fmnist-test", fmnist_test_images, "Fashion-MNIST test images")->capture_default_str();
  app.add_option("--fmnist-size", fmnist_size, "Fashion-MNIST images resized to this size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    adx::set_num_threads(threads);
    const auto root = adx::examples::synthetic_industrial_root(work, size, train_images);
    const auto wanted = adx::split_commas(parts);
    const auto wants = [&](const std::string& p) { return std::find(wanted.begin(), wanted.end(), p) != wanted.end(); };

    if (wants("detectors")) {
      const auto category = adx::load_mvtec_category(root + "/grain", {size, 0});
      const auto small_train = adx::fit_image_size(category.train, {small_size, 0});
      const auto small_test = adx::fit_image_size(category.test, {small_size, 0});
      std::cout << fmt::format("Image detectors, batch 1, RGB images of the grain category: {} px for the backbone "
                               "detectors, {} px for the others; {} thread(s), {} warm calls each\n\n",
                               size, small_size, threads, calls);
      std::cout << "| detector | settings | fit s | p50 ms | p99 ms | mean ms | images/s (batch of "
                << category.test.size(0) << ") |\n|---|---|---|---|---|---|---|\n";
      std::cout.flush();
      std::vector<std::pair<std::string, std::string>> runs;
      for (const auto& name : adx::detector_names())
        if (name != "ensemble" && takes_images(name)) runs.emplace_back(name, "default");
      runs.emplace_back("patchcore", "realtime");
      for (const auto& [name, settings] : runs) {
        // The backbone detectors inspect full-size images; the others' networks are built for small ones.
        const bool backbone = name == "patchcore" || name == "padim" || name == "spade";
        const auto train = adx::Data::images(backbone ? category.train : small_train);
        const auto test = adx::Data::images(backbone ? category.test : small_test);
        try {
          auto detector =
              settings == "realtime"
                  ? adx::make_detector(name, {{"preset", "realtime"}, {"runtime.threads", std::to_string(threads)}})
                  : one_epoch(name, threads);
          auto t0 = Clock::now();
          detector->fit(train);
          const double fit_s = seconds_since(t0);
          const auto l = measure(*detector, test, calls);
          std::cout << fmt::format("| `{}` | {}, {} px | {:.1f} | {:.2f} | {:.2f} | {:.2f} | {:.1f} |\n", name, settings,
                                   backbone ? size : small_size, fit_s, l.p50, l.p99, l.mean, l.images_per_s);
        } catch (const adx::Error& e) {
          std::cout << fmt::format("| `{}` | {} | refused: {} | | | | |\n", name, settings, e.what());
        }
        std::cout.flush();
      }
    }

    if (wants("patchcore")) {
      struct Setting {
        std::string name;
        adx::OptionMap options;
      };
      const std::vector<Setting> settings{
          {"default (Wide-ResNet-50-2, coreset 10%)", {}},
          {"ResNet-18, coreset 10%", {{"backbone", "resnet18"}}},
          {"ResNet-18, coreset 1%", {{"backbone", "resnet18"}, {"coreset_ratio", "0.01"}}},
          {"`preset=realtime` (ResNet-18, coreset 1%, channels-last)", {{"preset", "realtime"}}},
          {"`preset=realtime precision=bfloat16`", {{"preset", "realtime"}, {"precision", "bfloat16"}}},
          {"Wide-ResNet-50-2, coreset 1%", {{"coreset_ratio", "0.01"}}},
      };
      std::cout << fmt::format("\nPatchCore settings, {} px, {} training images per category, {} thread(s); "
                               "AUROC and AUPRO are means over {}\n\n",
                               size, train_images, threads, categories);
      std::cout << "| setting | image AUROC | AUPRO | p50 ms | p99 ms | images/s | bank MB | fit s | "
                   "Fashion-MNIST AUROC |\n|---|---|---|---|---|---|---|---|---|\n";
      const auto names = adx::split_commas(categories);
      // Real photographs that adx did not generate: Fashion-MNIST one-vs-rest at fmnist_size px.
      adx::LabeledImages fmnist_train, fmnist_test;
      if (fmnist_classes > 0) {
        // The first fmnist_train images of each class taken as normal, resized once.
        const auto all = adx::load_mnist_split(adx::kFashionMnistDir, "train");
        std::vector<torch::Tensor> images, labels;
        for (int64_t c = 0; c < fmnist_classes; ++c) {
          images.push_back(all.images.index({all.labels == c}).slice(0, 0, fmnist_train_images));
          labels.push_back(torch::full({images.back().size(0)}, c, torch::kLong));
        }
        fmnist_train.images = adx::fit_image_size(torch::cat(images), {fmnist_size, 0});
        fmnist_train.labels = torch::cat(labels);
        fmnist_test = adx::load_mnist_split(adx::kFashionMnistDir, "t10k");
        fmnist_test.images = adx::fit_image_size(fmnist_test.images.slice(0, 0, fmnist_test_images), {fmnist_size, 0});
        fmnist_test.labels = fmnist_test.labels.slice(0, 0, fmnist_test_images);
      }
      for (const auto& setting : settings) {
        double auroc = 0, aupro = 0, fit_s = 0, bank_mb = 0;
        std::vector<double> p50, p99, rate;
        std::string per_category;
        for (const auto& name : names) {
          const auto category = adx::load_mvtec_category(root + "/" + name, {size, 0});
          auto options = setting.options;
          options["runtime.threads"] = std::to_string(threads);
          auto detector = adx::make_detector("patchcore", options);
          auto t0 = Clock::now();
          detector->fit(adx::Data::images(category.train));
          fit_s += seconds_since(t0);
          const auto test = adx::Data::images(category.test);
          const auto scores = detector->score(test);
          const double a = adx::metrics::roc_auc(category.test_labels, scores.to_vector());
          auroc += a / static_cast<double>(names.size());
          aupro += adx::metrics::aupro(adx::metrics::mask_stack(category.test_masks),
                                       adx::metrics::map_stack(scores.pixel_map)) /
                   static_cast<double>(names.size());
          per_category += fmt::format(" {} {:.3f}", name, a);
          const auto l = measure(*detector, test, calls);
          p50.push_back(l.p50);
          p99.push_back(l.p99);
          rate.push_back(l.images_per_s);
          const auto& bank = dynamic_cast<adx::Patchcore&>(*detector).memory_bank();
          bank_mb += static_cast<double>(bank.numel() * 4) / 1e6 / static_cast<double>(names.size());
        }
        double fmnist_auroc = 0;
        for (int64_t c = 0; c < fmnist_classes; ++c) {
          auto options = setting.options;
          options["runtime.threads"] = std::to_string(threads);
          const double a =
              adx::examples::run_one_vs_rest("patchcore", options, fmnist_train, fmnist_test, c, adx::kinds::kImage).auroc;
          fmnist_auroc += a / static_cast<double>(fmnist_classes);
          per_category += fmnist_classes > 0 ? fmt::format(" fmnist{} {:.3f}", c, a) : "";
        }
        // Latency: the median category's p50, the worst category's p99.
        std::cout << fmt::format("| {} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.1f} | {} |\n",
                                 setting.name, auroc, aupro, median(p50),
                                 *std::max_element(p99.begin(), p99.end()), median(rate), bank_mb,
                                 fit_s / static_cast<double>(names.size()),
                                 fmnist_classes > 0 ? fmt::format("{:.3f}", fmnist_auroc) : "-");
        std::cerr << setting.name << ":" << per_category << "\n";
        std::cout.flush();
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
