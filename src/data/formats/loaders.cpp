#include <adx/core/error.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/io/files.hpp>

#include "csv_lines.hpp"

#include <torch/types.h>
#include <zlib.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unistd.h>

namespace adx {
namespace {

// Reads plain or gzipped bytes; `limit` bounds what is kept, so a file that
// decompresses to more than its header claims never fills the memory.
class GzOrPlainReader {
 public:
  explicit GzOrPlainReader(const std::string& path) : path_(path) {
    regular_file_size(path, "IDX file");
    file_ = gzopen(path.c_str(), "rb");
    ADX_CHECK_AS(IoError, file_ != nullptr, "cannot open '{}': {}", path, std::strerror(errno));
  }
  ~GzOrPlainReader() { gzclose(file_); }
  GzOrPlainReader(const GzOrPlainReader&) = delete;
  GzOrPlainReader& operator=(const GzOrPlainReader&) = delete;

  /// Appends up to `limit` bytes to `out`; returns how many were read.
  size_t read(std::string& out, size_t limit) {
    char buffer[1 << 16];
    size_t total = 0;
    while (total < limit) {
      const auto want = static_cast<unsigned>(std::min<size_t>(sizeof(buffer), limit - total));
      const int n = gzread(file_, buffer, want);
      if (n < 0) {
        int err = 0;
        const char* msg = gzerror(file_, &err);
        throw IoError(fmt::format("cannot read '{}': {}", path_, msg ? msg : "gzip error"));
      }
      if (n == 0) break;
      out.append(buffer, static_cast<size_t>(n));
      total += static_cast<size_t>(n);
    }
    return total;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

// NumPy refuses headers longer than this by default (numpy.lib.format's max_header_size).
constexpr size_t kMaxNpyHeader = 10000;

// The few fields of an NPY header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }; read by a scan
// without recursion, so no header can exhaust the stack.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

NpyHeader parse_npy_header(const std::string& header, const std::string& path) {
  auto value_of = [&](const char* key) -> size_t {
    for (const char quote : {'\'', '"'}) {
      const std::string quoted = std::string(1, quote) + key + quote;
      auto at = header.find(quoted);
      if (at == std::string::npos) continue;
      at += quoted.size();
      while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at]))) ++at;
      ADX_CHECK_AS(IoError, at < header.size() && header[at] == ':', "'{}': malformed NPY header near '{}'", path, key);
      ++at;
      while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at]))) ++at;
      return at;
    }
    throw IoError(fmt::format("'{}': NPY header has no '{}'", path, key));
  };
  NpyHeader out;
  {
    const size_t at = value_of("descr");
    ADX_CHECK_AS(IoError, at < header.size() && (header[at] == '\'' || header[at] == '"'),
                 "'{}': NPY descr is not a string (structured dtypes are not supported)", path);
    const auto end = header.find(header[at], at + 1);
    ADX_CHECK_AS(IoError, end != std::string::npos, "'{}': NPY descr is not terminated", path);
    out.descr = header.substr(at + 1, end - at - 1);
  }
  {
    const size_t at = value_of("fortran_order");
    if (header.compare(at, 4, "True") == 0) out.fortran_order = true;
    else ADX_CHECK_AS(IoError, header.compare(at, 5, "False") == 0, "'{}': NPY fortran_order is not True or False", path);
  }
  {
    size_t at = value_of("shape");
    ADX_CHECK_AS(IoError, at < header.size() && header[at] == '(', "'{}': NPY shape is not a tuple", path);
    const auto end = header.find(')', at);
    ADX_CHECK_AS(IoError, end != std::string::npos, "'{}': NPY shape is not terminated", path);
    ++at;
    while (at < end) {
      while (at < end && (std::isspace(static_cast<unsigned char>(header[at])) || header[at] == ',')) ++at;
      if (at == end) break;
      int64_t dim = 0;
      size_t digits = 0;
      while (at < end && std::isdigit(static_cast<unsigned char>(header[at]))) {
        ADX_CHECK_AS(IoError, ++digits <= 18, "'{}': NPY shape has a dimension with more than 18 digits", path);
        dim = dim * 10 + (header[at++] - '0');
      }
      ADX_CHECK_AS(IoError, digits > 0 && (at == end || header[at] == ',' ||
                                           std::isspace(static_cast<unsigned char>(header[at]))),
                   "'{}': NPY shape '{}' is not a tuple of non-negative integers", path,
                   header.substr(at - digits, std::min<size_t>(end - (at - digits), 40)));
      out.shape.push_back(dim);
    }
  }
  return out;
}

}  // namespace

at::Tensor load_idx(const std::string& path) {
  GzOrPlainReader reader(path);
  std::string head;
  reader.read(head, 4);
  ADX_CHECK_AS(IoError, head.size() == 4, "'{}' is not an IDX file: only {} bytes", path, head.size());
  ADX_CHECK_AS(IoError, head[0] == 0 && head[1] == 0, "'{}' is not an IDX file: bad magic number", path);
  const auto type = static_cast<unsigned char>(head[2]);
  const int ndim = static_cast<unsigned char>(head[3]);
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
  ADX_CHECK_AS(IoError, ndim >= 1 && reader.read(head, 4 * static_cast<size_t>(ndim)) == 4 * static_cast<size_t>(ndim),
               "'{}': IDX header truncated ({} dimensions)", path, ndim);
  std::vector<int64_t> shape;
  for (int d = 0; d < ndim; ++d) shape.push_back(read_big_endian32(head, 4 + 4 * d));
  const uint64_t expected = checked_tensor_bytes(shape, item, fmt::format("IDX file '{}'", path));
  std::string payload;
  // One byte past the claim tells a padded file from an exact one without reading it all.
  const size_t got = reader.read(payload, expected + 1);
  ADX_CHECK_AS(IoError, got == expected, "'{}': IDX payload has {}{} bytes but shape {} needs {}", path,
               got > expected ? "more than " : "", std::min<uint64_t>(got, expected), c10::str(c10::IntArrayRef(shape)),
               expected);
  auto out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  // Multi-byte IDX values are big-endian.
  auto* dst = static_cast<char*>(out.data_ptr());
  const size_t count = expected / item;
  for (size_t i = 0; i < count; ++i)
    for (size_t b = 0; b < item; ++b) dst[i * item + b] = payload[i * item + (item - 1 - b)];
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


at::Tensor load_csv(const std::string& path, const CsvOptions& options) { return load_csv_table(path, options).values; }

CsvTable load_csv_table(const std::string& path, const CsvOptions& options) {
  csv::LineReader reader(path, "CSV file", options.delimiter);
  CsvTable table;
  std::vector<float> values;
  std::vector<std::string> cells;
  int64_t columns = -1, rows = 0;
  while (reader.next(cells)) {
    std::vector<float> row;
    int bad_column = -1;
    for (size_t c = 0; c < cells.size(); ++c) {
      const char* begin = cells[c].c_str();
      char* end = nullptr;
      const double v = std::strtod(begin, &end);
      if (end == begin || *end != '\0') {
        bad_column = static_cast<int>(c);
        break;
      }
      row.push_back(static_cast<float>(v));
    }
    const bool first_row = columns < 0 && rows == 0;
    if (first_row && (options.header == 1 || (options.header == -1 && bad_column >= 0))) {
      columns = static_cast<int64_t>(cells.size());  // the header fixes the width
      table.columns = cells;
      continue;
    }
    ADX_CHECK_AS(IoError, bad_column < 0, "CSV '{}' line {} column {}: '{}' is not a number", path,
                 reader.line_number(), bad_column + 1, cells[static_cast<size_t>(bad_column)]);
    if (columns < 0) columns = static_cast<int64_t>(row.size());
    ADX_CHECK_AS(IoError, static_cast<int64_t>(row.size()) == columns, "CSV '{}' line {}: {} columns, expected {}",
                 path, reader.line_number(), row.size(), columns);
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  ADX_CHECK_AS(IoError, rows > 0, "CSV file '{}' has no data rows", path);
  table.values = torch::from_blob(values.data(), {rows, columns}, torch::kFloat32).clone();
  return table;
}

at::Tensor load_npy(const std::string& path) {
  const uint64_t file_size = regular_file_size(path, "NPY file");
  std::ifstream in(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in.good(), "cannot open NPY file '{}': {}", path, std::strerror(errno));
  char preamble[12] = {};
  in.read(preamble, 10);
  ADX_CHECK_AS(IoError, in.gcount() == 10 && std::memcmp(preamble, "\x93NUMPY", 6) == 0,
               "'{}' is not an NPY file (bad magic)", path);
  const int major = static_cast<unsigned char>(preamble[6]);
  uint64_t header_len = 0, header_start = 10;
  if (major == 1) {
    header_len = static_cast<unsigned char>(preamble[8]) | (static_cast<unsigned char>(preamble[9]) << 8);
  } else {
    ADX_CHECK_AS(IoError, major == 2 || major == 3, "'{}': unsupported NPY version {}", path, major);
    in.read(preamble + 10, 2);
    ADX_CHECK_AS(IoError, in.gcount() == 2, "'{}': NPY header truncated", path);
    for (int i = 0; i < 4; ++i) header_len |= uint64_t{static_cast<unsigned char>(preamble[8 + i])} << (8 * i);
    header_start = 12;
  }
  ADX_CHECK_AS(IoError, header_len <= kMaxNpyHeader, "'{}': NPY header of {} bytes exceeds NumPy's limit of {}", path,
               header_len, kMaxNpyHeader);
  ADX_CHECK_AS(IoError, file_size >= header_start + header_len, "'{}': NPY header truncated", path);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const NpyHeader parsed = parse_npy_header(header, path);
  ADX_CHECK_AS(IoError, !parsed.fortran_order, "'{}': Fortran-order NPY arrays are not supported; save in C order",
               path);
  at::ScalarType dtype;
  size_t item = 0;
  const auto& descr = parsed.descr;
  if (descr == "<f4") dtype = at::kFloat, item = 4;
  else if (descr == "<f8") dtype = at::kDouble, item = 8;
  else if (descr == "|u1" || descr == "<u1") dtype = at::kByte, item = 1;
  else throw IoError(fmt::format("'{}': NPY dtype '{}' is not supported (use float32, float64 or uint8)", path, descr));
  const uint64_t payload = file_size - header_start - header_len;
  const uint64_t needed = checked_tensor_bytes(parsed.shape, item, fmt::format("NPY file '{}'", path));
  ADX_CHECK_AS(IoError, payload == needed, "'{}': NPY payload has {} bytes but shape {} of '{}' needs {}", path,
               payload, c10::str(c10::IntArrayRef(parsed.shape)), descr, needed);
  // The payload goes straight into the tensor: no second copy of the file in memory.
  auto out = torch::empty(parsed.shape, torch::TensorOptions().dtype(dtype));
  in.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(needed));
  ADX_CHECK_AS(IoError, static_cast<uint64_t>(in.gcount()) == needed, "'{}': NPY payload could not be read", path);
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
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  write_file_atomically(path,
                        {std::string_view("\x93NUMPY\x01\x00", 8), std::string_view(len_bytes, 2), header,
                         std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes())},
                        "NPY file");
}

namespace {

bool is_npy_path(const std::string& path) {
  return path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
}

}  // namespace

bool is_binary_array_path(const std::string& path) {
  return is_npy_path(path) || path.find("-ubyte") != std::string::npos || path.find(".idx") != std::string::npos;
}

at::Tensor load_array(const std::string& path, const CsvOptions& csv, std::vector<std::string>* columns) {
  if (columns != nullptr) columns->clear();
  if (is_npy_path(path)) return load_npy(path);
  if (is_binary_array_path(path)) return load_idx(path);
  auto table = load_csv_table(path, csv);
  if (columns != nullptr) *columns = std::move(table.columns);
  return table.values;
}

}  // namespace adx
