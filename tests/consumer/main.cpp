// A tiny project that uses an installed adx through find_package(adx).
#include <adx/metrics/metrics.hpp>
#include <adx/detectors/registry.hpp>

#include <iostream>

int main() {
  const double auroc = adx::metrics::roc_auc({0, 0, 1, 1}, {0.1, 0.4, 0.35, 0.8});
  const auto names = adx::detector_names();
  std::cout << "consumer: AUROC " << auroc << ", " << names.size() << " detectors\n";
  return (auroc == 0.75 && !names.empty()) ? 0 : 1;
}
