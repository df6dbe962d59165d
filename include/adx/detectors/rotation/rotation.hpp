#pragma once
// Self-supervised detection by geometric transformations (Golan & El-Yaniv
// 2018, "GEOM"): a classifier learns which transformation was applied to a
// normal image; at test time every transformation is applied to the image.
//   score dirichlet       GEOM's normality score, negated: for each transformation t a
//                         Dirichlet with parameters alpha_t is fitted by maximum likelihood
//                         (Minka's fixed point, as the authors' code) to the classifier's
//                         softmax outputs on the training images; the anomaly score is
//                         -(1/T) sum_t sum_k (alpha_tk - 1) log p_tk(x)
//   score log_likelihood  -(1/T) sum_t log p_tt(x), the negative mean log-likelihood of
//                         the correct transformations
//   transformations rotations  the 4 rotations by 90 degrees (RotNet-style)
//   transformations geom       GEOM's 72: horizontal flip x translations
//                              {0, -s, +s}^2 x 4 rotations, s = size/4, with the
//                              half-sample symmetric padding of scipy's 'reflect'
//                              mode that GEOM's Keras transform uses
#include <adx/detectors/detector.hpp>
#include <adx/nn/conv.hpp>
#include <adx/train/trainer.hpp>

#include <torch/torch.h>

namespace adx {

enum class TransformSet { Rotations, Geom };
ADX_ENUM_NAMES(TransformSet, {TransformSet::Rotations, "rotations"}, {TransformSet::Geom, "geom"});

enum class RotationScore { Dirichlet, LogLikelihood };
ADX_ENUM_NAMES(RotationScore, {RotationScore::Dirichlet, "dirichlet"}, {RotationScore::LogLikelihood, "log_likelihood"});

/// Maximum-likelihood Dirichlet parameters of the rows of `probabilities` (N x K, each row
/// on the simplex): the authors' GEOM code, i.e. Minka's fixed point
/// alpha <- psi^-1(psi(sum alpha) + mean log p) from the approximate initial sum, with
/// psi^-1 by 5 Newton steps. Computed in double on the CPU; returns K values.
torch::Tensor dirichlet_mle(const torch::Tensor& log_probabilities);

struct RotationOptions {
  ADX_OPTIONS_STRUCT;
  /// rotations (4) or geom (72 = 2 flips x 9 translations x 4 rotations).
  ADX_ARG(TransformSet, transformations) = TransformSet::Rotations;
  /// dirichlet (GEOM's normality score) or log_likelihood (of the correct transformations).
  ADX_ARG(RotationScore, score) = RotationScore::Dirichlet;
  /// Transformations drawn per image and step (0 = all of them); a subset keeps GEOM affordable.
  ADX_ARG(int64_t, transforms_per_image) = 0;
  /// Channels of the classifier's conv stages (each stage halves H and W).
  ADX_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{32, 64, 128};
  /// 3x3 convolutions per stage.
  ADX_ARG(int64_t, convs_per_stage) = 1;
  /// Training loop settings.
  ADX_ARG(TrainOptions, train) = TrainOptions().epochs(10).batch_size(64);
  ADX_DETECTOR_OPTIONS(Preprocess::MinMax);

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// One geometric transformation: optional horizontal flip, then a reflect-padded
/// shift by (dx, dy), then k quarter turns.
struct GeometricTransform {
  bool flip = false;
  int64_t dx = 0, dy = 0, quarter_turns = 0;

  /// Pads `pad` values on both ends of `dim` by mirroring with the edge repeated
  /// ([b a | a b c d | d c]), scipy.ndimage's 'reflect' mode.
  static torch::Tensor symmetric_pad(const torch::Tensor& x, int64_t dim, int64_t pad) {
    if (pad == 0) return x;
    const int64_t n = x.size(dim);
    return torch::cat({x.slice(dim, 0, pad).flip(dim), x, x.slice(dim, n - pad, n).flip(dim)}, dim);
  }

  torch::Tensor apply(torch::Tensor x) const {
    if (flip) x = x.flip(3);
    if (dx != 0 || dy != 0) {
      const int64_t px = std::abs(dx), py = std::abs(dy);
      const auto padded = symmetric_pad(symmetric_pad(x, 3, px), 2, py);
      x = padded.slice(3, px - dx, px - dx + x.size(3)).slice(2, py - dy, py - dy + x.size(2));
    }
    if (quarter_turns != 0) x = torch::rot90(x, quarter_turns, {2, 3});
    return x;
  }
};

/// The transformation set for square images of side `size`.
inline std::vector<GeometricTransform> make_transforms(TransformSet set, int64_t size) {
  std::vector<GeometricTransform> out;
  if (set == TransformSet::Rotations) {
    for (int64_t k = 0; k < 4; ++k) out.push_back({false, 0, 0, k});
    return out;
  }
  const int64_t s = std::max<int64_t>(1, size / 4);
  for (bool flip : {false, true})
    for (int64_t dx : {int64_t{0}, -s, s})
      for (int64_t dy : {int64_t{0}, -s, s})
        for (int64_t k = 0; k < 4; ++k) out.push_back({flip, dx, dy, k});
  return out;
}

class Rotation : public DetectorWithOptions<RotationOptions> {
 public:
  using Options = RotationOptions;
  explicit Rotation(Options options = Options()) : DetectorWithOptions(std::move(options)) {
    ADX_CHECK_AS(OptionError, !options_.channels().empty(), "rotation needs at least one conv stage");
    ADX_CHECK_AS(OptionError, options_.convs_per_stage() >= 1, "convs_per_stage must be >= 1, got {}",
                 options_.convs_per_stage());
    ADX_CHECK_AS(OptionError, options_.transforms_per_image() >= 0, "transforms_per_image must be >= 0, got {}",
                 options_.transforms_per_image());
  }
  std::string type() const override { return "rotation"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kImage}; }
  int64_t num_transforms() const { return static_cast<int64_t>(transforms_.size()); }

 protected:
  void build(const std::vector<int64_t>& shape, const InputKind&) override {
    ADX_CHECK_AS(ShapeError, shape[1] == shape[2], "rotation needs square images, got {}x{}", shape[1], shape[2]);
    const int64_t min_side = 2 * (int64_t{1} << options_.channels().size());
    ADX_CHECK_AS(ShapeError, shape[1] >= min_side, "rotation with {} conv stages needs images of at least {}x{}, got {}x{}",
                 options_.channels().size(), min_side, min_side, shape[1], shape[2]);
    transforms_ = make_transforms(options_.transformations(), shape[1]);
    net_ = nn::make_conv_classifier(shape[0], options_.channels(), num_transforms(), options_.convs_per_stage());
    net_->to(device());
  }

  void fit_model(const Data& train, const Data& validation) override {
    train_module(*net_, train, validation, options_.train(),
                 [&](const Batch& in, bool training) {
                   const auto& x = in.x;
                   auto [inputs, targets] = transformed_batch(x, training);
                   return torch::cross_entropy_loss(net_->forward(inputs), targets);
                 },
                 progress(), type());
    fit_dirichlet(train);
  }

  Scores score_model(const Batch& batch) override {
    torch::Tensor total = torch::zeros({batch.size()}, batch.x.options());
    const bool dirichlet = options_.score() == RotationScore::Dirichlet;
    const auto alpha = dirichlet ? dirichlet_alpha_.to(batch.x.device(), batch.x.scalar_type()) : torch::Tensor();
    for (int64_t t = 0; t < num_transforms(); ++t) {
      const auto log_p = torch::log_softmax(net_->forward(transforms_[t].apply(batch.x)), 1);
      // The normality score sum_k (alpha_tk - 1) log p_tk, negated, or the correct class's log-likelihood.
      total -= dirichlet ? torch::mv(log_p, alpha[t] - 1.0) : log_p.select(1, t);
    }
    Scores s;
    s.per_item = total / static_cast<double>(num_transforms());
    return s;
  }
  torch::nn::Module* model() override { return net_.is_empty() ? nullptr : net_.ptr().get(); }
  void save_extra(TensorMap& state) const override { state["rotation.dirichlet_alpha"] = dirichlet_alpha_; }
  void load_extra(const TensorMap& state) override {
    auto it = state.find("rotation.dirichlet_alpha");
    ADX_CHECK_AS(IoError, it != state.end() && it->second.dim() == 2 && it->second.size(0) == num_transforms() &&
                              it->second.size(1) == num_transforms(),
                 "model file lacks rotation's Dirichlet parameters ({} x {})", num_transforms(), num_transforms());
    dirichlet_alpha_ = it->second.to(torch::kFloat64);
  }

 private:
  // Every transformation of every image, or a random subset of them per image when training.
  std::pair<torch::Tensor, torch::Tensor> transformed_batch(const torch::Tensor& x, bool training) {
    const int64_t n = x.size(0), all = num_transforms();
    const int64_t per = options_.transforms_per_image() > 0 ? std::min(options_.transforms_per_image(), all) : all;
    std::vector<torch::Tensor> inputs, targets;
    if (per == all || !training) {
      for (int64_t t = 0; t < all; ++t) {
        inputs.push_back(transforms_[t].apply(x));
        targets.push_back(torch::full({n}, t, torch::TensorOptions().dtype(torch::kLong).device(x.device())));
      }
    } else {
      // Each image gets `per` transformations drawn at random; group the draws by transformation.
      const auto draws = torch::randint(all, {n * per}, torch::TensorOptions().dtype(torch::kLong));
      const auto image_index = torch::arange(n).repeat({per});
      for (int64_t t = 0; t < all; ++t) {
        const auto picked = image_index.index({draws == t});
        if (picked.numel() == 0) continue;
        inputs.push_back(transforms_[t].apply(x.index_select(0, picked.to(x.device()))));
        targets.push_back(torch::full({picked.numel()}, t, torch::TensorOptions().dtype(torch::kLong).device(x.device())));
      }
    }
    return {torch::cat(inputs), torch::cat(targets)};
  }

  // GEOM fits one Dirichlet per transformation to the softmax outputs on the training images.
  void fit_dirichlet(const Data& train) {
    torch::NoGradGuard no_grad;
    net_->eval();
    const int64_t chunk = std::max<int64_t>(1, runtime().score_batch_size());
    std::vector<torch::Tensor> alphas;
    for (int64_t t = 0; t < num_transforms(); ++t) {
      const auto log_p = map_batches(train, chunk, [&](const Batch& b) {
        return torch::log_softmax(net_->forward(transforms_[t].apply(b.x)), 1).to(torch::kCPU, torch::kFloat64);
      });
      alphas.push_back(dirichlet_mle(log_p));
    }
    dirichlet_alpha_ = torch::stack(alphas);
  }

  torch::nn::Sequential net_{nullptr};
  std::vector<GeometricTransform> transforms_;
  torch::Tensor dirichlet_alpha_;  // T x T, double, CPU
};

}  // namespace adx
