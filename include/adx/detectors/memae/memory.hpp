#pragma once
// The memory module of MemAE (Gong et al., ICCV 2019): a code is replaced by a sparse
// combination of learned prototype codes, so that an anomaly, whose code no combination
// of normal prototypes fits, is reconstructed badly. Works on codes of any layout:
// B x C (tabular), B x C x H x W (images) or B x C x T x H x W (video); each position's
// C-vector is addressed on its own.
#include <torch/torch.h>

namespace adx::nn {

/// Hard shrinkage of attention weights, as MemAE's code writes it with ReLUs so that it
/// has a gradient: max(w - lambda, 0) * w / (|w - lambda| + eps). Weights at or below lambda
/// become 0; the others keep their value.
inline torch::Tensor hard_shrink_relu(const torch::Tensor& weights, double lambda, double eps = 1e-12) {
  return torch::relu(weights - lambda) * weights / ((weights - lambda).abs() + eps);
}

/// Mean entropy -sum_i w_i log w_i of rows of attention weights (MemAE's entropy loss, eps 1e-12).
inline torch::Tensor attention_entropy(const torch::Tensor& weights, double eps = 1e-12) {
  return (-(weights * torch::log(weights + eps)).sum(1)).mean();
}

struct MemoryOptions {
  int64_t slots = 2000;       ///< memory items N
  int64_t width = 256;        ///< code width C
  double shrink = 0.0025;     ///< hard-shrinkage threshold lambda (0 = none)
};

class MemoryImpl : public torch::nn::Module {
 public:
  explicit MemoryImpl(MemoryOptions options) : options_(options) {
    TORCH_CHECK(options.slots >= 1 && options.width >= 1, "memory needs slots and width >= 1");
    // As the reference: uniform in +-1/sqrt(width).
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.width));
    items = register_parameter("items", torch::empty({options.slots, options.width}).uniform_(-bound, bound));
  }

  struct Output {
    torch::Tensor code;     ///< the code read from memory, same layout as the input
    torch::Tensor weights;  ///< positions x slots, after shrinkage and L1 renormalisation
  };

  /// `code`: B x C x ... (channels second); every position is addressed.
  Output forward(const torch::Tensor& code) {
    TORCH_CHECK(code.dim() >= 2 && code.size(1) == options_.width, "memory of width ", options_.width,
                " got a code with ", code.dim() >= 2 ? code.size(1) : 0, " channels");
    // B x C x rest -> (B * rest) x C
    auto rows = code.dim() == 2 ? code : code.flatten(2).transpose(1, 2).reshape({-1, options_.width});
    auto weights = torch::softmax(rows.matmul(items.t()), 1);
    if (options_.shrink > 0) {
      weights = hard_shrink_relu(weights, options_.shrink);
      weights = weights / weights.sum(1, true).clamp_min(1e-12);  // F.normalize(p=1)
    }
    auto read = weights.matmul(items);
    if (code.dim() > 2) {
      std::vector<int64_t> shape(code.sizes().begin(), code.sizes().end());
      read = read.reshape({code.size(0), -1, options_.width}).transpose(1, 2).reshape(shape);
    }
    return {read, weights};
  }

  const MemoryOptions& options() const { return options_; }
  torch::Tensor items;  ///< slots x width

 private:
  MemoryOptions options_;
};
TORCH_MODULE(Memory);

}  // namespace adx::nn
