// PatchCore speed and memory on the synthetic industrial data set, with the
// coreset step against anomalib's algorithm in Python on the same features,
// in one run.
//
//   patchcore_benchmark [--size 256] [--train 200] [--category grain] [--threads 2]
//                       [--weights DIR] [--python-iterations 1000] [--work DIR] [--python /usr/bin/python3]
//
// 1. PatchCore fit and inference (images/s) and the memory bank's size; inference again searching the
//    whole bank, with the scores compared bit for bit.
// 2. Coreset selection: the same projected patch features go to adx's greedy
//    k-center and to anomalib's KCenterGreedy loop (coreset_reference.py), from
//    the same start row. anomalib's loop costs the same every iteration, so with
//    --python-iterations below the coreset size its time is measured on those
//    iterations and scaled; the selections are compared row by row.
// 3. Nearest-neighbour search rate against the GEMM rate on the same machine, and the share of the
//    distances the cell search computes.
#include "common/reference.hpp"

#include <adx/base.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <regex>


namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<int64_t> json_list(const std::string& line, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("\"" + key + "\": \\[([0-9, ]*)\\]")))
    throw adx::Error("reference output lacks '" + key + "'");
  std::vector<int64_t> out;
  std::stringstream ss(m[1].str());
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 256, train_images = 200, threads = 2, python_iterations = 1000;
  std::string category_name = "grain", weights_dir, work = "patchcore_benchmark", python = "/usr/bin/python3";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--size") size = std::stoll(v);
    else if (a == "--train") train_images = std::stoll(v);
    else if (a == "--category") category_name = v;
    else if (a == "--threads") threads = std::stoll(v);
    else if (a == "--weights") weights_dir = v;
    else if (a == "--python-iterations") python_iterations = std::stoll(v);
    else if (a == "--work") work = v;
    else if (a == "--python") python = v;
    else { std::cerr << "unknown argument " << a << "\n"; return 2; }
  }
  try {
    adx::set_num_threads(static_cast<int>(threads));
    const std::string data = work + "/synthetic_" + std::to_string(size) + "_" + std::to_string(train_images);
    if (!fs::exists(data + "/" + category_name + "/train/good")) {
      adx::SyntheticOptions o;
      o.image_size = size;
      o.train_images = train_images;
      adx::write_synthetic_industrial(data, o);
    }
    const auto category = adx::load_mvtec_category(data + "/" + category_name, {size, 0});
    const std::string weights = weights_dir.empty() ? "" : weights_dir + "/wide_resnet50_2.pt";
    std::cout << fmt::format("PatchCore benchmark: {} ({} train, {} test images at {} px), wide_resnet50_2 {}, "
                             "{} thread(s)\n",
                             category_name, category.train.size(0), category.test.size(0), size,
                             weights.empty() ? "with random weights" : "weights " + weights, threads);

    // 1. The detector end to end.
    adx::OptionMap options{{"runtime.threads", std::to_string(threads)}, {"runtime.validation_fraction", "0"}};
    if (!weights.empty()) options["weights"] = weights;
    adx::Patchcore detector(adx::from_option_map<adx::PatchcoreOptions>(options));
    auto t0 = clock_type::now();
    detector.fit(adx::Data::images(category.train));
    const double fit_s = seconds_since(t0);
    t0 = clock_type::now();
    const auto scores = detector.score(adx::Data::images(category.test));
    const double score_s = seconds_since(t0);
    const auto& bank = detector.memory_bank();
    std::cout << fmt::format("fit {:.1f} s; inference {:.2f} images/s; memory bank {} x {} = {:.1f} MB "
                             "(+ {:.1f} MB of cell bounds); image AUROC {:.3f}\n",
                             fit_s, category.test.size(0) / score_s, bank.size(0), bank.size(1),
                             bank.numel() * 4 / 1e6, detector.index().memory_bytes() / 1e6,
                             adx::metrics::roc_auc(category.test_labels, scores.to_vector()));
    // The same detector searching its whole bank, as exact search did before cells.
    const auto cells = detector.index().cells();
    detector.set_search(adx::BankSearch().exact_cells(1));
    t0 = clock_type::now();
    const auto whole_scores = detector.score(adx::Data::images(category.test));
    const double whole_s = seconds_since(t0);
    std::cout << fmt::format("searching the whole bank instead of {} cells: inference {:.2f} images/s; cells are "
                             "{:.2f}x faster; scores and maps {}\n",
                             cells.count(), category.test.size(0) / whole_s, whole_s / score_s,
                             torch::equal(whole_scores.per_item, scores.per_item) &&
                                     torch::equal(whole_scores.pixel_map, scores.pixel_map)
                                 ? "identical"
                                 : "differ");

    // 2. Coreset selection on identical projected features.
    torch::NoGradGuard no_grad;
    adx::Backbone backbone("wide_resnet50_2", std::vector<std::string>{"layer2", "layer3"});
    if (!weights.empty()) backbone->load_weights(weights);
    backbone->eval();
    auto features_of = [&](const torch::Tensor& images) {
      std::vector<torch::Tensor> parts;
      for (int64_t b = 0; b < images.size(0); b += 16) {
        const auto e = adx::concat_layers(backbone->forward(images.slice(0, b, std::min(images.size(0), b + 16))),
                                          {"layer2", "layer3"}, true, true);
        parts.push_back(e.permute({0, 2, 3, 1}).reshape({-1, e.size(1)}));
      }
      return torch::cat(parts);
    };
    t0 = clock_type::now();
    const auto all = features_of(category.train);
    const double feature_s = seconds_since(t0);
    const int64_t n = all.size(0), coreset_size = n / 10;
    const int64_t components = adx::johnson_lindenstrauss_dim(n, 0.9);
    torch::manual_seed(0);
    t0 = clock_type::now();
    const auto projected = torch::mm(all, adx::sparse_random_projection(all.size(1), components)).contiguous();
    const double projection_s = seconds_since(t0);
    const int64_t start = 12345 % n;
    t0 = clock_type::now();
    const auto coreset = adx::greedy_coreset(projected, coreset_size, start);
    const double adx_coreset_s = seconds_since(t0);
    std::cout << fmt::format("patch features {} x {} in {:.1f} s; projection to {} dims in {:.2f} s\n", n,
                             all.size(1), feature_s, components, projection_s);
    const auto npy = work + "/projected.npy";
    adx::save_npy(npy, projected);
    const auto lines = adx::examples::run_reference(
        fmt::format("{} {}/coreset_reference.py {} --size {} --start {} --iterations {} --threads {}", python,
                    ADX_BENCHMARK_DIR, npy, coreset_size, start, python_iterations, threads));
    if (lines.empty()) throw adx::Error("the coreset reference printed no result");
    const auto& line = lines.front();
    const double py_per_iteration = adx::examples::json_number(line, "seconds_per_iteration");
    const auto py_iterations = static_cast<int64_t>(adx::examples::json_number(line, "iterations"));
    const auto py_selected = json_list(line, "selected");
    const double py_total = py_per_iteration * static_cast<double>(coreset_size);
    int64_t same = 0;
    while (same < static_cast<int64_t>(py_selected.size()) && py_selected[same] == coreset.indices[same]) ++same;
    std::cout << fmt::format("coreset of {} from {} rows ({} dims):\n", coreset_size, n, components);
    std::cout << fmt::format("  adx greedy k-center           {:8.1f} s   coverage radius {:.4f}\n", adx_coreset_s,
                             coreset.coverage_radius);
    std::cout << fmt::format("  anomalib KCenterGreedy (python) {:8.1f} s   ({} of {} iterations run, {:.2f} ms each{})\n",
                             py_total, py_iterations, coreset_size, py_per_iteration * 1e3,
                             py_iterations < coreset_size ? ", scaled" : "");
    if (py_iterations == coreset_size)
      std::cout << fmt::format("  python coverage radius {:.4f}\n", adx::examples::json_number(line, "coverage_radius"));
    std::cout << fmt::format("  speed-up {:.1f}x; first {} of {} selections identical\n", py_total / adx_coreset_s,
                             same, py_selected.size());
    fs::remove(npy);

    // 3. Nearest-neighbour search against plain GEMM.
    const auto queries = features_of(category.test.slice(0, 0, std::min<int64_t>(16, category.test.size(0))));
    const auto chunk = queries.slice(0, 0, std::min<int64_t>(4096, queries.size(0))).contiguous();
    const auto bank_t = bank.t().contiguous();
    torch::mm(chunk, bank_t);  // warm-up
    t0 = clock_type::now();
    for (int r = 0; r < 3; ++r) torch::mm(chunk, bank_t);
    const double gemm_rate = 3 * 2.0 * chunk.size(0) * bank.size(0) * bank.size(1) / seconds_since(t0) / 1e9;
    torch::Tensor distance, index;
    t0 = clock_type::now();
    adx::nearest_neighbours(queries, bank, &distance, &index);
    const double nn_rate = 2.0 * queries.size(0) * bank.size(0) * bank.size(1) / seconds_since(t0) / 1e9;
    std::cout << fmt::format("nearest-neighbour search {:.1f} GFLOP/s against GEMM {:.1f} GFLOP/s: {:.2f} of GEMM\n",
                             nn_rate, gemm_rate, nn_rate / gemm_rate);
    int64_t computed = 0;
    torch::Tensor cell_distance, cell_index;
    t0 = clock_type::now();
    adx::nearest_neighbours_in_cells(queries, bank, cells, &cell_distance, &cell_index, {}, {}, &computed);
    const double cell_s = seconds_since(t0);
    std::cout << fmt::format("search in {} cells: {:.1f}% of the distances computed, {:.2f}x faster than the whole "
                             "bank, same rows and distances: {}\n",
                             cells.count(), 100.0 * computed / static_cast<double>(queries.size(0) * bank.size(0)),
                             2.0 * queries.size(0) * bank.size(0) * bank.size(1) / nn_rate / 1e9 / cell_s,
                             torch::equal(cell_distance, distance) && torch::equal(cell_index, index) ? "yes" : "no");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
