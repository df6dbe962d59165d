#pragma once
// Graph convolution on a sparse normalised adjacency (adx::graph::normalized_adjacency):
// H' = A_hat (H W) + b with A_hat = D^-1/2 (A + I) D^-1/2 (Kipf & Welling 2017). The
// product is a sparse-dense matrix product, so memory grows with N + E, never N x N.
// A_hat must be symmetric (graph::normalized_adjacency makes it so).
#include <torch/torch.h>

#include <vector>

namespace adx::nn {

/// A_hat @ dense for a sparse COO matrix A_hat (N x M) and a dense M x F matrix. On the CPU the
/// product runs in CSR form, in parallel over blocks of rows (LibTorch 1.13's COO product is
/// single-threaded); each row is summed by one thread in the order of its entries, so the result
/// does not depend on the thread count. Other devices use LibTorch's product.
torch::Tensor sparse_dense_product(const torch::Tensor& sparse, const torch::Tensor& dense);

/// (z[first] * z[second]).sum(1): the dot product of the rows of each pair (first[e], second[e]) of z (N x d),
/// differentiable in z, without gathering the rows (the gathered form holds 3 E x d tensors). On the CPU the
/// pairs run in parallel and the result does not depend on the thread count; other devices gather.
torch::Tensor row_pair_dots(const torch::Tensor& z, const torch::Tensor& first, const torch::Tensor& second);

/// A_hat @ h for a symmetric sparse A_hat. LibTorch's sparse @ dense backward transposes
/// (and so re-sorts) the sparse matrix every time; for a symmetric one the gradient is
/// A_hat @ grad, the same product again.
class SymmetricSparseProduct : public torch::autograd::Function<SymmetricSparseProduct> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& adjacency,
                               const torch::Tensor& h) {
    ctx->saved_data["adjacency"] = adjacency;
    return sparse_dense_product(adjacency, h);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto adjacency = ctx->saved_data["adjacency"].toTensor();
    return {torch::Tensor(), sparse_dense_product(adjacency, grad[0])};
  }
};

inline torch::Tensor symmetric_spmm(const torch::Tensor& adjacency, const torch::Tensor& h) {
  return SymmetricSparseProduct::apply(adjacency, h);
}

class GcnLayerImpl : public torch::nn::Module {
 public:
  GcnLayerImpl(int64_t in, int64_t out)
      : linear(register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)))),
        bias(register_parameter("bias", torch::zeros({out}))) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& adjacency) {
    return symmetric_spmm(adjacency, linear->forward(x)) + bias;
  }
  /// The layer on an input already multiplied by A_hat: (A_hat x) W + b, equal to forward(x) up to rounding.
  torch::Tensor forward_propagated(const torch::Tensor& propagated_x) { return linear->forward(propagated_x) + bias; }
  torch::nn::Linear linear;
  torch::Tensor bias;
};
TORCH_MODULE(GcnLayer);

/// GCN layers of the given widths, ReLU (and dropout) between them, none after the last.
class GcnStackImpl : public torch::nn::Module {
 public:
  GcnStackImpl(const std::vector<int64_t>& widths, double dropout) : dropout_(dropout) {
    for (size_t i = 0; i + 1 < widths.size(); ++i) layers->push_back(GcnLayer(widths[i], widths[i + 1]));
    register_module("layers", layers);
  }
  /// With `propagated_x` = A_hat x (GraphStructure::propagated), the first layer skips its sparse product.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& adjacency, const torch::Tensor& propagated_x = {}) {
    for (size_t i = 0; i < layers->size(); ++i) {
      auto* layer = layers[i]->as<GcnLayer>();
      x = i == 0 && propagated_x.defined() ? layer->forward_propagated(propagated_x) : layer->forward(x, adjacency);
      if (i + 1 < layers->size()) x = torch::dropout(torch::relu(x), dropout_, is_training());
    }
    return x;
  }
  torch::nn::ModuleList layers;

 private:
  double dropout_;
};
TORCH_MODULE(GcnStack);

}  // namespace adx::nn
