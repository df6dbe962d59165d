// A user's own detector, registered with adx and run through the same
// fit / score / save / load path as the built-in ones.
//
// GaussianDetector scores an item by its squared Mahalanobis distance to a
// Gaussian fitted on normal data. It has no gradient training, so it needs only
// build / fit_model / score_model and keeps its fitted state in module buffers,
// which adx saves and loads without any extra code.
#include <adx/base.hpp>

#include <iostream>

namespace mylib {

struct GaussianOptions {
  ADX_OPTIONS_STRUCT;
  /// Ridge added to the covariance diagonal.
  ADX_ARG(double, ridge) = 1e-3;
  ADX_DETECTOR_OPTIONS(adx::Preprocess::Standardize);
};

class GaussianStateImpl : public torch::nn::Module {
 public:
  explicit GaussianStateImpl(int64_t d) {
    mean = register_buffer("mean", torch::zeros({d}));
    precision = register_buffer("precision", torch::eye(d));
  }
  torch::Tensor mean, precision;
};
TORCH_MODULE(GaussianState);

class GaussianDetector : public adx::DetectorWithOptions<GaussianOptions> {
 public:
  using Options = GaussianOptions;
  explicit GaussianDetector(Options options = Options()) : DetectorWithOptions(std::move(options)) {}
  std::string type() const override { return "my_gaussian"; }
  std::vector<std::string> input_kinds() const override { return {adx::kinds::kTabular}; }

 protected:
  void build(const std::vector<int64_t>& shape, const adx::InputKind&) override {
    state_ = GaussianState(shape[0]);
    state_->to(device());
  }
  void fit_model(const adx::Data& train, const adx::Data&) override {
    const auto x = train.x.to(torch::kFloat64);
    const auto mean = x.mean(0);
    const auto centered = x - mean;
    auto cov = centered.t().matmul(centered) / (x.size(0) - 1);
    cov += options_.ridge() * torch::eye(cov.size(0), cov.options());
    state_->mean.copy_(mean);
    state_->precision.copy_(torch::linalg_inv(cov));
  }
  adx::Scores score_model(const adx::Batch& batch) override {
    const auto d = batch.x - state_->mean;
    adx::Scores s;
    s.per_item = (d.matmul(state_->precision) * d).sum(1);
    return s;
  }
  torch::nn::Module* model() override { return state_.is_empty() ? nullptr : state_.ptr().get(); }

 private:
  GaussianState state_{nullptr};
};

}  // namespace mylib

int main() {
  try {
    adx::register_detector("my_gaussian", adx::factory_for<mylib::GaussianDetector>(),
                           "user example: Mahalanobis distance to a Gaussian");
    // Normal data on a tilted plane in R^8; anomalies off it.
    torch::manual_seed(0);
    const auto basis = torch::randn({2, 8});
    const auto train = torch::randn({500, 2}).matmul(basis) + 0.1 * torch::randn({500, 8});
    const auto test = torch::cat({torch::randn({100, 2}).matmul(basis) + 0.1 * torch::randn({100, 8}),
                                  torch::randn({20, 8})});
    std::vector<int> labels(100, 0);
    labels.resize(120, 1);

    auto detector = adx::make_detector("my_gaussian", {{"threshold.policy", "mean_std"}});
    detector->fit(adx::Data::tabular(train));
    const auto scores = detector->score(adx::Data::tabular(test));
    const double auroc = adx::metrics::roc_auc(labels, scores.to_vector());
    const auto flagged = detector->predict(adx::Data::tabular(test)).sum().item<int64_t>();
    std::cout << "my_gaussian AUROC " << auroc << ", flagged " << flagged << " of 120, threshold "
              << detector->threshold() << "\n";

    detector->save("my_gaussian.adx");
    auto loaded = adx::load("my_gaussian.adx");
    const bool identical = torch::equal(loaded->score(adx::Data::tabular(test)).per_item, scores.per_item);
    std::cout << "save -> load -> identical scores: " << (identical ? "yes" : "NO") << "\n";
    return identical && auroc > 0.9 ? 0 : 1;
  } catch (const std::exception& e) {  // adx::Error and anything the standard library throws
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
