#pragma once
// Shared by the libFuzzer targets: each writes the input to a file and hands its
// path to a reader. Only adx::Error may leave the reader; any other exception,
// a crash, a leak, a hang or an oversized allocation is a finding.
#include <adx/core/error.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

namespace adx::fuzz {

/// This process's scratch file with extension `ext` (rewritten for every input).
inline std::string scratch_path(const char* ext) { return "/tmp/adx_fuzz_" + std::to_string(::getpid()) + ext; }

/// The input written to this process's scratch file with extension `ext`.
inline std::string input_file(const uint8_t* data, size_t size, const char* ext) {
  const std::string path = scratch_path(ext);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace adx::fuzz

/// Runs `statement`, letting only adx::Error pass.
#define ADX_FUZZ_EXPECT_ONLY_ADX_ERRORS(statement) \
  try {                                            \
    statement;                                     \
  } catch (const ::adx::Error&) {                  \
  }
