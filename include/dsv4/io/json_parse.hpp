// Parsing untrusted JSON text (safetensors headers, config.json, index files) into nlohmann::json
// with every failure turned into a dsv4 error that names the input.
//
// nlohmann's parser is iterative, but printing a value (`dump()`, which error messages use) and
// copying one recurse once per nesting level, so a few megabytes of "[[[[..." would overflow
// the stack later on. No file dsv4 reads nests deeper than a handful of levels; deeper input is
// rejected while it is parsed. Numbers that do not fit a double (1e999) are nlohmann
// out_of_range errors rather than parse errors, and are reported the same way.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string_view>

namespace dsv4::io {

/// Deepest nesting of arrays and objects accepted in a JSON file (the top-level value is at
/// depth 1; a safetensors header needs 3).
inline constexpr int max_json_depth = 64;

/// Parses `text`; throws ErrType("{what}: not valid JSON: ...") for a syntax error or a number
/// out of range and ErrType("{what}: ... nested deeper than ...") for nesting deeper than
/// `max_depth` levels. `Json` may be nlohmann::ordered_json where key order matters.
template <class ErrType, class Json = nlohmann::json>
Json parse_json_text(std::string_view text, std::string_view what, int max_depth = max_json_depth) {
  using json = Json;
  const typename json::parser_callback_t limit_depth = [&](int depth,
                                                           typename json::parse_event_t event,
                                                           json&) {
    // `depth` counts the containers around the one that starts
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= max_depth) {
      throw ErrType(fmt::format(
          "{}: arrays and objects are nested deeper than {} levels (expected a shallow document; "
          "the file is corrupt or hostile)",
          what, max_depth));
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit_depth);
  } catch (const nlohmann::json::exception& e) {
    throw ErrType(fmt::format("{}: not valid JSON: {}", what, e.what()));
  }
}

}  // namespace dsv4::io
