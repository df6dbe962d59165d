// PatchCore's nearest-memory search, exact and approximate, on the synthetic industrial data:
// one fit (default PatchCore: Wide-ResNet-50-2 layers 2 + 3, coreset 10%), then every search
// setting on the same memory bank, in one run. Per setting: index build time, throughput on the
// test set, batch-1 latency (p50, p99, warm), recall@1 of the test patches against exact search,
// image AUROC, AUPRO, the index's memory beside the bank, and whether the scores and maps equal
// those of the exact search over the whole bank, bit for bit.
//
//   search_benchmark [--size 256] [--train 100] [--category grain] [--threads 2] [--weights FILE]
//                    [--latency-images 20] [--work DIR]
#include "common/synthetic_industrial.hpp"
#include "common/timing.hpp"

#include <adx/base.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/metrics/pixel_tensors.hpp>
#include <adx/serve/monitoring.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

namespace {

struct Setting {
  std::string name;
  adx::BankSearch search;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"PatchCore's memory-bank search: exact against faiss's exact and approximate indexes"};
  int64_t size = 256, train_images = 100, latency_images = 20;
  int threads = 2;
  std::string category_name = "grain", weights, work = "search_benchmark_data";
  app.add_option("--size", size, "image size")->capture_default_str();
  app.add_option("--train", train_images, "training images")->capture_default_str();
  app.add_option("--category", category_name, "synthetic category")->capture_default_str();
  app.add_option("--threads", threads, "threads")->capture_default_str();
  app.add_option("--weights", weights, "torchvision weights for the backbone");
  app.add_option("--latency-images", latency_images, "images scored one at a time for the latency")->capture_default_str();
  app.add_option("--work", work, "folder for the generated data")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    adx::set_num_threads(threads);
    const auto root = adx::examples::synthetic_industrial_root(work, size, train_images);
    const auto category = adx::load_mvtec_category(root + "/" + category_name, {size, 0});

    adx::Patchcore detector(adx::PatchcoreOptions().weights(weights).runtime(adx::RuntimeOptions().threads(threads)));
    auto t0 = adx::examples::Clock::now();
    detector.fit(adx::Data::images(category.train));
    const double fit_s = adx::examples::seconds_since(t0);
    const auto& bank = detector.memory_bank();
    std::cout << fmt::format("{} category, {} training images at {} px, {} test images, {} thread(s); fit {:.1f} s, "
                             "bank {} x {}\n\n",
                             category_name, category.train.size(0), size, category.test.size(0), threads, fit_s,
                             bank.size(0), bank.size(1));
    const auto test = adx::Data::images(category.test);
    const auto patches = detector.patch_features(test);
    const auto flat_patches = patches.reshape({-1, patches.size(2)});
    torch::Tensor exact_nearest;
    adx::nearest_neighbours(flat_patches, bank, nullptr, &exact_nearest);

    using adx::BankCompression, adx::BankSearch, adx::SearchKind;
    const auto whole_bank = BankSearch().exact_cells(1);
    std::vector<Setting> settings{{"exact (adx, cells)", BankSearch()},
                                  {"exact (adx, whole bank)", whole_bank},
                                  {"flat (faiss, exact)", BankSearch().kind(SearchKind::Flat)},
                                  {"ivf", BankSearch().kind(SearchKind::Ivf)},
                                  {"ivf, 32 probes", BankSearch().kind(SearchKind::Ivf).ivf_probes(32)},
                                  {"hnsw", BankSearch().kind(SearchKind::Hnsw)},
                                  {"hnsw, ef 128", BankSearch().kind(SearchKind::Hnsw).hnsw_ef_search(128)},
                                  {"flat + sq8", BankSearch().kind(SearchKind::Flat).compression(BankCompression::Sq8)},
                                  {"hnsw + sq8", BankSearch().kind(SearchKind::Hnsw).compression(BankCompression::Sq8)}};
    std::cout << "| search | build s | images/s | batch-1 p50 ms | batch-1 p99 ms | recall@1 | image AUROC | AUPRO | "
                 "index MB | scores as whole-bank search |\n|---|---|---|---|---|---|---|---|---|---|\n";
    // The reference: exact search over the whole bank (what exact search did before cells).
    detector.set_search(whole_bank);
    const auto reference = detector.score(test);
    for (const auto& setting : settings) {
      t0 = adx::examples::Clock::now();
      detector.set_search(setting.search);
      const double build_s = adx::examples::seconds_since(t0);
      t0 = adx::examples::Clock::now();
      const auto scores = detector.score(test);
      const double images_per_s = static_cast<double>(test.size()) / adx::examples::seconds_since(t0);
      adx::LatencyWindow latency(latency_images);
      for (int64_t i = 0; i < std::min<int64_t>(latency_images + 2, test.size()); ++i) {
        const auto one = test.slice(i, i + 1);
        t0 = adx::examples::Clock::now();
        detector.score(one);
        if (i >= 2) latency.record(1000 * adx::examples::seconds_since(t0));  // two warm-up calls
      }
      torch::Tensor nearest;
      detector.index().search(flat_patches, nullptr, &nearest);
      const double recall = nearest.eq(exact_nearest).to(torch::kDouble).mean().item<double>();
      // exact: the bank tensor plus the cells' bounds; faiss: its index, which holds its own copy.
      const double bank_mb = static_cast<double>(detector.index().memory_bytes() +
                                                 (setting.search.kind() == adx::SearchKind::Exact ? bank.numel() * 4 : 0)) /
                             1e6;
      const bool same = torch::equal(scores.per_item, reference.per_item) &&
                        torch::equal(scores.pixel_map, reference.pixel_map);
      const double largest_difference = (scores.per_item - reference.per_item).abs().max().item<double>();
      std::cout << fmt::format("| {} | {:.2f} | {:.2f} | {:.0f} | {:.0f} | {:.4f} | {:.3f} | {:.3f} | {:.1f} | {} |\n",
                               setting.name, build_s, images_per_s, latency.summary().p50_ms, latency.summary().p99_ms,
                               recall, adx::metrics::roc_auc(category.test_labels, scores.to_vector()),
                               adx::metrics::aupro(adx::metrics::mask_stack(category.test_masks), adx::metrics::map_stack(scores.pixel_map)),
                               bank_mb, same ? "identical" : fmt::format("differ, up to {:.2g}", largest_difference));
      std::cout.flush();
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
