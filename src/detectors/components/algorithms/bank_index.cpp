#include <adx/detectors/components/algorithms/bank_index.hpp>

#include <adx/core/error.hpp>
#include <adx/data/data.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <torch/types.h>

#include <cmath>
#include <cstring>

namespace adx {

struct BankIndex::Faiss {
  std::unique_ptr<faiss::Index> index;
  std::unique_ptr<faiss::Index> quantizer;  ///< IVF's coarse quantiser, owned here
};

namespace {

// faiss reports errors by throwing FaissException (and std::bad_alloc); adx reports Errors.
template <class F>
auto guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("faiss failed to {}: {}", what, e.what()));
  }
}

bool is_faiss_kind(SearchKind kind) { return kind != SearchKind::Exact; }

// Fewer cells than this leave too little to skip to repay the bounds' bookkeeping.
constexpr int64_t kMinimumCells = 4;
// Automatic cells start at banks of this many values: below it (measured at 256 px with ResNet-18, 2,048 x 384
// against 4,096 x 384) the bookkeeping costs more than the skipped distances save.
constexpr int64_t kMinimumCellBank = int64_t{1} << 20;

int64_t ivf_lists_for(const BankSearch& s, int64_t rows) {
  if (s.ivf_lists() > 0) return s.ivf_lists();
  // faiss's k-means wants about 39 training points per centroid.
  return std::max<int64_t>(1, std::min<int64_t>(std::llround(4 * std::sqrt(static_cast<double>(rows))), rows / 39));
}

}  // namespace

void BankSearch::check(const std::string& prefix) const {
  const OptionChecks c(prefix);
  c.that(compression() == BankCompression::None || is_faiss_kind(kind()), "compression",
         "sq8 needs a faiss search ('{}' flat, ivf or hnsw), not exact", c.key("kind"));
  c.at_least("exact_cells", exact_cells(), 0)
      .at_least("ivf_lists", ivf_lists(), 0)
      .at_least("ivf_probes", ivf_probes(), 1)
      .in("hnsw_m", hnsw_m(), 2, 256)
      .at_least("hnsw_ef_search", hnsw_ef_search(), 1);
}

BankIndex::BankIndex() = default;
BankIndex::~BankIndex() = default;
BankIndex::BankIndex(BankIndex&&) noexcept = default;
BankIndex& BankIndex::operator=(BankIndex&&) noexcept = default;

void BankIndex::build(const at::Tensor& bank, const BankSearch& s) {
  check_options(s);
  ADX_CHECK_AS(ShapeError, bank.defined() && bank.dim() == 2 && bank.size(0) >= 1 && bank.size(1) >= 1,
               "a memory bank is M x D with M, D >= 1, got {}",
               bank.defined() ? shape_string(bank.sizes().vec()) : "an undefined tensor");
  faiss_.reset();
  note_.clear();
  rows_ = bank.size(0);
  dims_ = bank.size(1);
  kind_ = s.kind();
  bank_ = bank;
  order_ = at::Tensor();
  cells_ = BankCells();
  if (!is_faiss_kind(s.kind())) {
    // Cells pay off on a CPU bank large enough to skip most of; elsewhere the bank is searched whole.
    if (s.exact_cells() == 0 && rows_ * dims_ < kMinimumCellBank) return;
    const int64_t cells = s.exact_cells() > 0 ? s.exact_cells() : std::llround(std::sqrt(static_cast<double>(rows_)));
    if (cells < kMinimumCells || !bank.device().is_cpu()) return;
    at::Tensor offsets;
    order_ = partition_bank(bank, cells, &offsets);
    bank_ = bank.index_select(0, order_).contiguous();
    cells_ = describe_cells(bank_, offsets);
    return;
  }
  bank_ = at::Tensor();
  const auto points = bank.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const auto d = static_cast<faiss::Index::idx_t>(dims_);
  const bool sq8 = s.compression() == BankCompression::Sq8;
  int64_t lists = 0;
  if (kind_ == SearchKind::Ivf) {
    lists = ivf_lists_for(s, rows_);
    if (lists > rows_) {
      note_ = fmt::format("ivf with {} lists needs at least as many bank rows, the bank has {}: searching flat (exact)",
                          lists, rows_);
      kind_ = SearchKind::Flat;
    }
  }
  faiss_ = std::make_unique<Faiss>();
  guarded("build the index", [&] {
    if (kind_ == SearchKind::Flat) {
      faiss_->index = sq8 ? std::unique_ptr<faiss::Index>(new faiss::IndexScalarQuantizer(
                                d, faiss::ScalarQuantizer::QT_8bit, faiss::METRIC_L2))
                          : std::unique_ptr<faiss::Index>(new faiss::IndexFlatL2(d));
    } else if (kind_ == SearchKind::Ivf) {
      faiss_->quantizer = std::make_unique<faiss::IndexFlatL2>(d);
      std::unique_ptr<faiss::IndexIVF> ivf;
      if (sq8)
        ivf.reset(new faiss::IndexIVFScalarQuantizer(faiss_->quantizer.get(), d, static_cast<size_t>(lists),
                                                     faiss::ScalarQuantizer::QT_8bit, faiss::METRIC_L2));
      else
        ivf.reset(new faiss::IndexIVFFlat(faiss_->quantizer.get(), d, static_cast<size_t>(lists), faiss::METRIC_L2));
      ivf->nprobe = static_cast<size_t>(std::min(s.ivf_probes(), lists));
      ivf->cp.seed = 1234;  // k-means starts from the same points on every fit
      ivf->verbose = false;
      faiss_->index = std::move(ivf);
    } else {
      std::unique_ptr<faiss::IndexHNSW> hnsw;
      if (sq8)
        hnsw.reset(new faiss::IndexHNSWSQ(static_cast<int>(d), faiss::ScalarQuantizer::QT_8bit, static_cast<int>(s.hnsw_m())));
      else
        hnsw.reset(new faiss::IndexHNSWFlat(static_cast<int>(d), static_cast<int>(s.hnsw_m())));
      hnsw->hnsw.efSearch = static_cast<int>(s.hnsw_ef_search());
      faiss_->index = std::move(hnsw);
    }
    if (!faiss_->index->is_trained) faiss_->index->train(rows_, points.data_ptr<float>());
    faiss_->index->add(rows_, points.data_ptr<float>());
    return 0;
  });
}

void BankIndex::search(const at::Tensor& queries, at::Tensor* distances, at::Tensor* indices,
                       const at::Tensor& query_groups, const at::Tensor& bank_groups) const {
  ADX_CHECK_AS(NotFittedError, built(), "the memory bank's index is not built");
  ADX_CHECK_AS(ShapeError, queries.dim() == 2 && queries.size(1) == dims_, "queries of shape {} for a bank of {} features",
               shape_string(queries.sizes().vec()), dims_);
  if (!faiss_) {
    nearest_neighbours_in_cells(queries, bank_, cells_, distances, indices, query_groups, bank_groups);
    return;
  }
  ADX_CHECK_AS(OptionError, !query_groups.defined(), "leave-one-out groups need exact search, not {}",
               kind_);
  const auto q = queries.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = q.size(0);
  auto squared = torch::empty({n}, torch::kFloat32);
  auto labels = torch::empty({n}, torch::kLong);
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "faiss ids are 64-bit");
  guarded("search the index", [&] {
    faiss_->index->search(n, q.data_ptr<float>(), 1, squared.data_ptr<float>(),
                          reinterpret_cast<faiss::Index::idx_t*>(labels.data_ptr<int64_t>()));
    return 0;
  });
  // faiss answers squared L2; adx's scores are distances. A query the index found nothing for (-1,
  // possible with few probes) is an error that says which setting to raise.
  const auto missing = labels.lt(0).nonzero().reshape({-1});
  if (missing.numel() > 0)
    throw Error(fmt::format("the {} index found no neighbour for {} of {} queries; raise ivf_probes or hnsw_ef_search",
                            kind_, missing.numel(), n));
  if (distances) *distances = squared.clamp_min(0).sqrt().to(queries.device());
  if (indices) *indices = labels.to(queries.device());
}

int64_t BankIndex::memory_bytes() const {
  if (!faiss_) return cells_.memory_bytes();
  const auto bytes = serialize();
  return bytes.numel();
}

at::Tensor BankIndex::serialize() const {
  if (!faiss_) return cells_.count() > 0 ? cells_.offsets.clone() : at::Tensor();
  faiss::VectorIOWriter writer;
  guarded("write the index", [&] {
    faiss::write_index(faiss_->index.get(), &writer);
    return 0;
  });
  auto out = torch::empty({static_cast<int64_t>(writer.data.size())}, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), writer.data.data(), writer.data.size());
  return out;
}

void BankIndex::deserialize(const at::Tensor& bytes, const at::Tensor& bank, const BankSearch& s) {
  ADX_CHECK_AS(IoError, bank.defined() && bank.dim() == 2 && bank.size(0) >= 1,
               "a nearest-neighbour index needs the M x D bank it indexes");
  const int64_t rows = bank.size(0), dims = bank.size(1);
  ADX_CHECK_AS(IoError, bytes.defined() && bytes.dim() == 1 && bytes.numel() > 0 &&
                            (bytes.scalar_type() == torch::kUInt8 || bytes.scalar_type() == torch::kLong),
               "model file has a malformed nearest-neighbour index record");
  if (bytes.scalar_type() == torch::kLong) {
    // Exact search's cells: the bank was saved grouped by cell, so only the boundaries are stored.
    ADX_CHECK_AS(IoError, !is_faiss_kind(s.kind()), "model file holds exact search's cells but its options ask for {}",
                 s.kind());
    BankCells cells;
    try {
      cells = describe_cells(bank, bytes);
    } catch (const ValueError& e) {
      throw IoError(fmt::format("model file has malformed cells for exact search: {}", e.what()));
    }
    faiss_.reset();
    bank_ = bank;
    order_ = at::Tensor();
    cells_ = std::move(cells);
    rows_ = rows;
    dims_ = dims;
    kind_ = SearchKind::Exact;
    note_.clear();
    return;
  }
  faiss::VectorIOReader reader;
  const auto b = bytes.contiguous();
  reader.data.assign(b.data_ptr<uint8_t>(), b.data_ptr<uint8_t>() + b.numel());
  auto faiss = std::make_unique<Faiss>();
  try {
    faiss->index.reset(faiss::read_index(&reader));
  } catch (const std::exception& e) {
    throw IoError(fmt::format("model file has an unreadable nearest-neighbour index: {}", e.what()));
  }
  ADX_CHECK_AS(IoError, faiss->index && faiss->index->ntotal == rows && faiss->index->d == dims,
               "model file's nearest-neighbour index holds {} x {} but the memory bank is {} x {}",
               faiss->index ? faiss->index->ntotal : 0, faiss->index ? faiss->index->d : 0, rows, dims);
  faiss_ = std::move(faiss);
  bank_ = at::Tensor();
  order_ = at::Tensor();
  cells_ = BankCells();
  rows_ = rows;
  dims_ = dims;
  // The kind actually saved (ivf may have fallen back to flat when it was built).
  kind_ = dynamic_cast<faiss::IndexIVF*>(faiss_->index.get())    ? SearchKind::Ivf
          : dynamic_cast<faiss::IndexHNSW*>(faiss_->index.get()) ? SearchKind::Hnsw
                                                                 : SearchKind::Flat;
  note_ = kind_ == s.kind() ? ""
                          : fmt::format("the saved index searches {} ({} was asked for)",
                                        kind_, s.kind());
}

}  // namespace adx
