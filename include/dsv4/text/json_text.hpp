// JSON text as Python's `json.dumps(value, ensure_ascii=False)` writes it: ", " between items,
// ": " after keys, keys in their original order, floats in Python's shortest repr (1.5e-07,
// 100.0, 1e+16), non-ASCII characters as they are. The DeepSeek-V4 chat format embeds tool
// schemas and tool-call arguments in this form, so a prompt is byte-equal to the official
// encoder's only when its JSON is.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dsv4::text {

/// Python's repr() of a float: the shortest digits that read back as `v`, in positional form
/// for decimal exponents -4 to 15 (with ".0" when integral) and in scientific form with a
/// signed two-digit (or longer) exponent otherwise; NaN and Infinity as json.dumps writes them.
inline std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
  const std::size_t e = s.find('e');
  int exp = 0;
  std::from_chars(s.data() + e + 1 + (s[e + 1] == '+' ? 1 : 0), s.data() + s.size(), exp);
  std::string out;
  std::string_view mantissa = s.substr(0, e);
  if (mantissa.front() == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (const char c : mantissa) {
    if (c != '.') digits += c;
  }
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += exp < 0 ? "e-" : "e+";
    const int a = exp < 0 ? -exp : exp;
    if (a < 10) out += '0';
    out += std::to_string(a);
  } else if (exp >= 0) {
    const auto point = static_cast<std::size_t>(exp) + 1;
    if (digits.size() <= point) {
      out += digits;
      out.append(point - digits.size(), '0');
      out += ".0";
    } else {
      out.append(digits, 0, point);
      out += '.';
      out.append(digits, point);
    }
  } else {
    out += "0.";
    out.append(static_cast<std::size_t>(-exp - 1), '0');
    out += digits;
  }
  return out;
}

/// A JSON string literal of `s` (escapes as json.dumps with ensure_ascii=False; bytes that are
/// not UTF-8 become U+FFFD).
inline std::string python_json_string(std::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// `value` as json.dumps(value, ensure_ascii=False) prints it.
template <class Json>
std::string python_json(const Json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        out += python_json_string(it.key());
        out += ": ";
        out += python_json(it.value());
      }
      return out + "}";
    }
    case nlohmann::json::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& item : value) {
        if (!first) out += ", ";
        first = false;
        out += python_json(item);
      }
      return out + "]";
    }
    case nlohmann::json::value_t::string:
      return python_json_string(value.template get_ref<const std::string&>());
    case nlohmann::json::value_t::number_float:
      return python_float_repr(value.template get<double>());
    default:  // null, booleans, integers
      return value.dump();
  }
}

}  // namespace dsv4::text
