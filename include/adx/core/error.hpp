#pragma once
// Error types of adx. Every failure a user can cause (bad shapes, NaN input,
// unfitted detectors, broken files, unknown names) is reported as an
// adx::Error whose message carries the offending values.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace adx {

/// Base class of every error adx throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Input has the wrong shape, dtype, size or input kind.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Input holds NaN or Inf, or a value outside the allowed range.
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A detector was used before `fit` (or `predict` before calibration).
class NotFittedError : public Error {
 public:
  using Error::Error;
};

/// A file is missing, unreadable, malformed, foreign, truncated or too new.
class IoError : public Error {
 public:
  using Error::Error;
};

/// An option or detector name that adx does not know.
class OptionError : public Error {
 public:
  using Error::Error;
};

/// A requested feature the detector does not support.
class NotSupportedError : public Error {
 public:
  using Error::Error;
};

/// Training failed, for example because the loss became NaN.
class TrainingError : public Error {
 public:
  using Error::Error;
};

}  // namespace adx

/// Throws `ErrorType` with an fmt-formatted message when `cond` is false.
#define ADX_CHECK_AS(ErrorType, cond, ...)                   \
  do {                                                       \
    if (!(cond)) throw ErrorType(::fmt::format(__VA_ARGS__)); \
  } while (false)

/// Throws adx::Error with an fmt-formatted message when `cond` is false.
#define ADX_CHECK(cond, ...) ADX_CHECK_AS(::adx::Error, cond, __VA_ARGS__)
