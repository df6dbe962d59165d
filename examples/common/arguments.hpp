#pragma once
// Command-line numbers for the example programs: a bad one is an adx::OptionError naming the flag.
#include <adx/core/error.hpp>

#include <string>

namespace adx::examples {

inline int64_t integer_argument(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw OptionError(flag + " takes an integer, got '" + text + "'");
}

inline double number_argument(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw OptionError(flag + " takes a number, got '" + text + "'");
}

}  // namespace adx::examples
