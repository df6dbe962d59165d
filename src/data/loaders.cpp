#include <adx/core/error.hpp>
#include <adx/data/loaders.hpp>

#include <torch/types.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace adx {
namespace {

std::string read_gz_or_plain(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  ADX_CHECK_AS(IoError, file != nullptr, "cannot open '{}': {}", path, std::strerror(errno));
  std::string bytes;
  char buffer[1 << 16];
  int n = 0;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0) bytes.append(buffer, static_cast<size_t>(n));
  int err = 0;
  const char* msg = gzerror(file, &err);
  const std::string message = msg ? msg : "";
  gzclose(file);
  ADX_CHECK_AS(IoError, n >= 0 && (err == Z_OK || err == Z_STREAM_END), "cannot read '{}': {}", path, message);
  return bytes;
}

uint32_t read_be32(const std::string& b, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + offset;
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

at::Tensor load_idx(const std::string& path) {
  const std::string bytes = read_gz_or_plain(path);
  ADX_CHECK_AS(IoError, bytes.size() >= 4, "'{}' is not an IDX file: only {} bytes", path, bytes.size());
  ADX_CHECK_AS(IoError, bytes[0] == 0 && bytes[1] == 0, "'{}' is not an IDX file: bad magic number", path);
  const auto type = static_cast<unsigned char>(bytes[2]);
  const int ndim = static_cast<unsigned char>(bytes[3]);
  at::ScalarType dtype;
  size_t item = 1;
  switch (type) {
    case 0x08: dtype = at::kByte; item = 1; break;
    case 0x09: dtype = at::kChar; item = 1; break;
    case 0x0B: dtype = at::kShort; item = 2; break;
    case 0x0C: dtype = at::kInt; item = 4; break;
    case 0x0D: dtype = at::kFloat; item = 4; break;
    case 0x0E: dtype = at::kDouble; item = 8; break;
    default: throw IoError(fmt::format("'{}': unknown IDX data type 0x{:02x}", path, type));
  }
  ADX_CHECK_AS(IoError, ndim >= 1 && bytes.size() >= 4 + 4 * static_cast<size_t>(ndim),
               "'{}': IDX header truncated ({} dimensions, {} bytes)", path, ndim, bytes.size());
  std::vector<int64_t> shape;
  size_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    shape.push_back(read_be32(bytes, 4 + 4 * d));
    count *= static_cast<size_t>(shape.back());
  }
  const size_t offset = 4 + 4 * static_cast<size_t>(ndim);
  ADX_CHECK_AS(IoError, bytes.size() == offset + count * item,
               "'{}': IDX payload has {} bytes but shape {} needs {}", path, bytes.size() - offset,
               c10::str(c10::IntArrayRef(shape)), count * item);
  auto out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  // Multi-byte IDX values are big-endian.
  auto* dst = static_cast<char*>(out.data_ptr());
  for (size_t i = 0; i < count; ++i)
    for (size_t b = 0; b < item; ++b) dst[i * item + b] = bytes[offset + i * item + (item - 1 - b)];
  return out;
}

LabeledImages load_mnist_split(const std::string& folder, const std::string& split) {
  auto find = [&](const std::string& stem) {
    for (const std::string& candidate : {folder + "/" + stem + ".gz", folder + "/" + stem}) {
      std::ifstream probe(candidate);
      if (probe.good()) return candidate;
    }
    throw IoError(fmt::format("no '{}' or '{}.gz' in '{}'", stem, stem, folder));
  };
  const auto images = load_idx(find(split + "-images-idx3-ubyte"));
  const auto labels = load_idx(find(split + "-labels-idx1-ubyte"));
  ADX_CHECK_AS(IoError, images.dim() == 3 && labels.dim() == 1 && images.size(0) == labels.size(0),
               "'{}' split '{}': images {} and labels {} do not match", folder, split,
               c10::str(images.sizes()), c10::str(labels.sizes()));
  LabeledImages out;
  out.images = images.to(torch::kFloat32).div_(255.0).unsqueeze(1);
  out.labels = labels.to(torch::kLong);
  return out;
}

at::Tensor load_csv(const std::string& path, const CsvOptions& options) {
  std::ifstream in(path);
  ADX_CHECK_AS(IoError, in.good(), "cannot open CSV file '{}': {}", path, std::strerror(errno));
  std::vector<float> values;
  int64_t columns = -1, rows = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, options.delimiter)) cells.push_back(cell);
    if (!line.empty() && line.back() == options.delimiter) cells.emplace_back();
    std::vector<float> row;
    int bad_column = -1;
    for (size_t c = 0; c < cells.size(); ++c) {
      const char* begin = cells[c].c_str();
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(begin, &end);
      while (end && (*end == ' ' || *end == '\t')) ++end;
      if (end == begin || *end != '\0') {
        bad_column = static_cast<int>(c);
        break;
      }
      row.push_back(static_cast<float>(v));
    }
    const bool first_row = columns < 0 && rows == 0;
    if (first_row && (options.header == 1 || (options.header == -1 && bad_column >= 0))) {
      columns = static_cast<int64_t>(cells.size());  // header: names only fix the width
      continue;
    }
    ADX_CHECK_AS(IoError, bad_column < 0, "CSV '{}' line {} column {}: '{}' is not a number", path, line_no,
                 bad_column + 1, cells[static_cast<size_t>(bad_column)]);
    if (columns < 0) columns = static_cast<int64_t>(row.size());
    ADX_CHECK_AS(IoError, static_cast<int64_t>(row.size()) == columns,
                 "CSV '{}' line {}: {} columns, expected {}", path, line_no, row.size(), columns);
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  ADX_CHECK_AS(IoError, rows > 0, "CSV file '{}' has no data rows", path);
  return torch::from_blob(values.data(), {rows, columns}, torch::kFloat32).clone();
}

at::Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in.good(), "cannot open NPY file '{}': {}", path, std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ADX_CHECK_AS(IoError, bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0,
               "'{}' is not an NPY file (bad magic)", path);
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    ADX_CHECK_AS(IoError, bytes.size() >= 12 && (major == 2 || major == 3),
                 "'{}': unsupported NPY version {}", path, major);
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  }
  ADX_CHECK_AS(IoError, bytes.size() >= header_start + header_len, "'{}': NPY header truncated", path);
  const std::string header = bytes.substr(header_start, header_len);
  std::smatch m;
  ADX_CHECK_AS(IoError, std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")),
               "'{}': NPY header has no descr: {}", path, header);
  const std::string descr = m[1];
  ADX_CHECK_AS(IoError, std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")),
               "'{}': NPY header has no fortran_order", path);
  ADX_CHECK_AS(IoError, m[1] == "False", "'{}': Fortran-order NPY arrays are not supported; save in C order",
               path);
  ADX_CHECK_AS(IoError, std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")),
               "'{}': NPY header has no shape", path);
  std::vector<int64_t> shape;
  {
    std::stringstream ss(m[1].str());
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.find_first_not_of(" ") == std::string::npos) continue;
      shape.push_back(std::stoll(item));
    }
  }
  at::ScalarType dtype;
  size_t item = 0;
  if (descr == "<f4") dtype = at::kFloat, item = 4;
  else if (descr == "<f8") dtype = at::kDouble, item = 8;
  else if (descr == "|u1" || descr == "<u1") dtype = at::kByte, item = 1;
  else throw IoError(fmt::format("'{}': NPY dtype '{}' is not supported (use float32, float64 or uint8)", path, descr));
  size_t count = 1;
  for (auto d : shape) count *= static_cast<size_t>(d);
  const size_t offset = header_start + header_len;
  ADX_CHECK_AS(IoError, bytes.size() - offset == count * item,
               "'{}': NPY payload has {} bytes but shape {} of '{}' needs {}", path, bytes.size() - offset,
               c10::str(c10::IntArrayRef(shape)), descr, count * item);
  auto out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  std::memcpy(out.data_ptr(), bytes.data() + offset, count * item);
  return out;
}

void save_npy(const std::string& path, const at::Tensor& tensor) {
  const auto t = tensor.contiguous().cpu();
  std::string descr;
  if (t.scalar_type() == at::kFloat) descr = "<f4";
  else if (t.scalar_type() == at::kDouble) descr = "<f8";
  else if (t.scalar_type() == at::kByte) descr = "|u1";
  else throw IoError(fmt::format("save_npy: dtype {} is not supported", c10::toString(t.scalar_type())));
  std::string shape;
  for (auto d : t.sizes()) shape += std::to_string(d) + ",";
  if (t.dim() > 1) shape.pop_back();
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    ADX_CHECK_AS(IoError, out.good(), "cannot write '{}': {}", tmp, std::strerror(errno));
    out.write("\x93NUMPY\x01\x00", 8);
    const uint16_t len = static_cast<uint16_t>(header.size());
    const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    ADX_CHECK_AS(IoError, out.good(), "write to '{}' failed", tmp);
  }
  ADX_CHECK_AS(IoError, std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp, path,
               std::strerror(errno));
}

}  // namespace adx
