#pragma once
// Options machinery. Options structs declare their fields with ADX_ARG (a
// chainable setter and a getter, in the style of TORCH_ARG). Each ADX_ARG
// also declares how the field is visited, so a field is spelled exactly once:
// conversion to and from a flat key/value map (what the registry takes and
// what a model file stores) cannot miss one.
#include <adx/core/error.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/// Marks a struct as an adx options struct; it must come first in the struct,
/// before any ADX_ARG (the fields are found relative to its line).
#define ADX_OPTIONS_STRUCT     \
  using is_adx_options = void; \
  static constexpr int adx_options_first_line = __LINE__

/// Declares a field `name_` with a chainable setter `name(value)`, a getter
/// `name()`, and its visit under the key "name". `slot` tells apart several
/// fields declared on one source line by one macro (0 to 7).
#define ADX_ARG_IN_SLOT(T, name, slot)                                                                 \
 public:                                                                                               \
  inline auto name(const T& new_##name)->decltype(*this) {                                             \
    this->name##_ = new_##name;                                                                        \
    return *this;                                                                                      \
  }                                                                                                    \
  inline const T& name() const noexcept { return this->name##_; }                                      \
  inline T& name() noexcept { return this->name##_; }                                                  \
  static_assert(__LINE__ - adx_options_first_line < ::adx::detail::kMaxOptionLines,                    \
                "options struct too long: split it or raise adx::detail::kMaxOptionLines");            \
  static_assert((slot) >= 0 && (slot) < 8, "ADX_ARG_IN_SLOT: slot must be 0 to 7");                    \
  template <class AdxVisitor>                                                                          \
  void adx_option_field(AdxVisitor& visitor,                                                           \
                        std::integral_constant<int, (__LINE__ - adx_options_first_line) * 8 + slot>) { \
    visitor(#name, this->name##_);                                                                     \
  }                                                                                                    \
                                                                                                       \
 private:                                                                                              \
  T name##_

#define ADX_ARG(T, name) ADX_ARG_IN_SLOT(T, name, 0)

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

/// {"epochs=5", "train.lr=0.01"} -> {{"epochs", "5"}, {"train.lr", "0.01"}}; an item without '=' or
/// with an empty key is an OptionError naming it.
inline OptionMap parse_key_values(const std::vector<std::string>& pairs) {
  OptionMap map;
  for (const auto& pair : pairs) {
    const auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) throw OptionError("options are key=value, got '" + pair + "'");
    map[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return map;
}

/// Enum <-> name table; specialise `EnumNames<E>::table()` for every option enum.
template <class E>
struct EnumNames;

#define ADX_ENUM_NAMES(E, ...)                                            \
  template <>                                                             \
  struct EnumNames<E> {                                                   \
    static const std::vector<std::pair<E, const char*>>& table() {        \
      static const std::vector<std::pair<E, const char*>> t{__VA_ARGS__}; \
      return t;                                                           \
    }                                                                     \
  }

namespace detail {

/// How many source lines an options struct may span from ADX_OPTIONS_STRUCT to its last field.
inline constexpr int kMaxOptionLines = 96;

// Visits field number I when the struct declares one there; nothing otherwise.
template <int I, class S, class V>
auto visit_field(S& s, V& v, int) -> decltype(s.adx_option_field(v, std::integral_constant<int, I>{}), void()) {
  s.adx_option_field(v, std::integral_constant<int, I>{});
}
template <int I, class S, class V>
void visit_field(S&, V&, long) {}

// Field numbers are visited in blocks of 64: one fold over all of them would exceed
// clang's default nesting limit of 256.
inline constexpr int kFieldBlock = 64;
template <int Base, class S, class V, int... I>
void visit_field_block(S& s, V& v, std::integer_sequence<int, I...>) {
  (visit_field<Base + I>(s, v, 0), ...);
}
template <class S, class V, int... B>
void visit_fields(S& s, V& v, std::integer_sequence<int, B...>) {
  (visit_field_block<B * kFieldBlock>(s, v, std::make_integer_sequence<int, kFieldBlock>{}), ...);
}

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
    return fmt::format("{}", value);  // the shortest text that reads back as the same value
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
      if (*n != '\0') valid += (valid.empty() ? "" : ", ") + std::string(n);
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
      if constexpr (std::is_floating_point_v<T>) {
        const double value = std::stod(text, &used);
        if (!std::isfinite(value)) fail("a finite number");
        out = static_cast<T>(value);
      } else {
        const long long value = std::stoll(text, &used);
        // Never narrowed silently: 4294967298 is not a valid int.
        if constexpr (std::is_signed_v<T>) {
          if (value < static_cast<long long>(std::numeric_limits<T>::min()) ||
              value > static_cast<long long>(std::numeric_limits<T>::max()))
            fail("an integer in range");
        } else if (value < 0 || static_cast<unsigned long long>(value) > std::numeric_limits<T>::max()) {
          fail("an integer in range");
        }
        out = static_cast<T>(value);
      }
      if (used != text.size()) fail(std::is_floating_point_v<T> ? "a number" : "an integer");
    } catch (const std::logic_error&) {
      fail(std::is_floating_point_v<T> ? "a number" : "an integer");
    }
  }
}

}  // namespace detail

/// Calls v("key", field) for every ADX_ARG field of the options struct `s`, in declaration order.
template <class S, class V>
void visit_options(S& s, V& v) {
  static_assert(detail::kMaxOptionLines * 8 % detail::kFieldBlock == 0, "field numbers must fill whole blocks");
  detail::visit_fields(s, v, std::make_integer_sequence<int, detail::kMaxOptionLines * 8 / detail::kFieldBlock>{});
}

namespace detail {

struct ToMapVisitor {
  OptionMap& map;
  std::string prefix;
  template <class T>
  void operator()(const char* key, const T& value) {
    if constexpr (is_options_struct<T>::value) {
      ToMapVisitor inner{map, prefix + key + "."};
      visit_options(const_cast<T&>(value), inner);
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
      visit_options(value, inner);
    } else {
      auto it = map.find(prefix + key);
      if (it == map.end()) return;
      option_from_string(it->first, it->second, value);
      used->push_back(it->first);
    }
  }
};

}  // namespace detail

namespace detail {

// An options struct may declare `void check(const std::string& prefix) const` for the
// ranges of its fields; check_options calls it.
template <class T, class = void>
struct has_check : std::false_type {};
template <class T>
struct has_check<T, std::void_t<decltype(std::declval<const T&>().check(std::string()))>> : std::true_type {};

struct CheckVisitor {
  std::string prefix;
  template <class T>
  void operator()(const char* key, const T& value) {
    const std::string name = prefix + key;
    if constexpr (is_options_struct<T>::value) {
      CheckVisitor inner{name + "."};
      visit_options(const_cast<T&>(value), inner);
      if constexpr (has_check<T>::value) value.check(name + ".");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(value))
        throw OptionError(fmt::format("option '{}' must be a finite number, got {}", name, value));
    }
  }
};

}  // namespace detail

/// Checks the values of an options struct before any work: every floating-point
/// field is finite, and every struct (nested or not) that declares
/// `check(prefix)` approves its fields. The first bad value is an OptionError naming it.
template <class Options>
void check_options(const Options& options) {
  detail::CheckVisitor v{""};
  visit_options(const_cast<Options&>(options), v);
  if constexpr (detail::has_check<Options>::value) options.check("");
}

/// The range checks of an options struct's check(prefix). Each failure is an OptionError that names the
/// key as the user writes it (prefix + key) and the value it got:
///   OptionChecks(prefix).at_least("slots", slots(), 1).in("shrink", shrink(), 0.0, 1.0, "[)");
class OptionChecks {
 public:
  explicit OptionChecks(std::string prefix) : prefix_(std::move(prefix)) {}
  /// value >= low.
  template <class T, class L>
  const OptionChecks& at_least(const char* key, const T& value, const L& low) const {
    if (!(value >= low)) fail(key, fmt::format("must be >= {}, got {}", low, value));
    return *this;
  }
  /// value > low.
  template <class T, class L>
  const OptionChecks& above(const char* key, const T& value, const L& low) const {
    if (!(value > low)) fail(key, fmt::format("must be > {}, got {}", low, value));
    return *this;
  }
  /// value in the interval that `ends` writes: "[]", "[)", "(]" or "()".
  template <class T, class L>
  const OptionChecks& in(const char* key, const T& value, const L& low, const L& high, const char* ends = "[]") const {
    const bool low_ok = ends[0] == '[' ? value >= low : value > low;
    const bool high_ok = ends[1] == ']' ? value <= high : value < high;
    if (!(low_ok && high_ok)) fail(key, fmt::format("must be in {}{}, {}{}, got {}", ends[0], low, high, ends[1], value));
    return *this;
  }
  /// A list of at least `min_entries` entries, each >= low (layer widths, dilations).
  const OptionChecks& each_at_least(const char* key, const std::vector<int64_t>& values, int64_t low,
                                    size_t min_entries = 1) const {
    if (values.size() < min_entries)
      fail(key, fmt::format("must list at least {} value(s), got {}", min_entries, values.size()));
    for (const auto value : values)
      if (value < low) fail(key, fmt::format("entries must be >= {}, got {}", low, value));
    return *this;
  }
  /// Any other rule: "option '<prefix><key>' <requirement>" when `ok` is false.
  template <class... A>
  const OptionChecks& that(bool ok, const char* key, fmt::format_string<A...> requirement, A&&... args) const {
    if (!ok) fail(key, fmt::format(requirement, std::forward<A>(args)...));
    return *this;
  }
  /// The key as the user writes it, for requirements that name another key.
  std::string key(const char* name) const { return prefix_ + name; }

 private:
  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw OptionError(fmt::format("option '{}{}' {}", prefix_, key, what));
  }
  std::string prefix_;
};

/// Flattens an options struct into a key/value map.
template <class Options>
OptionMap to_option_map(const Options& options) {
  OptionMap map;
  detail::ToMapVisitor v{map, ""};
  visit_options(const_cast<Options&>(options), v);
  return map;
}

/// Keys an options struct once had, each with the key that replaced it.
using OptionRenames = std::vector<std::pair<std::string, std::string>>;

namespace detail {

// An options struct may declare `static const OptionRenames& renamed_options()`, so that model files and
// scripts written with its older keys still read.
template <class T, class = void>
struct has_renames : std::false_type {};
template <class T>
struct has_renames<T, std::void_t<decltype(T::renamed_options())>> : std::true_type {};

inline OptionMap apply_renames(OptionMap map, const OptionRenames& renames) {
  for (const auto& [old_key, new_key] : renames) {
    const auto it = map.find(old_key);
    if (it == map.end()) continue;
    if (map.count(new_key))
      throw OptionError(fmt::format("options '{}' and '{}' set the same value ('{}' is its older name); give one",
                                    old_key, new_key, old_key));
    map[new_key] = it->second;
    map.erase(old_key);
  }
  return map;
}

}  // namespace detail

/// Applies a key/value map on top of `options`; an unknown key is an OptionError listing the valid keys.
/// Keys the struct lists in renamed_options() are read as their new names.
template <class Options>
Options from_option_map(const OptionMap& given, Options options = Options()) {
  const OptionMap* source = &given;
  OptionMap renamed;
  if constexpr (detail::has_renames<Options>::value) {
    renamed = detail::apply_renames(given, Options::renamed_options());
    source = &renamed;
  }
  const OptionMap& map = *source;
  std::vector<std::string> used;
  detail::FromMapVisitor v{map, "", &used};
  visit_options(options, v);
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

namespace detail {

// Whether an enum has its names (ADX_ENUM_NAMES).
template <class E, class = void>
struct has_enum_names : std::false_type {};
template <class E>
struct has_enum_names<E, std::void_t<decltype(EnumNames<E>::table())>> : std::true_type {};

}  // namespace detail

/// An option enum prints as its name in streams (and so in test messages).
template <class E, std::enable_if_t<detail::has_enum_names<E>::value, int> = 0>
std::ostream& operator<<(std::ostream& out, E value) {
  return out << detail::option_to_string(value);
}

}  // namespace adx

/// An option enum formats as its name in fmt, so messages take the enum itself.
template <class E>
struct fmt::formatter<E, char, std::enable_if_t<adx::detail::has_enum_names<E>::value>>
    : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(E value, Context& context) const {
    return fmt::formatter<std::string_view>::format(adx::detail::option_to_string(value), context);
  }
};
