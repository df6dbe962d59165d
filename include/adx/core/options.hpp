#pragma once
// Options machinery. Options structs declare their fields with ADX_ARG (a
// chainable setter and a getter, in the style of TORCH_ARG) and list them
// once in a `visit` member. From that single list adx derives conversion to
// and from a flat key/value map, which is what the registry takes and what a
// model file stores.
#include <adx/core/error.hpp>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/// Declares a field `name_` with a chainable setter `name(value)` and a getter `name()`.
#define ADX_ARG(T, name)                                         \
 public:                                                         \
  inline auto name(const T& new_##name)->decltype(*this) {       \
    this->name##_ = new_##name;                                  \
    return *this;                                                \
  }                                                              \
  inline const T& name() const noexcept { return this->name##_; } \
  inline T& name() noexcept { return this->name##_; }            \
                                                                 \
 private:                                                        \
  T name##_

namespace adx {

/// Flat key/value view of an options struct; nested structs use "outer.inner" keys.
using OptionMap = std::map<std::string, std::string>;

/// "a,b,,c" -> {"a", "b", "c"}: the items of a comma-separated list, empty ones dropped.
inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

/// Enum <-> name table; specialise `EnumNames<E>::table()` for every option enum.
template <class E>
struct EnumNames;

#define ADX_ENUM_NAMES(E, ...)                                        \
  template <>                                                         \
  struct EnumNames<E> {                                               \
    static const std::vector<std::pair<E, const char*>>& table() {    \
      static const std::vector<std::pair<E, const char*>> t{__VA_ARGS__}; \
      return t;                                                       \
    }                                                                 \
  }

namespace detail {

// An options struct nests inside another when it carries the ADX_OPTIONS_STRUCT marker.
template <class T, class = void>
struct is_options_struct : std::false_type {};
template <class T>
struct is_options_struct<T, std::void_t<typename T::is_adx_options>> : std::true_type {};

template <class T>
std::string option_to_string(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_enum_v<T>) {
    for (const auto& [e, n] : EnumNames<T>::table())
      if (e == value) return n;
    return std::to_string(static_cast<int>(value));
  } else if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) out += (i ? "," : "") + std::to_string(value[i]);
    return out;
  } else if constexpr (std::is_floating_point_v<T>) {
    std::ostringstream os;
    os.precision(17);
    os << value;
    return os.str();
  } else {
    return std::to_string(value);
  }
}

template <class T>
void option_from_string(const std::string& key, const std::string& text, T& out) {
  auto fail = [&](const char* what) {
    throw OptionError(fmt::format("option '{}': cannot parse '{}' as {}", key, text, what));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1" || text == "on") out = true;
    else if (text == "false" || text == "0" || text == "off") out = false;
    else fail("a boolean (true/false)");
  } else if constexpr (std::is_enum_v<T>) {
    std::string valid;
    for (const auto& [e, n] : EnumNames<T>::table()) {
      if (text == n) { out = e; return; }
      valid += (valid.empty() ? "" : ", ") + std::string(n);
    }
    throw OptionError(fmt::format("option '{}': unknown value '{}'; valid values: {}", key, text, valid));
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = text;
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    out.clear();
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        size_t used = 0;
        out.push_back(std::stoll(item, &used));
        if (used != item.size()) fail("a comma-separated list of integers");
      } catch (const std::logic_error&) {
        fail("a comma-separated list of integers");
      }
    }
  } else {
    try {
      size_t used = 0;
      if constexpr (std::is_floating_point_v<T>) out = static_cast<T>(std::stod(text, &used));
      else out = static_cast<T>(std::stoll(text, &used));
      if (used != text.size()) fail(std::is_floating_point_v<T> ? "a number" : "an integer");
    } catch (const std::logic_error&) {
      fail(std::is_floating_point_v<T> ? "a number" : "an integer");
    }
  }
}

struct ToMapVisitor {
  OptionMap& map;
  std::string prefix;
  template <class T>
  void operator()(const char* key, const T& value) {
    if constexpr (is_options_struct<T>::value) {
      ToMapVisitor inner{map, prefix + key + "."};
      const_cast<T&>(value).visit(inner);
    } else {
      map[prefix + key] = option_to_string(value);
    }
  }
};

struct FromMapVisitor {
  const OptionMap& map;
  std::string prefix;
  std::vector<std::string>* used;
  template <class T>
  void operator()(const char* key, T& value) {
    if constexpr (is_options_struct<T>::value) {
      FromMapVisitor inner{map, prefix + key + ".", used};
      value.visit(inner);
    } else {
      auto it = map.find(prefix + key);
      if (it == map.end()) return;
      option_from_string(it->first, it->second, value);
      used->push_back(it->first);
    }
  }
};

}  // namespace detail

/// Marks a struct as an adx options struct (required for nesting and maps).
#define ADX_OPTIONS_STRUCT using is_adx_options = void

/// Flattens an options struct into a key/value map.
template <class Options>
OptionMap to_option_map(const Options& options) {
  OptionMap map;
  detail::ToMapVisitor v{map, ""};
  const_cast<Options&>(options).visit(v);
  return map;
}

/// Applies a key/value map on top of `options`; an unknown key is an OptionError listing the valid keys.
template <class Options>
Options from_option_map(const OptionMap& map, Options options = Options()) {
  std::vector<std::string> used;
  detail::FromMapVisitor v{map, "", &used};
  options.visit(v);
  if (used.size() != map.size()) {
    std::string unknown, valid;
    for (const auto& kv : map) {
      bool found = false;
      for (const auto& u : used) found = found || (u == kv.first);
      if (!found) unknown += (unknown.empty() ? "" : ", ") + kv.first;
    }
    for (const auto& kv : to_option_map(options)) valid += (valid.empty() ? "" : ", ") + kv.first;
    throw OptionError(fmt::format("unknown option(s): {}; valid options: {}", unknown, valid));
  }
  return options;
}

}  // namespace adx
