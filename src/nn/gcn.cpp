#include <adx/nn/gcn.hpp>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

namespace adx::nn {
namespace {
// Entries ahead whose dense row is fetched early: 16 was fastest of 8, 16 and 32 at 10^5 and 10^6 nodes.
constexpr int64_t kPrefetchAhead = 16;

// The rows read are scattered over a large matrix, so the hardware cannot foresee them: fetching a row
// kPrefetchAhead entries early halved a sparse product's time on large graphs.
template <class scalar_t>
int64_t cache_lines_of(int64_t width) {
  return (width * static_cast<int64_t>(sizeof(scalar_t)) + 63) / 64;
}

template <class scalar_t>
void prefetch_row(const scalar_t* row, int64_t cache_lines) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int64_t line = 0; line < cache_lines; ++line) __builtin_prefetch(bytes + 64 * line);
}
}  // namespace

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
    const int64_t entries = start[rows];
    const int64_t cache_lines = cache_lines_of<scalar_t>(width);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scalar_t* __restrict__ target = result + r * width;
        for (int64_t k = start[r]; k < start[r + 1]; ++k) {
          if (k + kPrefetchAhead < entries) prefetch_row(in + column[k + kPrefetchAhead] * width, cache_lines);
          const scalar_t v = value[k];
          const scalar_t* __restrict__ source = in + column[k] * width;
          for (int64_t f = 0; f < width; ++f) target[f] += v * source[f];
        }
      }
    });
  });
  return out;
}

namespace {

class RowPairDots : public torch::autograd::Function<RowPairDots> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& z,
                               const torch::Tensor& first, const torch::Tensor& second) {
    ctx->save_for_backward({z, first, second});
    const int64_t pairs = first.size(0), width = z.size(1);
    auto out = torch::empty({pairs}, z.options());
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "row_pair_dots", [&] {
      const scalar_t* rows = z.data_ptr<scalar_t>();
      const int64_t* a = first.data_ptr<int64_t>();
      const int64_t* b = second.data_ptr<int64_t>();
      scalar_t* dots = out.data_ptr<scalar_t>();
      const int64_t cache_lines = cache_lines_of<scalar_t>(width);
      at::parallel_for(0, pairs, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, width)), [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) {
          if (e + kPrefetchAhead < end) {
            prefetch_row(rows + a[e + kPrefetchAhead] * width, cache_lines);
            prefetch_row(rows + b[e + kPrefetchAhead] * width, cache_lines);
          }
          const scalar_t* __restrict__ u = rows + a[e] * width;
          const scalar_t* __restrict__ v = rows + b[e] * width;
          scalar_t sum = 0;
          for (int64_t f = 0; f < width; ++f) sum += u[f] * v[f];
          dots[e] = sum;
        }
      });
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto& z = saved[0];
    const auto& first = saved[1];
    const auto& second = saved[2];
    const auto g = grad[0].contiguous();
    const int64_t pairs = first.size(0), nodes = z.size(0), width = z.size(1);
    auto grad_z = torch::zeros_like(z);
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "row_pair_dots_backward", [&] {
      const scalar_t* rows = z.data_ptr<scalar_t>();
      const scalar_t* weight = g.data_ptr<scalar_t>();
      const int64_t* a = first.data_ptr<int64_t>();
      const int64_t* b = second.data_ptr<int64_t>();
      scalar_t* out = grad_z.data_ptr<scalar_t>();
      const auto add = [&](int64_t to, int64_t from, scalar_t w) {
        scalar_t* __restrict__ target = out + to * width;
        const scalar_t* __restrict__ source = rows + from * width;
        for (int64_t f = 0; f < width; ++f) target[f] += w * source[f];
      };
      // Each thread owns a block of z's rows and adds, in pair order, what falls into it: no two threads
      // write one row, and every row sums in the same order whatever the thread count.
      const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
      at::parallel_for(0, nodes, (nodes + threads - 1) / threads, [&](int64_t begin, int64_t end) {
        for (int64_t e = 0; e < pairs; ++e) {
          if (a[e] >= begin && a[e] < end) add(a[e], b[e], weight[e]);
          if (b[e] >= begin && b[e] < end) add(b[e], a[e], weight[e]);
        }
      });
    });
    return {grad_z, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor row_pair_dots(const torch::Tensor& z, const torch::Tensor& first, const torch::Tensor& second) {
  TORCH_CHECK(z.dim() == 2 && first.dim() == 1 && second.sizes() == first.sizes(),
              "row_pair_dots: an N x d matrix and two index vectors of one length, got ", z.sizes(), ", ",
              first.sizes(), " and ", second.sizes());
  const auto type = z.scalar_type();
  if (!z.device().is_cpu() || (type != torch::kFloat32 && type != torch::kFloat64))
    return (z.index_select(0, first) * z.index_select(0, second)).sum(1);
  const auto check = [&](const torch::Tensor& index) {
    const auto as_long = index.to(torch::kLong).contiguous();
    TORCH_CHECK(as_long.numel() == 0 || (as_long.min().item<int64_t>() >= 0 && as_long.max().item<int64_t>() < z.size(0)),
                "row_pair_dots: an index outside the ", z.size(0), " rows");
    return as_long;
  };
  return RowPairDots::apply(z.contiguous(), check(first), check(second));
}

}  // namespace adx::nn
