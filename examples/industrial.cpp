// Industrial inspection with PatchCore, PaDiM, SPADE and DRAEM (or any image
// detector) on an MVTec-layout folder: fit on train/good, score test/*, report image AUROC and F1, pixel
// AUROC and AUPRO per category, and write a heatmap overlay PNG beside each
// test image so a person can see where the defect is. The classic baselines, PCA
// reconstruction of patches and the nearest training patch, are scored beside them (texture energy,
// the classic for textured surfaces, is the texture_energy detector).
//
//   industrial                                  synthetic data (written first), all three detectors
//   industrial --data /data/mvtec --categories bottle,carpet --weights /models
//   industrial --size 128 --train 50 --detectors patchcore --out results
//   industrial --holdout 0.1      memory from 90% of train/good, threshold from the other 10%
//   industrial --detectors draem --textures /data/dtd/images
//   industrial --data textures --size 128 --detectors texture_energy,nsa   (skimage_textures.py's real set)
//
// --weights DIR holds resnet18.pt and/or wide_resnet50_2.pt, exported once on a
// machine with torchvision (see docs/industrial.md). Without them the backbones start from
// random weights: the methods still run, but their features are far weaker.
#include <adx/base.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include "common/detector_sets.hpp"
#include "common/image_baselines.hpp"
#include "common/tensors.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

struct Row {
  std::string detector, category;
  double image_auroc = 0, f1 = 0, pixel_auroc = 0, aupro = 0, fit_s = 0, images_per_s = 0, bank_mb = 0;
  // At the threshold set from normal images alone (NaN where there were too few to set one).
  double f1_at_threshold = std::nan(""), good_flagged = std::nan("");
  std::string by_defect;  ///< image AUROC of good against each defect kind, e.g. "crack 0.91, hole 1.00"
};

struct Baseline {
  std::string name;
  adx::examples::ImageBaselineScores (*run)(const torch::Tensor& train, const torch::Tensor& test);
};
const std::vector<Baseline> kBaselines{
    {"PCA patches (baseline)", [](const torch::Tensor& train, const torch::Tensor& test) {
       return adx::examples::pca_patch_baseline(train, test);
     }},
    {"nearest patch (baseline)", adx::examples::nearest_patch_baseline}};

/// The threshold-free metrics of one method on one category: image AUROC and F1max, and where there
/// are maps, pixel AUROC and AUPRO (FPR up to 0.3).
void score_row(Row& row, const adx::MvtecCategory& category, const std::vector<double>& image_scores,
               const torch::Tensor& maps) {
  row.image_auroc = adx::metrics::roc_auc(category.test_labels, image_scores);
  row.f1 = adx::metrics::best_f1(category.test_labels, image_scores).f1;  // anomalib's F1Max
  // Which defects a method misses: good images against each kind alone.
  std::vector<std::string> kinds(category.test_defects.begin(), category.test_defects.end());
  std::sort(kinds.begin(), kinds.end());
  kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
  row.by_defect.clear();
  for (const auto& kind : kinds) {
    if (kind == "good") continue;
    std::vector<int> labels;
    std::vector<double> scores;
    for (size_t i = 0; i < image_scores.size(); ++i)
      if (category.test_defects[i] == kind || category.test_defects[i] == "good")
        labels.push_back(category.test_defects[i] == kind), scores.push_back(image_scores[i]);
    if (std::count(labels.begin(), labels.end(), 0) == 0) continue;  // no good images to compare with
    row.by_defect += fmt::format("{}{} {:.2f}", row.by_defect.empty() ? "" : ", ", kind,
                                 adx::metrics::roc_auc(labels, scores));
  }
  row.pixel_auroc = row.aupro = std::nan("");
  if (maps.defined()) {
    const auto mask_pixels = adx::metrics::mask_stack(category.test_masks);
    const auto map_pixels = adx::metrics::map_stack(maps);
    row.pixel_auroc = adx::metrics::pixel_roc_auc(mask_pixels, map_pixels);
    row.aupro = adx::metrics::aupro(mask_pixels, map_pixels, 0.3);
  }
}

void print_row(const Row& row) {
  std::cout << fmt::format("  {:<10} {:<10} image AUROC {:.3f}  F1max {:.3f}  F1@threshold {:.3f}  "
                           "good flagged {:.3f}  pixel AUROC {:.3f}  AUPRO {:.3f}  fit {:.1f}s  {:.1f} img/s\n",
                           row.detector, row.category, row.image_auroc, row.f1, row.f1_at_threshold, row.good_flagged,
                           row.pixel_auroc, row.aupro, row.fit_s, row.images_per_s);
  if (!row.by_defect.empty()) std::cout << "             image AUROC by defect: " << row.by_defect << "\n";
  std::cout.flush();
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir, out_dir = "industrial_results", weights_dir, texture_dir;
  int threads = 0;
  std::vector<std::string> categories, detectors{"patchcore", "padim", "spade"}, sets;
  int64_t size = 256, train_images = 200;
  double holdout = 0.0;
  bool no_heatmaps = false;
  CLI::App app{"PatchCore, PaDiM, SPADE, DRAEM or any image detector on an MVTec-layout folder (default: synthetic "
               "data written first)"};
  app.add_option("--data", data_dir, "MVTec-layout folder (default: synthetic data under --out)");
  app.add_option("--categories", categories, "categories to run (default: every folder)")->delimiter(',');
  app.add_option("--detectors", detectors, "image detectors: patchcore, padim, spade, draem, ...")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--weights", weights_dir, "folder with resnet18.pt / wide_resnet50_2.pt");
  app.add_option("--textures", texture_dir, "texture folder for DRAEM's synthetic anomalies (e.g. DTD; default: "
                                           "procedural textures)");
  app.add_option("--size", size, "image size")->capture_default_str();
  app.add_option("--train", train_images, "synthetic training images per category")->capture_default_str();
  app.add_option("--out", out_dir, "output folder")->capture_default_str();
  app.add_option("--threads", threads, "threads (0 = all)")->capture_default_str();
  app.add_option("--holdout", holdout,
                 "keep this fraction of train/good out of the memory to set the threshold (default 0: memory from "
                 "every image, threshold from left-out scores)");
  app.add_option("--set", sets, "an option of one detector: detector:key=value (repeatable)");
  app.add_flag("--no-heatmaps", no_heatmaps, "skip the heatmap PNGs");
  CLI11_PARSE(app, argc, argv);
  const bool heatmaps = !no_heatmaps;
  try {
    // Any image detector runs; the pixel metrics and heatmaps need one that makes anomaly maps.
    if (detectors.empty()) throw adx::OptionError("--detectors needs at least one detector");
    if (!(holdout >= 0 && holdout < 1)) throw adx::OptionError(fmt::format("--holdout must be in [0, 1), got {}", holdout));
    auto overrides = adx::examples::parse_detector_sets(sets);
    for (const auto& name : detectors) {
      if (!adx::make_detector(name)->accepts(adx::kinds::kImage))
        throw adx::OptionError("--detectors: '" + name + "' does not take images");
    }
    const int used_threads = adx::set_num_threads(threads);
    if (data_dir.empty()) {
      data_dir = out_dir + "/synthetic";
      if (!fs::exists(data_dir + "/washer/train/good")) {
        adx::SyntheticOptions o;
        o.image_size = size;
        o.train_images = train_images;
        std::cout << "writing the synthetic data set (" << size << " px, " << train_images << " training images per "
                  << "category) to " << data_dir << "\n";
        adx::write_synthetic_industrial(data_dir, o);
      }
    }
    if (!fs::is_directory(data_dir)) throw adx::IoError("data folder " + data_dir + " does not exist");
    if (categories.empty()) {
      for (const auto& entry : fs::directory_iterator(data_dir))
        if (fs::is_directory(entry.path() / "train" / "good")) categories.push_back(entry.path().filename().string());
      std::sort(categories.begin(), categories.end());
    }
    if (categories.empty()) throw adx::IoError("no category folders with train/good under " + data_dir);
    std::cout << fmt::format("adx industrial inspection: {} category(ies) from {}, {} px, {} thread(s), BLAS {}\n",
                             categories.size(), data_dir, size, used_threads, adx::blas_info().name);

    std::vector<Row> rows;
    for (const auto& category_name : categories) {
      const auto category = adx::load_mvtec_category(data_dir + "/" + category_name, {size, 0});
      for (const auto& method : kBaselines) {
        Row row;
        row.detector = method.name;
        row.category = category_name;
        const auto t0 = std::chrono::steady_clock::now();
        const auto baseline = method.run(category.train, category.test);
        // Fitting and scoring in one call: "fit s" holds both.
        row.fit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        row.images_per_s = std::nan("");
        score_row(row, category, adx::examples::doubles_of(baseline.per_image), baseline.pixel_map);
        print_row(row);
        rows.push_back(row);
      }
      for (const auto& name : detectors) {
        adx::OptionMap options{{"runtime.threads", std::to_string(threads)}};
        const auto defaults = adx::make_detector(name)->options_map();
        if (defaults.count("backbone")) {
          const auto& backbone = defaults.at("backbone");
          const auto weights = weights_dir.empty() ? std::string() : weights_dir + "/" + backbone + ".pt";
          if (!weights.empty() && fs::exists(weights)) options["weights"] = weights;
          else if (rows.empty()) std::cout << "note: no " << backbone << " weights given; the backbone is random\n";
        }
        if (defaults.count("texture_dir") && !texture_dir.empty()) options["texture_dir"] = texture_dir;
        for (const auto& [key, value] : overrides[name]) options[key] = value;
        auto detector = adx::make_detector(name, options);
        Row row;
        row.detector = name;
        row.category = category_name;
        auto t0 = std::chrono::steady_clock::now();
        const int64_t held = static_cast<int64_t>(std::round(holdout * static_cast<double>(category.train.size(0))));
        if (held > 0) {
          const int64_t kept = category.train.size(0) - held;
          detector->fit(adx::Data::images(category.train.slice(0, 0, kept)),
                        adx::Data::images(category.train.slice(0, kept)));
        } else {
          detector->fit(adx::Data::images(category.train));
        }
        row.fit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        t0 = std::chrono::steady_clock::now();
        const auto scores = detector->score(adx::Data::images(category.test));
        row.images_per_s = static_cast<double>(category.test.size(0)) /
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto image_scores = scores.to_vector();
        const bool has_maps = scores.pixel_map.defined();
        const auto maps = has_maps ? scores.pixel_map.to(torch::kFloat32) : torch::Tensor();
        score_row(row, category, image_scores, maps);
        // At the threshold fit() set from normal images alone.
        if (detector->calibrated()) {
          row.f1_at_threshold =
              adx::metrics::precision_recall_f1(category.test_labels, image_scores, detector->threshold()).f1;
          int64_t good = 0, flagged = 0;
          for (size_t i = 0; i < image_scores.size(); ++i)
            if (category.test_labels[i] == 0) ++good, flagged += image_scores[i] > detector->threshold();
          row.good_flagged = static_cast<double>(flagged) / static_cast<double>(std::max<int64_t>(1, good));
        }
        if (auto* patchcore = dynamic_cast<adx::Patchcore*>(detector.get()))
          row.bank_mb = static_cast<double>(patchcore->memory_bank().numel() * 4) / 1e6;
        print_row(row);
        if (heatmaps && has_maps) {
          // One colour scale per category and detector: the range of its test maps.
          const double low = maps.min().item<double>(), high = maps.max().item<double>();
          for (int64_t i = 0; i < category.test.size(0); ++i) {
            const fs::path source(category.test_paths[i]);
            const fs::path dir = fs::path(out_dir) / "heatmaps" / name / category_name / category.test_defects[i];
            fs::create_directories(dir);
            adx::write_heatmap_overlay((dir / (source.stem().string() + ".png")).string(), category.test[i],
                                       maps[i][0], low, high);
          }
        }
        rows.push_back(row);
      }
    }
    std::cout << "\n| detector | category | image AUROC | F1max | F1@threshold | good flagged | pixel AUROC | AUPRO "
                 "| fit s | img/s |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : rows)
      std::cout << fmt::format("| `{}` | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.1f} | {:.1f} |\n",
                               r.detector, r.category, r.image_auroc, r.f1, r.f1_at_threshold, r.good_flagged,
                               r.pixel_auroc, r.aupro, r.fit_s, r.images_per_s);
    std::cout << "\nmean over categories:\n";
    std::vector<std::string> methods;
    for (const auto& baseline : kBaselines) methods.push_back(baseline.name);
    methods.insert(methods.end(), detectors.begin(), detectors.end());
    for (const auto& name : methods) {
      double a = 0, p = 0, u = 0, f = 0, ft = 0, g = 0;
      int n = 0;
      for (const auto& r : rows)
        if (r.detector == name)
          a += r.image_auroc, p += r.pixel_auroc, u += r.aupro, f += r.f1, ft += r.f1_at_threshold,
              g += r.good_flagged, ++n;
      if (n)
        std::cout << fmt::format("  {:<10} image AUROC {:.3f}  F1max {:.3f}  F1@threshold {:.3f}  good flagged {:.3f}  "
                                 "pixel AUROC {:.3f}  AUPRO {:.3f}\n",
                                 name, a / n, f / n, ft / n, g / n, p / n, u / n);
    }
    if (heatmaps) std::cout << "heatmaps: " << out_dir << "/heatmaps/<detector>/<category>/<defect>/\n";
    return 0;
  } catch (const std::exception& e) {  // adx::Error, and file-system errors while writing results
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
