// A small pickle reader for torch.save's zip archives. LibTorch's own
// torch::pickle_load rejects the OrderedDict that model.state_dict() returns,
// which is what users hold, so adx reads the few opcodes a state dict uses.
#include <adx/core/error.hpp>
#include <adx/io/files.hpp>
#include <adx/io/state_dict.hpp>

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>

namespace adx {
namespace {

struct PyValue;
// Values live in the unpickler's arena and refer to each other by plain pointers:
// freeing them is flat, so neither a deeply nested nor a self-referencing pickle
// can exhaust the stack or leak.
using PyRef = PyValue*;

// The Python values a state-dict pickle is made of.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor, Mark } kind;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                            // String; Global as "module.name"
  std::vector<PyRef> items;                    // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> dict;   // Dict, in insertion order
  torch::Tensor tensor;                        // Storage (flat), Tensor
  explicit PyValue(Kind k) : kind(k) {}
};

c10::ScalarType storage_dtype(const std::string& global, const std::string& path) {
  static const std::map<std::string, c10::ScalarType> types{
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  auto it = types.find(global);
  ADX_CHECK_AS(IoError, it != types.end(), "{}: tensor storage of unsupported type {}", path, global);
  return it->second;
}

class StateDictUnpickler {
 public:
  StateDictUnpickler(const std::string& bytes, caffe2::serialize::PyTorchStreamReader& reader, std::string path)
      : bytes_(bytes), reader_(reader), path_(std::move(path)) {}

  PyRef make(PyValue::Kind k) {
    arena_.push_back(std::make_unique<PyValue>(k));
    return arena_.back().get();
  }

  PyRef run() {
    while (true) {
      const auto op = static_cast<unsigned char>(next(1)[0]);
      switch (op) {
        case 0x80: next(1); break;                                   // PROTO
        case 0x95: next(8); break;                                   // FRAME
        case '.': ADX_CHECK_AS(IoError, stack_.size() == 1, "{}: malformed pickle", path_); return stack_.back();
        case '(': push(make(PyValue::Kind::Mark)); break;
        case 'N': push(make(PyValue::Kind::None)); break;
        case 0x88: case 0x89: { auto v = make(PyValue::Kind::Bool); v->integer = op == 0x88; push(v); break; }
        case 'J': push_int(read_le<int32_t>()); break;
        case 'K': push_int(read_le<uint8_t>()); break;
        case 'M': push_int(read_le<uint16_t>()); break;
        case 0x8a: {                                                  // LONG1
          const auto n = read_le<uint8_t>();
          ADX_CHECK_AS(IoError, n <= 8, "{}: integer of {} bytes is too long", path_, n);
          const auto raw = next(n);
          int64_t value = 0;
          for (size_t i = 0; i < n; ++i) value |= static_cast<int64_t>(static_cast<unsigned char>(raw[i])) << (8 * i);
          if (n > 0 && n < 8 && (static_cast<unsigned char>(raw[n - 1]) & 0x80)) value -= int64_t{1} << (8 * n);
          push_int(value);
          break;
        }
        case 'G': {                                                   // BINFLOAT, big-endian
          const auto raw = next(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(raw[i]);
          auto v = make(PyValue::Kind::Float);
          std::memcpy(&v->real, &bits, 8);
          push(v);
          break;
        }
        case 'X': push_string(next(read_le<uint32_t>())); break;     // BINUNICODE
        case 0x8c: push_string(next(read_le<uint8_t>())); break;     // SHORT_BINUNICODE
        case 'c': {                                                   // GLOBAL module\nname\n
          auto v = make(PyValue::Kind::Global);
          const auto module = line();  // two statements: the module name comes first
          v->text = module + "." + line();
          push(v);
          break;
        }
        case 'q': memo_[read_le<uint8_t>()] = top(); break;          // BINPUT
        case 'r': memo_[read_le<uint32_t>()] = top(); break;         // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;               // MEMOIZE
        case 'h': push(memo(read_le<uint8_t>())); break;             // BINGET
        case 'j': push(memo(read_le<uint32_t>())); break;            // LONG_BINGET
        case '}': push(make(PyValue::Kind::Dict)); break;
        case ']': push(make(PyValue::Kind::List)); break;
        case ')': push(make(PyValue::Kind::Tuple)); break;
        case 't': { auto v = make(PyValue::Kind::Tuple); v->items = pop_to_mark(); push(v); break; }
        case 0x85: case 0x86: case 0x87: {                            // TUPLE1..3
          auto v = make(PyValue::Kind::Tuple);
          v->items.resize(op - 0x84);
          for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
          push(v);
          break;
        }
        case 'a': { auto item = pop(); top()->items.push_back(item); break; }
        case 'e': { auto items = pop_to_mark(); for (auto& i : items) top()->items.push_back(i); break; }
        case 's': { auto value = pop(); auto key = pop(); set_item(top(), key, value); break; }
        case 'u': {
          auto items = pop_to_mark();
          ADX_CHECK_AS(IoError, items.size() % 2 == 0, "{}: malformed SETITEMS", path_);
          for (size_t i = 0; i < items.size(); i += 2) set_item(top(), items[i], items[i + 1]);
          break;
        }
        case 'b': pop(); break;  // BUILD: object state (an OrderedDict's _metadata) is not needed
        case 'Q': push(persistent_load(pop())); break;                // BINPERSID
        case 'R': { auto args = pop(); auto callable = pop(); push(reduce(callable, args)); break; }
        default:
          throw IoError(fmt::format("{}: unsupported pickle opcode 0x{:02x} at byte {}; save the weights with "
                                    "torch.save(model.state_dict(), path)", path_, op, pos_ - 1));
      }
    }
  }

 private:
  std::string next(size_t n) {
    ADX_CHECK_AS(IoError, pos_ + n <= bytes_.size(), "{}: pickle ends early (truncated file?)", path_);
    auto out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  template <class T>
  T read_le() {
    const auto raw = next(sizeof(T));
    T value;
    std::memcpy(&value, raw.data(), sizeof(T));  // pickle integers are little-endian, like the hosts we build for
    return value;
  }
  std::string line() {
    const auto end = bytes_.find('\n', pos_);
    ADX_CHECK_AS(IoError, end != std::string::npos, "{}: malformed GLOBAL in pickle", path_);
    auto out = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t i) { auto v = make(PyValue::Kind::Int); v->integer = i; push(v); }
  void push_string(std::string s) { auto v = make(PyValue::Kind::String); v->text = std::move(s); push(v); }
  PyRef top() {
    ADX_CHECK_AS(IoError, !stack_.empty(), "{}: malformed pickle (empty stack)", path_);
    return stack_.back();
  }
  PyRef pop() { auto v = top(); stack_.pop_back(); return v; }
  PyRef memo(size_t key) {
    auto it = memo_.find(key);
    ADX_CHECK_AS(IoError, it != memo_.end(), "{}: malformed pickle (memo {} unset)", path_, key);
    return it->second;
  }
  std::vector<PyRef> pop_to_mark() {
    std::vector<PyRef> items;
    while (top()->kind != PyValue::Kind::Mark) items.push_back(pop());
    pop();
    std::reverse(items.begin(), items.end());
    return items;
  }
  void set_item(const PyRef& dict, const PyRef& key, const PyRef& value) {
    ADX_CHECK_AS(IoError, dict->kind == PyValue::Kind::Dict, "{}: malformed pickle (SETITEM on a non-dict)", path_);
    dict->dict.emplace_back(key, value);
  }
  int64_t as_int(const PyRef& v) const {
    ADX_CHECK_AS(IoError, v->kind == PyValue::Kind::Int, "{}: expected an integer in the pickle", path_);
    return v->integer;
  }
  std::vector<int64_t> as_ints(const PyRef& v) const {
    ADX_CHECK_AS(IoError, v->kind == PyValue::Kind::Tuple || v->kind == PyValue::Kind::List,
                 "{}: expected a tuple of integers in the pickle", path_);
    std::vector<int64_t> out;
    for (const auto& item : v->items) out.push_back(as_int(item));
    return out;
  }

  // A tensor of a state dict is a dense view inside its storage: sizes and strides are
  // non-negative, every element lies inside the storage, and it has no more elements than
  // the storage (a 500-byte file must not expand into gigabytes through zero strides).
  void check_view(int64_t storage_numel, int64_t offset, const std::vector<int64_t>& sizes,
                  const std::vector<int64_t>& strides) const {
    ADX_CHECK_AS(IoError, sizes.size() == strides.size() && sizes.size() <= kMaxFileTensorRank,
                 "{}: tensor with {} sizes and {} strides", path_, sizes.size(), strides.size());
    ADX_CHECK_AS(IoError, offset >= 0 && offset <= storage_numel, "{}: tensor offset {} outside its storage of {}",
                 path_, offset, storage_numel);
    int64_t numel = 1, last = offset;
    for (size_t d = 0; d < sizes.size(); ++d) {
      ADX_CHECK_AS(IoError, sizes[d] >= 0 && strides[d] >= 0, "{}: tensor with negative size {} or stride {}",
                   path_, sizes[d], strides[d]);
      ADX_CHECK_AS(IoError, !__builtin_mul_overflow(numel, sizes[d], &numel), "{}: tensor size overflows", path_);
      if (sizes[d] == 0) continue;
      int64_t reach = 0;
      ADX_CHECK_AS(IoError, !__builtin_mul_overflow(sizes[d] - 1, strides[d], &reach) &&
                                !__builtin_add_overflow(last, reach, &last),
                   "{}: tensor extent overflows", path_);
    }
    ADX_CHECK_AS(IoError, numel == 0 || (last < storage_numel && numel <= storage_numel),
                 "{}: a tensor of {} elements (last at {}) does not fit its storage of {} elements", path_, numel,
                 last, storage_numel);
  }

  // ('storage', torch.FloatStorage, key, location, numel): the flat data of record data/<key>.
  PyRef persistent_load(const PyRef& id) {
    ADX_CHECK_AS(IoError, id->kind == PyValue::Kind::Tuple && id->items.size() >= 5 &&
                              id->items[0]->text == "storage",
                 "{}: unsupported persistent object in pickle", path_);
    const auto dtype = storage_dtype(id->items[1]->text, path_);
    const auto key = id->items[2]->text;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const auto numel = as_int(id->items[4]);
    const std::string record = "data/" + key;
    ADX_CHECK_AS(IoError, reader_.hasRecord(record), "{}: the archive lacks tensor data {}", path_, record);
    auto [data, size] = reader_.getRecord(record);
    const auto expected = checked_tensor_bytes({numel}, c10::elementSize(dtype), path_ + ": storage " + record);
    ADX_CHECK_AS(IoError, size == expected, "{}: tensor data {} holds {} bytes, expected {}", path_, record, size,
                 expected);
    auto v = make(PyValue::Kind::Storage);
    v->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (size > 0) std::memcpy(v->tensor.data_ptr(), data.get(), size);
    storages_[key] = v;
    return v;
  }

  PyRef reduce(const PyRef& callable, const PyRef& args) {
    const auto& name = callable->text;
    if (name == "collections.OrderedDict") return make(PyValue::Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      ADX_CHECK_AS(IoError, args->items.size() >= 4 && args->items[0]->kind == PyValue::Kind::Storage,
                   "{}: malformed tensor in pickle", path_);
      const auto& storage = args->items[0]->tensor;
      const int64_t offset = as_int(args->items[1]);
      const auto sizes = as_ints(args->items[2]), strides = as_ints(args->items[3]);
      check_view(storage.numel(), offset, sizes, strides);
      auto v = make(PyValue::Kind::Tensor);
      v->tensor = storage.as_strided(sizes, strides, offset).clone();
      return v;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      ADX_CHECK_AS(IoError, !args->items.empty() && args->items[0]->kind == PyValue::Kind::Tensor,
                   "{}: malformed parameter in pickle", path_);
      return args->items[0];
    }
    throw IoError(fmt::format("{}: the pickle calls {}, which a state dict does not need; save the weights with "
                              "torch.save(model.state_dict(), path)",
                              path_, name));
  }

  const std::string& bytes_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::string path_;
  size_t pos_ = 0;
  std::vector<PyRef> stack_;
  std::map<size_t, PyRef> memo_;
  std::map<std::string, PyRef> storages_;
  std::vector<std::unique_ptr<PyValue>> arena_;
};

TensorMap from_torchscript(const std::string& path) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("{}: not a readable TorchScript archive: {}", path, e.what()));
  }
  TensorMap out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out[p.name] = p.value.detach();
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out[b.name] = b.value.detach();
  return out;
}

}  // namespace

TensorMap load_state_dict(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    ADX_CHECK_AS(IoError, in.good(), "cannot open weight file {}", path);
    char magic[2] = {0, 0};
    in.read(magic, 2);
    ADX_CHECK_AS(IoError, in.gcount() == 2 && magic[0] == 'P' && magic[1] == 'K',
                 "{} is not a PyTorch zip archive (written by torch.save with PyTorch >= 1.6, or "
                 "torch.jit.save); the legacy format is not supported: re-save it with "
                 "torch.save(model.state_dict(), path)",
                 path);
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("{}: corrupt PyTorch archive: {}", path, e.what()));
  }
  if (reader->hasRecord("constants.pkl") || reader->hasRecord("code/__torch__.py")) return from_torchscript(path);
  ADX_CHECK_AS(IoError, reader->hasRecord("data.pkl"), "{}: the archive has no data.pkl; not written by torch.save",
               path);
  auto [data, size] = reader->getRecord("data.pkl");
  const std::string bytes(static_cast<const char*>(data.get()), size);
  StateDictUnpickler unpickler(bytes, *reader, path);
  const auto root = unpickler.run();
  ADX_CHECK_AS(IoError, root->kind == PyValue::Kind::Dict,
               "{}: holds a pickled object, not a state dict; save model.state_dict() instead of the model", path);
  TensorMap out;
  for (const auto& [key, value] : root->dict) {
    if (key->kind != PyValue::Kind::String || value->kind != PyValue::Kind::Tensor) continue;  // e.g. metadata
    out[key->text] = value->tensor;
  }
  ADX_CHECK_AS(IoError, !out.empty(), "{}: the state dict holds no tensors", path);
  return out;
}

void load_into(torch::nn::Module& module, const TensorMap& state, const std::string& what,
               const LoadStateOptions& options) {
  auto starts_with_any = [](const std::string& name, const std::vector<std::string>& prefixes) {
    for (const auto& p : prefixes)
      if (name.rfind(p, 0) == 0) return true;
    return false;
  };
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto copy = [&](const std::string& name, torch::Tensor& target) {
    auto it = state.find(name);
    if (it == state.end()) {
      ADX_CHECK_AS(IoError, starts_with_any(name, options.optional_prefixes),
                   "{}: the weights lack {} (shape {}); the file was written for another architecture", what, name,
                   std::string(c10::str(target.sizes())));
      return;
    }
    ADX_CHECK_AS(IoError, it->second.sizes() == target.sizes(), "{}: {} has shape {} in the file but {} in the model",
                 what, name, std::string(c10::str(it->second.sizes())), std::string(c10::str(target.sizes())));
    target.copy_(it->second.to(target.device(), target.scalar_type()));
    used.insert(name);
  };
  for (auto& p : module.named_parameters(/*recurse=*/true)) copy(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) copy(b.key(), b.value());
  for (const auto& [name, tensor] : state)
    ADX_CHECK_AS(IoError, used.count(name) || starts_with_any(name, options.ignored_prefixes),
                 "{}: the weights hold {} (shape {}), which the model does not have; the file was written for "
                 "another architecture",
                 what, name, std::string(c10::str(tensor.sizes())));
}

}  // namespace adx
