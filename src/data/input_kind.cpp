#include <adx/core/error.hpp>
#include <adx/data/input_kind.hpp>

#include <torch/types.h>

#include <map>
#include <mutex>

namespace adx {

Data InputKind::slice(const Data& data, int64_t begin, int64_t end) const {
  return select(data, torch::arange(begin, end, torch::TensorOptions().dtype(torch::kLong)));
}

std::pair<Data, Data> InputKind::holdout(const Data& data, double fraction) const {
  const int64_t n = size(data);
  const int64_t n_val = static_cast<int64_t>(std::floor(fraction * static_cast<double>(n)));
  if (n_val < 1 || n - n_val < 2) return {data, select(data, torch::zeros({0}, torch::kLong))};
  const auto order = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong));
  return {select(data, order.slice(0, n_val, n)), select(data, order.slice(0, 0, n_val))};
}

Data InputKind::items_from(at::Tensor /*x*/) const {
  throw NotSupportedError(fmt::format("{} data are not rows of items; they cannot be built from rows alone", name()));
}

Data InputKind::from_steps(at::Tensor /*steps*/, Windows /*windows*/) const {
  throw NotSupportedError(fmt::format("{} data have no steps to cut into windows", name()));
}

Data InputKind::read(const std::string& path, const ReadOptions& /*options*/,
                     std::vector<std::string>* /*columns*/) const {
  throw NotSupportedError(fmt::format("{} data cannot be read from a file ({})", name(), path));
}

Data InputKind::to_device(const Data& data, const c10::Device& device) const {
  Data out = data;
  for (at::Tensor* t : {&out.x, &out.masks, &out.labels, &out.timestamps, &out.edge_index, &out.edge_weight,
                        &out.items})
    if (t->defined()) *t = t->to(device);
  return out;
}

std::vector<int64_t> RowKind::item_shape(const Data& data) const {
  if (!data.x.defined()) return {};
  auto sizes = data.x.sizes().vec();
  sizes.erase(sizes.begin());
  return sizes;
}

Data RowKind::select(const Data& data, const at::Tensor& indices) const {
  Data d = data;
  d.x = data.x.index_select(0, indices.to(data.x.device()));
  for (at::Tensor* t : {&d.masks, &d.labels})
    if (t->defined()) *t = t->index_select(0, indices.to(t->device()));
  return d;
}

Data RowKind::slice(const Data& data, int64_t begin, int64_t end) const {
  Data d = data;
  d.x = data.x.slice(0, begin, end);
  for (at::Tensor* t : {&d.masks, &d.labels})
    if (t->defined()) *t = t->slice(0, begin, end);
  return d;
}

Data RowKind::items_from(at::Tensor x) const {
  Data d;
  d.x = std::move(x);
  d.kind = this;
  return d;
}

Batch RowKind::collate(const Data& data) const {
  Batch b;
  b.x = data.x;
  b.masks = data.masks;
  return b;
}

at::Tensor map_batches(const Data& data, int64_t chunk, const std::function<at::Tensor(const Batch&)>& fn) {
  at::NoGradGuard no_grad;
  const auto& kind = data.input_kind();
  const int64_t n = kind.size(data);
  std::vector<at::Tensor> parts;
  chunk = std::max<int64_t>(1, chunk);
  for (int64_t b = 0; b < n; b += chunk) parts.push_back(fn(kind.collate(kind.slice(data, b, std::min(n, b + chunk)))));
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

void validate_values(const Data& data, const char* what, int64_t rank, const char* layout) {
  ADX_CHECK_AS(ShapeError, data.x.defined(), "{}: no tensor given (x is undefined)", what);
  const auto shape = shape_string(data.x.sizes().vec());
  ADX_CHECK_AS(ShapeError, data.x.dim() == rank, "{}: {} data must be {}, got shape {}", what, data.kind_name(),
               layout, shape);
  ADX_CHECK_AS(ShapeError, data.x.size(0) > 0, "{} is empty (shape {})", what, shape);
  ADX_CHECK_AS(ShapeError, data.x.numel() > 0, "{}: its items hold no values (shape {})", what, shape);
  ADX_CHECK_AS(ShapeError, data.x.is_floating_point(),
               "{} must be a floating-point tensor, got dtype {}; convert with x.to(torch::kFloat32)", what,
               std::string(c10::toString(data.x.scalar_type())));
}

namespace {

std::mutex& kinds_mutex() {
  static std::mutex m;
  return m;
}

// The explicit table of built-in kinds (no static registration objects, which a static library may drop).
std::map<std::string, std::shared_ptr<const InputKind>>& kind_table() {
  static std::map<std::string, std::shared_ptr<const InputKind>> table = [] {
    std::map<std::string, std::shared_ptr<const InputKind>> t;
    for (auto k : {make_tabular_kind(), make_image_kind(), make_series_kind(), make_graph_kind(), make_video_kind()})
      t[k->name()] = k;
    return t;
  }();
  return table;
}

}  // namespace

const InputKind& input_kind(const std::string& name) {
  std::lock_guard<std::mutex> lock(kinds_mutex());
  auto& table = kind_table();
  auto it = table.find(name);
  if (it == table.end()) {
    std::string known;
    for (const auto& kv : table) known += (known.empty() ? "" : ", ") + kv.first;
    throw OptionError(fmt::format("unknown input kind '{}'; known kinds: {}", name, known));
  }
  return *it->second;
}

std::vector<std::string> input_kind_names() {
  std::lock_guard<std::mutex> lock(kinds_mutex());
  std::vector<std::string> names;
  for (const auto& kv : kind_table()) names.push_back(kv.first);
  return names;
}

void register_input_kind(std::shared_ptr<const InputKind> kind) {
  ADX_CHECK_AS(OptionError, kind != nullptr, "register_input_kind got no kind");
  const auto name = kind->name();
  ADX_CHECK_AS(OptionError, !name.empty(), "an input kind needs a non-empty name");
  std::lock_guard<std::mutex> lock(kinds_mutex());
  // Replacing keeps the old object alive: Data may still point at it.
  static std::vector<std::shared_ptr<const InputKind>> retired;
  auto& slot = kind_table()[name];
  if (slot) retired.push_back(slot);
  slot = std::move(kind);
}

}  // namespace adx
