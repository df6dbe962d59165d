// GEOM's two scores on the Fashion-MNIST one-vs-rest protocol: one rotation model is
// trained per class, then scored with the Dirichlet normality score (the paper's and
// adx's default) and with the mean log-likelihood of the correct transformations.
//   geom_benchmark [--classes 0,6,8] [--threads N] [--set key=value ...]
#include <adx/adx.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"GEOM Dirichlet score against the mean log-likelihood on Fashion-MNIST"};
  std::vector<int64_t> classes{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  int threads = 0;
  std::vector<std::string> sets;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  app.add_option("--classes", classes, "normal classes to run")->delimiter(',');
  app.add_option("--threads", threads, "threads (0 = all)");
  app.add_option("--set", sets, "rotation option key=value");
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files");
  CLI11_PARSE(app, argc, argv);
  try {
    auto options = adx::parse_key_values(sets);
    options.emplace("runtime.threads", std::to_string(threads));
    const auto train = adx::load_mnist_split(data_dir, "train");
    const auto test = adx::load_mnist_split(data_dir, "t10k");
    double sum_dirichlet = 0, sum_likelihood = 0;
    std::cout << "| class | dirichlet | log_likelihood | train s |\n|---|---|---|---|\n";
    for (const int64_t c : classes) {
      const auto labels_t = (test.labels != c).to(torch::kInt32).contiguous();
      const std::vector<int> labels(labels_t.data_ptr<int>(), labels_t.data_ptr<int>() + labels_t.numel());
      auto model = adx::make_detector("rotation", options);
      const auto t0 = std::chrono::steady_clock::now();
      model->fit(adx::Data::images(train.images.index({train.labels == c})));
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double dirichlet = adx::metrics::roc_auc(labels, model->score(adx::Data::images(test.images)).to_vector());
      // The same trained model with the other score: its file, rebuilt with score=log_likelihood.
      const std::string path = "/tmp/adx_geom_benchmark.adx";
      model->save(path);
      auto file = adx::read_model_file(path);
      file.options["score"] = "log_likelihood";
      auto simple = adx::make_detector("rotation", file.options);
      simple->restore(file);
      const double likelihood =
          adx::metrics::roc_auc(labels, simple->score(adx::Data::images(test.images)).to_vector());
      sum_dirichlet += dirichlet;
      sum_likelihood += likelihood;
      std::cout << fmt::format("| {} | {:.4f} | {:.4f} | {:.0f} |\n", c, dirichlet, likelihood, seconds) << std::flush;
    }
    const double n = static_cast<double>(classes.size());
    std::cout << fmt::format("| mean | **{:.4f}** | **{:.4f}** | |\n", sum_dirichlet / n, sum_likelihood / n);
  } catch (const adx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
