// The tokenizer stored inside a GGUF file: llama.cpp's `tokenizer.ggml.*` keys (model "gpt2",
// pre-tokenizer "deepseek-v3", tokens, token types, "a b" merges, BOS/EOS ids) read into the same
// byte-level BPE tokenizer that text/tokenizer.hpp builds from a tokenizer.json. For DeepSeek-V4's
// vocabulary written by gguf_tokenizer_from_json (or llama.cpp's converter) both give the same ids.
//
// Token types: 1 normal (a BPE vocabulary entry), 3 control (a special added token), 4
// user-defined (a non-special added token), 5 unused (an id without a token); anything else, a
// tokenizer model other than gpt2, a pre-tokenizer other than deepseek-v3 and lists of different
// lengths are FormatErrors naming the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/gguf_model.hpp"
#include "dsv4/text/tokenizer.hpp"

namespace dsv4::io {

/// A tokenizer with the ids a model's text needs around it.
struct TextTokenizer {
  text::Tokenizer tokenizer;
  std::optional<text::TokenId> bos;  ///< tokenizer.ggml.bos_token_id
  std::optional<text::TokenId> eos;  ///< tokenizer.ggml.eos_token_id
  bool add_bos = true;               ///< tokenizer.ggml.add_bos_token (true when absent)
};

/// The tokenizer of GGUF tokenizer keys; `label` names the file in error messages.
inline TextTokenizer text_tokenizer_from_gguf(const GgufTokenizer& g, std::string_view label) {
  const auto key_error = [&](std::string_view key, const std::string& what) {
    return FormatError(fmt::format("gguf {}: key '{}': {}", label, key, what));
  };
  if (g.model != "gpt2") {
    throw key_error(
        "tokenizer.ggml.model",
        fmt::format("'{}' is not supported (dsv4 reads byte-level BPE, 'gpt2')", g.model));
  }
  if (g.pre != "deepseek-v3") {
    throw key_error("tokenizer.ggml.pre",
                    fmt::format("'{}' is not supported (dsv4 reads the DeepSeek-V3/V4 "
                                "pre-tokenizer, 'deepseek-v3')",
                                g.pre));
  }
  if (g.token_types.size() != g.tokens.size()) {
    throw key_error("tokenizer.ggml.token_type",
                    fmt::format("{} token types for {} tokens (tokenizer.ggml.tokens)",
                                g.token_types.size(), g.tokens.size()));
  }
  if (g.merges.empty()) throw key_error("tokenizer.ggml.merges", "missing or empty");
  using Kind = text::Tokenizer::TokenKind;
  std::vector<Kind> kinds(g.tokens.size());
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    switch (g.token_types[i]) {
      case kTokenNormal:
        kinds[i] = Kind::normal;
        break;
      case kTokenControl:
        kinds[i] = Kind::control;
        break;
      case kTokenUserDefined:
        kinds[i] = Kind::user_defined;
        break;
      case kTokenUnused:
        kinds[i] = Kind::unused;
        break;
      default:
        throw key_error("tokenizer.ggml.token_type",
                        fmt::format("token {} has type {} (expected 1 normal, 3 control, 4 "
                                    "user-defined or 5 unused)",
                                    i, g.token_types[i]));
    }
  }
  TextTokenizer t{text::Tokenizer::from_vocabulary(g.tokens, kinds, g.merges,
                                                   fmt::format("gguf {}: tokenizer.ggml", label)),
                  std::nullopt, std::nullopt, g.add_bos.value_or(true)};
  const auto id = [&](std::optional<std::uint32_t> v,
                      std::string_view key) -> std::optional<text::TokenId> {
    if (!v) return std::nullopt;
    if (*v >= g.tokens.size()) {
      throw key_error(
          key, fmt::format("id {} is outside the vocabulary of {} tokens", *v, g.tokens.size()));
    }
    return static_cast<text::TokenId>(*v);
  };
  t.bos = id(g.bos, "tokenizer.ggml.bos_token_id");
  t.eos = id(g.eos, "tokenizer.ggml.eos_token_id");
  if (t.add_bos && !t.bos) {
    throw key_error("tokenizer.ggml.bos_token_id", "missing, yet add_bos_token is true");
  }
  return t;
}

/// The tokenizer inside GGUF metadata; FormatError when it has none (naming the key).
inline TextTokenizer text_tokenizer_from_gguf(const GgufMetadata& meta, std::string_view label) {
  const auto g = gguf_tokenizer_of(meta, label);
  DSV4_CHECK(g.has_value(), FormatError,
             "gguf {}: no tokenizer inside (key 'tokenizer.ggml.tokens' is missing)", label);
  return text_tokenizer_from_gguf(*g, label);
}

/// The tokenizer inside a GGUF file.
inline TextTokenizer text_tokenizer_from_gguf(const GgufFile& f) {
  return text_tokenizer_from_gguf(f.metadata(), f.label());
}

}  // namespace dsv4::io
