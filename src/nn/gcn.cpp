#include <adx/nn/gcn.hpp>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

namespace adx::nn {

torch::Tensor sparse_dense_product(const torch::Tensor& sparse, const torch::Tensor& dense) {
  TORCH_CHECK(sparse.is_sparse() && sparse.dim() == 2 && dense.dim() == 2 && sparse.size(1) == dense.size(0),
              "sparse_dense_product: a sparse N x M and a dense M x F matrix, got ", sparse.sizes(), " and ",
              dense.sizes());
  const auto type = dense.scalar_type();
  if (!sparse.device().is_cpu() || !dense.device().is_cpu() || (type != torch::kFloat32 && type != torch::kFloat64))
    return torch::mm(sparse, dense);
  // Coalesced COO is sorted by row: CSR needs only the row offsets.
  const auto a = sparse.is_coalesced() ? sparse : sparse.coalesce();
  const int64_t rows = a.size(0), width = dense.size(1);
  const auto indices = a._indices();
  const auto row_start =
      torch::zeros({rows + 1}, torch::kLong).index_add_(0, indices[0] + 1, torch::ones_like(indices[0])).cumsum(0);
  const auto columns = indices[1].contiguous();
  const auto h = dense.contiguous();
  const auto values = a._values().to(h.scalar_type()).contiguous();
  auto out = torch::zeros({rows, width}, h.options());
  const int64_t* start = row_start.data_ptr<int64_t>();
  const int64_t* column = columns.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_dense_product", [&] {
    const scalar_t* in = h.data_ptr<scalar_t>();
    const scalar_t* value = values.data_ptr<scalar_t>();
    scalar_t* result = out.data_ptr<scalar_t>();
    // About 32k multiply-adds per task, so that narrow products are not split into idle slivers.
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, width * (start[rows] / std::max<int64_t>(1, rows) + 1)));
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scalar_t* __restrict__ target = result + r * width;
        for (int64_t k = start[r]; k < start[r + 1]; ++k) {
          const scalar_t v = value[k];
          const scalar_t* __restrict__ source = in + column[k] * width;
          for (int64_t f = 0; f < width; ++f) target[f] += v * source[f];
        }
      }
    });
  });
  return out;
}

}  // namespace adx::nn
