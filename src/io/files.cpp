#include <adx/core/error.hpp>
#include <adx/io/files.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace adx {

uint64_t regular_file_size(const std::string& path, const std::string& what) {
  struct stat info {};
  ADX_CHECK_AS(IoError, ::stat(path.c_str(), &info) == 0, "cannot open {} '{}': {}", what, path,
               std::strerror(errno));
  ADX_CHECK_AS(IoError, S_ISREG(info.st_mode), "{} '{}' is not a regular file ({})", what, path,
               S_ISDIR(info.st_mode) ? "a directory" : "a device, pipe or socket");
  return static_cast<uint64_t>(info.st_size);
}

std::string read_regular_file(const std::string& path, const std::string& what) {
  const uint64_t size = regular_file_size(path, what);
  std::ifstream in(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in.good(), "cannot open {} '{}': {}", what, path, std::strerror(errno));
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  ADX_CHECK_AS(IoError, static_cast<uint64_t>(in.gcount()) == size, "cannot read {} '{}': got {} of {} bytes", what,
               path, in.gcount(), size);
  return bytes;
}

uint64_t checked_tensor_bytes(const std::vector<int64_t>& shape, uint64_t element_size, const std::string& what) {
  ADX_CHECK_AS(IoError, shape.size() <= kMaxFileTensorRank, "{}: rank {} exceeds the limit of {}", what, shape.size(),
               kMaxFileTensorRank);
  uint64_t bytes = element_size;
  for (const int64_t d : shape) {
    ADX_CHECK_AS(IoError, d >= 0, "{}: negative dimension {}", what, d);
    ADX_CHECK_AS(IoError, !__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes),
                 "{}: the shape's element count overflows", what);
  }
  // torch sizes are int64: a count past INT64_MAX cannot be a real tensor either.
  ADX_CHECK_AS(IoError, bytes <= static_cast<uint64_t>(INT64_MAX), "{}: the shape's element count overflows", what);
  return bytes;
}

}  // namespace adx
