#pragma once
// FNV-1a (64-bit), fed in pieces: the model file's checksum, the fingerprint of the
// training data, and the per-item noise seeds of stochastic scores. Light header.
#include <cstddef>
#include <cstdint>
#include <string>

namespace adx {

class Fnv1a {
 public:
  static constexpr uint64_t kOffsetBasis = 1469598103934665603ull;
  static constexpr uint64_t kPrime = 1099511628211ull;

  explicit Fnv1a(uint64_t basis = kOffsetBasis) : value_(basis) {}
  void update(const void* data, size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) value_ = (value_ ^ bytes[i]) * kPrime;
  }
  uint64_t value() const { return value_; }
  /// The value as 16 lower-case hex digits.
  std::string hex() const {
    static const char* digits = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 16; ++i) out[15 - i] = digits[(value_ >> (4 * i)) & 0xF];
    return out;
  }

 private:
  uint64_t value_;
};

}  // namespace adx
