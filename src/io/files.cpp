#include <adx/core/error.hpp>
#include <adx/io/files.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace adx {

namespace {

// fsync of a file or a folder by path; false (errno set) when it cannot be opened or synced.
bool sync_to_disk(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return synced;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::vector<std::string_view>& parts,
                           const std::string& what) {
  // A name of its own per process and call, so concurrent writers never share a temporary file.
  static std::atomic<uint64_t> writes{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(writes++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ADX_CHECK_AS(IoError, out.good(), "cannot write {} '{}': {}", what, tmp, std::strerror(errno));
    for (const auto part : parts) out.write(part.data(), static_cast<std::streamsize>(part.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError(fmt::format("writing {} '{}' failed (disk full?)", what, tmp));
    }
  }
  // On disk before it takes the final name, and the name on disk after: a crash or power loss leaves
  // the old file or the new one, never a name pointing at unwritten blocks.
  if (!sync_to_disk(tmp)) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError(fmt::format("cannot flush {} '{}' to disk: {}", what, tmp, reason));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError(fmt::format("cannot move {} into place at '{}': {}", what, path, reason));
  }
  const auto folder = std::filesystem::path(path).parent_path();
  sync_to_disk(folder.empty() ? std::string(".") : folder.string());  // best effort: some file systems refuse
}

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
