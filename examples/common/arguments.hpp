#pragma once
// Command-line numbers for the example programs: a bad one is an adx::OptionError naming the flag.
#include <adx/core/error.hpp>

#include <string>
#include <type_traits>

namespace adx::examples {

/// `text` as a whole int64_t or double; anything else (trailing characters, out of range) is an OptionError.
template <class Number>
Number parse_argument(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    Number value;
    if constexpr (std::is_integral_v<Number>) value = std::stoll(text, &used);
    else value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw OptionError(flag + (std::is_integral_v<Number> ? " takes an integer" : " takes a number") + ", got '" +
                    text + "'");
}

inline int64_t integer_argument(const std::string& flag, const std::string& text) {
  return parse_argument<int64_t>(flag, text);
}
inline double number_argument(const std::string& flag, const std::string& text) {
  return parse_argument<double>(flag, text);
}

}  // namespace adx::examples
