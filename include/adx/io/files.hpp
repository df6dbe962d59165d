#pragma once
// Checks shared by every reader of files a user hands to adx: only regular
// files are opened (a directory or /dev/zero would never end), and a shape
// read from a file is validated before anything is allocated for it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace adx {

/// Largest rank a tensor read from a file may have.
inline constexpr size_t kMaxFileTensorRank = 16;

/// Size in bytes of `path`; IoError naming `what` when it is missing, unreadable or
/// not a regular file (a directory, a device, a FIFO).
uint64_t regular_file_size(const std::string& path, const std::string& what);

/// The whole content of a regular file (see regular_file_size).
std::string read_regular_file(const std::string& path, const std::string& what);

/// Writes `parts`, one after another, as the file `path`, all or nothing: into a temporary file of its
/// own in the same folder, flushed to disk, then renamed into place (and the folder flushed), so that a
/// reader, a crash or a full disk never leaves a partial file under `path`. IoError naming `what`.
void write_file_atomically(const std::string& path, const std::vector<std::string_view>& parts,
                           const std::string& what);

/// The big-endian 32-bit number at `offset` of `bytes` (IDX headers, PNG chunks); the caller
/// checks that four bytes are there.
inline uint32_t read_big_endian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

/// Bytes a tensor of `shape` with `element_size`-byte elements needs. IoError naming
/// `what` when a dimension is negative, the rank exceeds kMaxFileTensorRank, or
/// the count overflows 64 bits.
uint64_t checked_tensor_bytes(const std::vector<int64_t>& shape, uint64_t element_size, const std::string& what);

}  // namespace adx
