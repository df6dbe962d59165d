#include <adx/core/error.hpp>
#include <adx/core/hash.hpp>
#include <adx/core/shape.hpp>
#include <adx/io/files.hpp>
#include <adx/io/model_file.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace adx {
namespace {

constexpr char kMagic[8] = {'A', 'D', 'X', 'M', 'O', 'D', 'E', 'L'};

template <class T>
void put(std::string& out, T value) {
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out.append(buf, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Reads the body straight from the file, hashing as it goes, so a model costs
// its tensors' memory once (no copy of the whole file). Running past the body's
// declared end means the file is truncated or corrupt.
class BodyReader {
 public:
  BodyReader(std::ifstream& in, uint64_t length, const std::string& path) : in_(in), left_(length), path_(path) {}
  template <class T>
  T get() {
    T value;
    read(reinterpret_cast<char*>(&value), sizeof(T));
    return value;
  }
  std::string get_string() {
    const auto n = get<uint32_t>();
    need(n);
    std::string s(n, '\0');
    read(s.data(), n);
    return s;
  }
  void read(char* out, uint64_t n) {
    need(n);
    in_.read(out, static_cast<std::streamsize>(n));
    ADX_CHECK_AS(IoError, static_cast<uint64_t>(in_.gcount()) == n, "model file '{}' could not be read", path_);
    hash_.update(out, n);
    left_ -= n;
  }
  uint64_t left() const { return left_; }
  uint64_t hash() const { return hash_.value(); }
  void need(uint64_t n) const {
    if (n > left_)
      throw IoError(fmt::format("model file '{}' is corrupt: a record runs past the end of the body", path_));
  }

 private:
  std::ifstream& in_;
  uint64_t left_;
  const std::string& path_;
  Fnv1a hash_;
};

// Stable on-disk dtype codes (independent of LibTorch's enum numbering).
const std::vector<std::pair<at::ScalarType, uint8_t>>& dtype_codes() {
  static const std::vector<std::pair<at::ScalarType, uint8_t>> codes{
      {at::kFloat, 1}, {at::kDouble, 2}, {at::kHalf, 3}, {at::kBFloat16, 4}, {at::kByte, 5},
      {at::kChar, 6},  {at::kShort, 7},  {at::kInt, 8},  {at::kLong, 9},     {at::kBool, 10}};
  return codes;
}

}  // namespace

void write_model_file(const std::string& path, const ModelFile& model) {
  std::string body;
  put_string(body, model.type);
  for (const auto* map : {&model.options, &model.metadata}) {
    put<uint32_t>(body, static_cast<uint32_t>(map->size()));
    for (const auto& [k, v] : *map) {
      put_string(body, k);
      put_string(body, v);
    }
  }
  put<uint32_t>(body, static_cast<uint32_t>(model.tensors.size()));
  for (const auto& [name, tensor] : model.tensors) {
    ADX_CHECK_AS(IoError, tensor.defined(), "cannot save undefined tensor '{}'", name);
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    uint8_t code = 0;
    for (const auto& [dt, c] : dtype_codes())
      if (dt == t.scalar_type()) code = c;
    ADX_CHECK_AS(IoError, code != 0, "cannot save tensor '{}' of dtype {}", name, c10::toString(t.scalar_type()));
    put_string(body, name);
    put<uint8_t>(body, code);
    put<uint8_t>(body, static_cast<uint8_t>(t.dim()));
    for (auto d : t.sizes()) put<int64_t>(body, d);
    put<uint64_t>(body, static_cast<uint64_t>(t.nbytes()));
    body.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }

  std::string head;
  put<uint32_t>(head, kModelFormatVersion);
  put<uint64_t>(head, static_cast<uint64_t>(body.size()));
  std::string tail;
  Fnv1a checksum;
  checksum.update(body.data(), body.size());
  put<uint64_t>(tail, checksum.value());
  write_file_atomically(path, {std::string_view(kMagic, sizeof(kMagic)), head, body, tail}, "model file");
}

std::string adx_version() { return ADX_VERSION_STRING; }

void ModelInfo::to_metadata(std::map<std::string, std::string>& metadata) const {
  metadata["model_version"] = version;
  metadata["created_at"] = created_at;
  metadata["adx_version"] = adx_version;
  metadata["training_items"] = std::to_string(training_items);
  std::string shape;
  for (const int64_t d : training_shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
  metadata["training_shape"] = shape;
  metadata["training_hash"] = training_hash;
}

ModelInfo ModelInfo::from_metadata(const std::map<std::string, std::string>& metadata) {
  ModelInfo info;
  auto get = [&](const char* key) {
    auto it = metadata.find(key);
    return it == metadata.end() ? std::string() : it->second;
  };
  info.version = get("model_version");
  info.created_at = get("created_at");
  info.adx_version = get("adx_version");
  // Counts and shapes are facts for display only: a malformed one reads as unknown, never as an error.
  const auto items = get("training_items");
  if (!items.empty() && items.size() < 19 && items.find_first_not_of("0123456789") == std::string::npos)
    info.training_items = std::stoll(items);
  const auto shape = get("training_shape");
  size_t begin = 0;
  while (begin < shape.size() && info.training_shape.size() < kMaxFileTensorRank) {
    const size_t end = std::min(shape.find('x', begin), shape.size());
    const auto part = shape.substr(begin, end - begin);
    if (part.empty() || part.size() >= 19 || part.find_first_not_of("0123456789") != std::string::npos) {
      info.training_shape.clear();
      break;
    }
    info.training_shape.push_back(std::stoll(part));
    begin = end + 1;
  }
  info.training_hash = get("training_hash");
  return info;
}

ModelFile read_model_file(const std::string& path) {
  const uint64_t file_size = regular_file_size(path, "model file");
  std::ifstream in(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in.good(), "cannot open model file '{}': {}", path, std::strerror(errno));
  char head[20] = {};
  in.read(head, sizeof(head));
  ADX_CHECK_AS(IoError, in.gcount() == 20 && std::memcmp(head, kMagic, 8) == 0,
               "'{}' is not an adx model file (bad magic; {} bytes)", path, file_size);
  ModelFile model;
  uint64_t body_len = 0;
  std::memcpy(&model.format_version, head + 8, 4);
  std::memcpy(&body_len, head + 12, 8);
  ADX_CHECK_AS(IoError, model.format_version >= 1 && model.format_version <= kModelFormatVersion,
               "model file '{}' has format version {}, this adx reads versions 1 to {}; upgrade adx",
               path, model.format_version, kModelFormatVersion);
  ADX_CHECK_AS(IoError, body_len <= file_size && file_size == 20 + body_len + 8,
               "model file '{}' is truncated or padded: {} bytes, its header says {}", path, file_size,
               body_len <= file_size ? 20 + body_len + 8 : body_len);

  BodyReader r(in, body_len, path);
  model.type = r.get_string();
  auto read_map = [&r](OptionMap& map) {
    const auto n = r.get<uint32_t>();
    for (uint32_t i = 0; i < n; ++i) {
      auto key = r.get_string();
      map[key] = r.get_string();
    }
  };
  read_map(model.options);
  if (model.format_version >= 2) read_map(model.metadata);  // format 1 had no metadata
  const auto n_tensors = r.get<uint32_t>();
  for (uint32_t i = 0; i < n_tensors; ++i) {
    const auto name = r.get_string();
    const auto code = r.get<uint8_t>();
    const auto rank = r.get<uint8_t>();
    const std::string what = fmt::format("model file '{}': tensor '{}'", path, name);
    ADX_CHECK_AS(IoError, rank <= kMaxFileTensorRank, "{} has rank {}, more than {}", what, rank, kMaxFileTensorRank);
    std::vector<int64_t> shape(rank);
    for (auto& d : shape) d = r.get<int64_t>();
    const auto nbytes = r.get<uint64_t>();
    at::ScalarType dtype = at::kFloat;
    bool known = false;
    for (const auto& [dt, c] : dtype_codes())
      if (c == code) dtype = dt, known = true;
    ADX_CHECK_AS(IoError, known, "{} has unknown dtype code {}", what, code);
    // Every size is checked against the bytes the file really holds before anything is allocated.
    ADX_CHECK_AS(IoError, checked_tensor_bytes(shape, c10::elementSize(dtype), what) == nbytes,
                 "{}: shape {} does not match its {} bytes", what, shape_string(shape), nbytes);
    r.need(nbytes);
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    r.read(static_cast<char*>(t.data_ptr()), nbytes);
    model.tensors[name] = t;
  }
  ADX_CHECK_AS(IoError, r.left() == 0, "model file '{}' has trailing bytes in its body", path);
  uint64_t stored_sum = 0;
  in.read(reinterpret_cast<char*>(&stored_sum), 8);
  ADX_CHECK_AS(IoError, in.gcount() == 8 && stored_sum == r.hash(), "model file '{}' is corrupt: checksum mismatch",
               path);
  return model;
}

}  // namespace adx
