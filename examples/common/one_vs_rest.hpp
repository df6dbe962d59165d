#pragma once
// The one-vs-rest protocol on an MNIST-family data set: train on the
// training images of one class, score the whole test set, and report AUROC
// with that class as normal and every other class as anomalous.
#include <adx/base.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace adx::examples {

struct ClassResult {
  int64_t normal_class = 0;
  double auroc = 0.0;
  double average_precision = 0.0;
  double train_seconds = 0.0;
  int64_t scored = 0;  // test images scored
  double score_items_per_second = 0.0;
  int64_t epochs_run = 0;
};

/// Images N x C x H x W as data of `kind`: images themselves for a kind whose rows are images, else
/// their flattened pixels as rows.
inline Data images_as(const std::string& kind, const torch::Tensor& images) {
  const auto& k = input_kind(kind);
  return k.items_from(k.traits().image_rows ? images : images.reshape({images.size(0), -1}));
}

inline ClassResult run_one_vs_rest(const std::string& detector, const OptionMap& options,
                                   const LabeledImages& train, const LabeledImages& test, int64_t normal_class,
                                   const std::string& kind, bool progress = false, int64_t max_train = -1,
                                   int64_t max_test = -1) {
  using clock = std::chrono::steady_clock;
  // The first max_train normal images and the first max_test test images (all when negative).
  const auto first = [](const torch::Tensor& t, int64_t count) {
    return count < 0 ? t : t.slice(0, 0, std::min(count, t.size(0)));
  };
  const auto normal = first(train.images.index({train.labels == normal_class}), max_train);
  const LabeledImages test_part{first(test.images, max_test), first(test.labels, max_test)};
  auto as_data = [&](const torch::Tensor& x) { return images_as(kind, x); };
  auto model = make_detector(detector, options);
  if (progress) model->set_progress(terminal_progress_bar());
  ClassResult r;
  r.normal_class = normal_class;
  auto t0 = clock::now();
  model->fit(as_data(normal));
  r.train_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  const auto scores = model->score(as_data(test_part.images)).to_vector();
  const double score_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  r.scored = test_part.images.size(0);
  r.score_items_per_second = static_cast<double>(r.scored) / score_seconds;
  const auto labels_t = (test_part.labels != normal_class).to(torch::kInt32).contiguous();
  const std::vector<int> labels(labels_t.data_ptr<int>(), labels_t.data_ptr<int>() + labels_t.numel());
  r.auroc = metrics::roc_auc(labels, scores);
  r.average_precision = metrics::average_precision(labels, scores);
  return r;
}

}  // namespace adx::examples
