// llama-quantize's command-line options that choose types and key/values, parsed as it parses
// them (its tools/quantize and common's KV override parser), with errors that name the option:
//  * a ggml type name, case-insensitive ("q8_0", "Q4_K", "iq4_nl", "f16");
//  * --tensor-type NAME=TYPE: NAME lower-cased and searched (std::regex, ECMAScript) in each
//    tensor name; the first entry that finds a match gives the type;
//  * --override-kv KEY=TYPE:VALUE: int (written as UINT32 of its magnitude), float (written as
//    F32), bool (true|false) or str (at most 127 bytes); KEY shorter than 128 bytes.
// Kept apart from the quantizer (io/gguf_quantize.hpp) so that <regex> is compiled only where
// these options are read.
#pragma once

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/io/gguf.hpp"

namespace dsv4::io {

/// The ggml type `value` names; `option` (the option and its argument) starts the error message.
inline FormatId ggml_type_option(std::string_view value, std::string_view option) {
  const auto t = gguf::type_from_name(value);
  DSV4_CHECK(t.has_value(), InputError,
             "{}: unknown ggml type '{}' (expected a ggml type name such as q8_0, q4_K or f16)",
             option, value);
  return *t;
}

/// The matcher of --tensor-type NAME=TYPE entries (empty when there are none).
inline std::function<std::optional<FormatId>(std::string_view)> tensor_type_matcher(
    const std::vector<std::string>& entries) {
  auto patterns = std::make_shared<std::vector<std::pair<std::regex, FormatId>>>();
  for (const std::string& e : entries) {
    const auto eq = e.find('=');
    DSV4_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < e.size(), InputError,
               "--tensor-type {}: expected NAME=TYPE (e.g. attn_q_b=q8_0)", e);
    std::string name = e.substr(0, eq);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const FormatId type =
        ggml_type_option(std::string_view(e).substr(eq + 1), "--tensor-type " + e);
    try {
      patterns->emplace_back(std::regex(name), type);
    } catch (const std::regex_error& err) {
      throw InputError(fmt::format("--tensor-type {}: '{}' is not a regular expression ({})", e,
                                   name, err.what()));
    }
  }
  if (patterns->empty()) return {};
  return [patterns](std::string_view tensor) -> std::optional<FormatId> {
    const std::string name(tensor);
    for (const auto& [re, type] : *patterns) {
      if (std::regex_search(name, re)) return type;
    }
    return std::nullopt;
  };
}

/// One --override-kv KEY=TYPE:VALUE as the key/value llama-quantize writes.
inline std::pair<std::string, GgufValue> kv_override(std::string_view arg) {
  const auto bad = [&](std::string_view why) {
    return InputError(
        fmt::format("--override-kv {}: {} (expected KEY=int:N, KEY=float:X, "
                    "KEY=bool:true|false or KEY=str:TEXT)",
                    arg, why));
  };
  const auto eq = arg.find('=');
  if (eq == std::string_view::npos || eq == 0) throw bad("no KEY=");
  if (eq >= 128) throw bad("the key is longer than 127 bytes");
  std::string key(arg.substr(0, eq));
  const std::string_view rest = arg.substr(eq + 1);
  const auto value_of = [&](std::string_view prefix) -> std::optional<std::string_view> {
    if (!rest.starts_with(prefix)) return std::nullopt;
    return rest.substr(prefix.size());
  };
  if (const auto v = value_of("int:")) {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size()) {
      throw bad("not an integer");
    }
    const std::uint64_t mag =
        n < 0 ? 0 - static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(n);
    if (mag > UINT32_MAX) throw bad("its magnitude does not fit 32 bits");
    return {std::move(key), GgufValue(static_cast<std::uint32_t>(mag))};
  }
  if (const auto v = value_of("float:")) {
    double x = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size() || !std::isfinite(x)) {
      throw bad("not a finite number");
    }
    return {std::move(key), GgufValue(static_cast<float>(x))};
  }
  if (const auto v = value_of("bool:")) {
    if (*v != "true" && *v != "false") throw bad("a bool is true or false");
    return {std::move(key), GgufValue(*v == "true")};
  }
  if (const auto v = value_of("str:")) {
    if (v->size() > 127) throw bad("the text is longer than 127 bytes");
    return {std::move(key), GgufValue(std::string(*v))};
  }
  throw bad("unknown TYPE");
}

}  // namespace dsv4::io
