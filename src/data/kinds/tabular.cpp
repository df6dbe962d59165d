// Tabular input: N x D; an item is a row.
#include "reading.hpp"

#include <adx/core/error.hpp>
#include <adx/data/input_kind.hpp>

#include <torch/types.h>

namespace adx {
namespace {

class TabularKind final : public RowKind {
 public:
  std::string name() const override { return kinds::kTabular; }
  void validate(const Data& data, const char* what) const override {
    validate_values(data, what, 2, "N x D");
    if (data.labels.defined())
      ADX_CHECK_AS(ShapeError, data.labels.numel() == data.x.size(0), "{}: {} labels for {} rows", what,
                   data.labels.numel(), data.x.size(0));
    check_finite(data.x, what, "item");
  }
  Preprocess default_preprocess() const override { return Preprocess::Standardize; }
  /// A CSV (any name that is not NPY or IDX) or NPY table.
  Data read(const std::string& path, const ReadOptions& /*options*/, std::vector<std::string>* columns) const override {
    return items_from(kind_reading::table_values(kind_reading::read_array(path, true, columns), path));
  }
};

}  // namespace

std::shared_ptr<const InputKind> make_tabular_kind() { return std::make_shared<TabularKind>(); }

Data Data::tabular(at::Tensor x) { return adx::input_kind(kinds::kTabular).items_from(std::move(x)); }

}  // namespace adx
