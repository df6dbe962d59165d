#include <adx/core/error.hpp>
#include <adx/io/model_file.hpp>

#include <torch/types.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

namespace adx {
namespace {

constexpr char kMagic[8] = {'A', 'D', 'X', 'M', 'O', 'D', 'E', 'L'};

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

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

// Bounds-checked reader: running past the end means the file is truncated.
class Reader {
 public:
  Reader(const std::string& bytes, size_t begin, size_t end, const std::string& path)
      : bytes_(bytes), pos_(begin), end_(end), path_(path) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string get_string() {
    const auto n = get<uint32_t>();
    need(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  const char* take(size_t n) {
    need(n);
    const char* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  bool done() const { return pos_ == end_; }

 private:
  void need(size_t n) const {
    if (n > end_ - pos_)
      throw IoError(fmt::format("model file '{}' is corrupt: a record runs past the end of the body", path_));
  }
  const std::string& bytes_;
  size_t pos_, end_;
  const std::string& path_;
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

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ADX_CHECK_AS(IoError, out.good(), "cannot write model file '{}': {}", tmp, std::strerror(errno));
    out.write(kMagic, sizeof(kMagic));
    std::string head;
    put<uint32_t>(head, kModelFormatVersion);
    put<uint64_t>(head, static_cast<uint64_t>(body.size()));
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    std::string tail;
    put<uint64_t>(tail, fnv1a(body));
    out.write(tail.data(), static_cast<std::streamsize>(tail.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError(fmt::format("writing model file '{}' failed (disk full?)", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError(fmt::format("cannot move model file into place at '{}': {}", path, reason));
  }
}

ModelFile read_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in.good(), "cannot open model file '{}': {}", path, std::strerror(errno));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ADX_CHECK_AS(IoError, bytes.size() >= 20 && std::memcmp(bytes.data(), kMagic, 8) == 0,
               "'{}' is not an adx model file (bad magic; {} bytes)", path, bytes.size());
  Reader head(bytes, 8, 20, path);
  ModelFile model;
  model.format_version = head.get<uint32_t>();
  ADX_CHECK_AS(IoError, model.format_version >= 1 && model.format_version <= kModelFormatVersion,
               "model file '{}' has format version {}, this adx reads versions 1 to {}; upgrade adx",
               path, model.format_version, kModelFormatVersion);
  const auto body_len = head.get<uint64_t>();
  ADX_CHECK_AS(IoError, bytes.size() == 20 + body_len + 8,
               "model file '{}' is truncated or padded: {} bytes, expected {}", path, bytes.size(),
               20 + body_len + 8);
  uint64_t stored_sum = 0;
  std::memcpy(&stored_sum, bytes.data() + 20 + body_len, 8);
  ADX_CHECK_AS(IoError, stored_sum == fnv1a(bytes.substr(20, body_len)),
               "model file '{}' is corrupt: checksum mismatch", path);

  Reader r(bytes, 20, 20 + body_len, path);
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
    std::vector<int64_t> shape(rank);
    for (auto& d : shape) d = r.get<int64_t>();
    const auto nbytes = r.get<uint64_t>();
    at::ScalarType dtype = at::kFloat;
    bool known = false;
    for (const auto& [dt, c] : dtype_codes())
      if (c == code) dtype = dt, known = true;
    ADX_CHECK_AS(IoError, known, "model file '{}': tensor '{}' has unknown dtype code {}", path, name, code);
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    ADX_CHECK_AS(IoError, t.nbytes() == nbytes, "model file '{}': tensor '{}' size mismatch", path, name);
    std::memcpy(t.data_ptr(), r.take(nbytes), nbytes);
    model.tensors[name] = t;
  }
  ADX_CHECK_AS(IoError, r.done(), "model file '{}' has trailing bytes in its body", path);
  return model;
}

}  // namespace adx
