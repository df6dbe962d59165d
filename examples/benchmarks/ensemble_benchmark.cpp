// An ensemble against each of its members on the Fashion-MNIST one-vs-rest protocol: one
// ensemble is fitted per class, and the members' own scores, the z-score mean (the ensemble's
// score) and the z-score maximum are all measured on the same fitted models.
//   ensemble_benchmark [--members rotation,vae,deep_svdd] [--classes 0,6] [--threads N]
//                      [--set vae.latent=8 ...]
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"an ensemble against its members on Fashion-MNIST"};
  std::vector<int64_t> classes{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::string members = "rotation,vae,deep_svdd", data_dir = adx::kFashionMnistDir;
  int threads = 0;
  std::vector<std::string> sets;
  app.add_option("--members", members, "member detectors, comma-separated")->capture_default_str();
  app.add_option("--classes", classes, "normal classes to run")->delimiter(',');
  app.add_option("--threads", threads, "threads (0 = all)");
  app.add_option("--set", sets, "ensemble or member option key=value (members: <member>.key=value)");
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files");
  CLI11_PARSE(app, argc, argv);
  try {
    auto options = adx::parse_key_values(sets);
    options.emplace("members", members);
    options.emplace("runtime.threads", std::to_string(threads));
    const auto names = adx::split_commas(members);
    adx::set_num_threads(threads);
    const auto train = adx::load_mnist_split(data_dir, "train");
    const auto test = adx::load_mnist_split(data_dir, "t10k");
    std::cout << fmt::format("ensemble of {} on Fashion-MNIST, {} thread(s)\n", members, adx::num_threads());
    std::vector<std::vector<double>> table;  // per class: members..., mean, max
    for (const auto c : classes) {
      auto ensemble = adx::make_detector("ensemble", options);
      const auto t0 = std::chrono::steady_clock::now();
      ensemble->fit(adx::Data::images(train.images.index({train.labels == c})));
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto test_data = adx::Data::images(test.images);
      const auto labels_t = (test.labels != c).to(torch::kInt32).contiguous();
      const std::vector<int> labels(labels_t.data_ptr<int>(), labels_t.data_ptr<int>() + labels_t.numel());
      auto& as_ensemble = dynamic_cast<adx::Ensemble&>(*ensemble);
      const auto z = as_ensemble.member_scores(test_data);
      auto auroc = [&](const torch::Tensor& s) {
        const auto v = s.to(torch::kFloat64).contiguous();
        return adx::metrics::roc_auc(labels, std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel()));
      };
      std::vector<double> row;
      for (size_t m = 0; m < names.size(); ++m) row.push_back(auroc(z.select(1, static_cast<int64_t>(m))));
      row.push_back(auroc(ensemble->score(test_data).per_item));
      row.push_back(auroc(std::get<0>(z.max(1))));
      std::cout << fmt::format("class {}:", c);
      for (size_t m = 0; m < names.size(); ++m) std::cout << fmt::format(" {} {:.4f}", names[m], row[m]);
      std::cout << fmt::format("  ensemble mean {:.4f}  max {:.4f}  (fit {:.0f} s)\n", row[names.size()],
                               row[names.size() + 1], seconds);
      std::cout.flush();
      table.push_back(row);
    }
    std::vector<std::string> columns = names;
    columns.push_back("ensemble (z-score mean)");
    columns.push_back("z-score max");
    std::cout << "\n| scores | mean |";
    for (const auto c : classes) std::cout << " " << c << " |";
    std::cout << "\n|---|---|";
    for (size_t i = 0; i < classes.size(); ++i) std::cout << "---|";
    std::cout << "\n";
    for (size_t k = 0; k < columns.size(); ++k) {
      double sum = 0;
      for (const auto& row : table) sum += row[k];
      std::cout << fmt::format("| {} | **{:.3f}** |", columns[k], sum / static_cast<double>(table.size()));
      for (const auto& row : table) std::cout << fmt::format(" {:.3f} |", row[k]);
      std::cout << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
