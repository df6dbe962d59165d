#pragma once
// Writes torch.save-style archives (a zip holding data.pkl and data/<key> records)
// without Python, for tests and fuzz seeds of the state-dict reader.
#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace adx::test {

template <class T>
void put_le(std::string& out, T value) {
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out.append(buf, sizeof(T));
}

// A pickle written op by op, as torch.save writes a state dict.
struct Pickle {
  std::string b = std::string("\x80\x02", 2) + "}";
  Pickle& op(char c) { b += c; return *this; }
  Pickle& str(const std::string& s) {
    b += 'X';
    put_le<uint32_t>(b, static_cast<uint32_t>(s.size()));
    b += s;
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    b += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  Pickle& integer(int64_t v) {
    b += '\x8a';
    b += '\x08';
    put_le<int64_t>(b, v);
    return *this;
  }
  Pickle& ints(const std::vector<int64_t>& values) {
    op('(');
    for (auto v : values) integer(v);
    return op('t');
  }
  // key -> _rebuild_tensor_v2(storage "0" of `numel` floats, offset, sizes, strides, False, OrderedDict())
  Pickle& tensor(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                 const std::vector<int64_t>& strides) {
    str(key).global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(numel).op('t').op('Q');
    integer(offset).ints(sizes).ints(strides).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R').op('s');
  }
  std::string done() { return b + "."; }
};

inline void write_torch_archive(const std::string& path, const std::string& pickle, const std::vector<float>& storage) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeRecord("data/0", storage.data(), storage.size() * sizeof(float));
  // torch.save records the archive format version; the writer adds it on close.
  writer.writeEndOfFile();
}

}  // namespace adx::test
