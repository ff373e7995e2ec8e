// The DeepSeek-V4 tokenizer: byte-level BPE read from a Hugging Face tokenizer.json.
//
// What the V4 tokenizer.json asks for, and what this file implements (anything else in a file is
// rejected with a FormatError naming the field):
//   * added tokens (the 1,283 special and control tokens) are cut out of the text first, leftmost-
//     longest, the "normalized": false ones before the "normalized": true ones, as `tokenizers`
//     does; the normalizer is empty, so both kinds match the raw text;
//   * the rest goes through the V4 pre-tokenizer (pretokenizer.hpp), then each piece's bytes are
//     mapped to GPT-2's byte characters and merged by BPE in merge-rank order (lowest rank first,
//     leftmost first among equal ranks, exactly `tokenizers`' merge queue);
//   * decoding maps each token's characters back to bytes (a token with a character outside the
//     byte map, such as the added tokens, contributes its own UTF-8), concatenates, and replaces
//     every invalid UTF-8 sequence by U+FFFD, as the ByteLevel decoder does.
// Differences from `tokenizers`, on purpose: invalid UTF-8 input and unknown ids are InputErrors
// (Python strings cannot hold invalid UTF-8; `tokenizers` silently drops unknown ids).
// Spec: spec/architecture.md, "Chat encoding" (special token ids).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/text/pretokenizer.hpp"
#include "dsv4/text/utf8.hpp"

namespace dsv4::text {

using TokenId = std::int32_t;

/// One entry of tokenizer.json's "added_tokens".
struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;     // dropped by decode(..., skip_special_tokens = true)
  bool normalized = false;  // matched after normalization (the V4 normalizer is empty)
};

namespace detail {

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes map to themselves,
/// the other 68 to U+0100 onwards in byte order.
inline std::array<std::uint32_t, 256> byte_to_char_table() {
  std::array<std::uint32_t, 256> table{};
  std::uint32_t next = 256;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    table[b] = printable ? b : next++;
  }
  return table;
}

/// Leftmost-longest matching of a set of strings (the added tokens) inside text.
class TokenMatcher {
 public:
  void add(std::string content, TokenId id) {
    if (content.empty()) return;
    auto& bucket = by_first_[static_cast<unsigned char>(content[0])];
    bucket.emplace_back(std::move(content), id);
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    empty_ = false;
  }
  bool empty() const noexcept { return empty_; }

  /// The longest token that starts at `text[i]`, as (length, id); length 0 when none does.
  std::pair<std::size_t, TokenId> match_at(std::string_view text, std::size_t i) const noexcept {
    for (const auto& [content, id] : by_first_[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, content.size(), content) == 0) return {content.size(), id};
    }
    return {0, 0};
  }

 private:
  std::array<std::vector<std::pair<std::string, TokenId>>, 256> by_first_;
  bool empty_ = true;
};

struct MergeRule {
  std::int32_t rank;
  TokenId new_id;
};

inline std::uint64_t pair_key(TokenId a, TokenId b) noexcept {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}

}  // namespace detail

class Tokenizer {
 public:
  /// Reads a tokenizer.json file. Throws FormatError (unreadable or unsupported content).
  static Tokenizer load(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    DSV4_CHECK(in.good(), FormatError, "{}: cannot open the tokenizer file", path.string());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return from_json(text, path.string());
  }

  /// Parses the text of a tokenizer.json; `source` names it in error messages.
  static Tokenizer from_json(std::string_view json_text,
                             std::string_view source = "tokenizer.json") {
    Tokenizer t;
    try {
      t.parse(nlohmann::json::parse(json_text.begin(), json_text.end()), std::string(source));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(
          fmt::format("{}: not a tokenizer.json this tokenizer can read: {}", source, e.what()));
    }
    return t;
  }

  /// What a token of from_vocabulary is (llama.cpp's token types).
  enum class TokenKind : std::uint8_t {
    normal,        ///< a BPE vocabulary entry
    control,       ///< a special added token (BOS, EOS, chat markers): cut out of text first
    user_defined,  ///< a non-special added token: cut out of text after the control ones
    unused,        ///< no token (an id the vocabulary leaves free)
  };

  /// Builds the tokenizer from lists, as a GGUF's tokenizer.ggml.* keys hold it: tokens[i] is id
  /// i's string (byte characters for BPE tokens, the text of added tokens), kinds[i] its kind,
  /// merges the "a b" pairs in rank order. The V4 pre-tokenizer is used. For V4's vocabulary this
  /// gives the ids of tokenizer.json. `source` names the input in error messages. Throws
  /// FormatError naming the offending token or merge.
  static Tokenizer from_vocabulary(std::span<const std::string> tokens,
                                   std::span<const TokenKind> kinds,
                                   std::span<const std::string> merges,
                                   std::string_view source = "vocabulary") {
    const std::string src(source);
    DSV4_CHECK(tokens.size() == kinds.size(), FormatError,
               "{}: {} tokens but {} token kinds; they must match", src, tokens.size(),
               kinds.size());
    DSV4_CHECK(!tokens.empty(), FormatError, "{}: the vocabulary is empty", src);
    DSV4_CHECK(tokens.size() < (std::size_t{1} << 21), FormatError,
               "{}: {} tokens, more than any real vocabulary", src, tokens.size());
    Tokenizer t;
    const std::size_t n = tokens.size();
    t.token_.assign(n, {});
    t.defined_.assign(n, 0);
    t.vocab_.reserve(n);
    for (std::size_t k = 0; k < n; ++k) {
      if (kinds[k] == TokenKind::unused) continue;
      const auto id = static_cast<TokenId>(k);
      DSV4_CHECK(is_valid_utf8(tokens[k]), FormatError, "{}: token {} is not valid UTF-8", src, k);
      DSV4_CHECK(!tokens[k].empty(), FormatError, "{}: token {} is empty", src, k);
      t.token_[k] = tokens[k];
      t.defined_[k] = 1;
      const auto [it, fresh] = t.vocab_.emplace(tokens[k], id);
      DSV4_CHECK(fresh || kinds[k] != TokenKind::normal, FormatError,
                 "{}: tokens {} and {} are both '{}'", src, it->second, k, tokens[k]);
      if (kinds[k] == TokenKind::normal) continue;
      AddedToken a;
      a.id = id;
      a.content = tokens[k];
      a.special = kinds[k] == TokenKind::control;
      a.normalized = !a.special;
      t.added_ids_[a.content] = a.id;
      (a.normalized ? t.normalized_ : t.non_normalized_).add(a.content, a.id);
      t.added_.push_back(std::move(a));
    }
    t.merges_.reserve(merges.size());
    for (std::size_t r = 0; r < merges.size(); ++r) {
      t.add_merge_line(merges[r], static_cast<std::int32_t>(r), src);
    }
    t.finish();
    return t;
  }

  /// Token ids of UTF-8 `text`; added tokens written in the text are recognised. Throws InputError
  /// when `text` is not valid UTF-8.
  std::vector<TokenId> encode(std::string_view text) const {
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 4);
    encode(text, ids);
    return ids;
  }

  /// Appends the token ids of `text` to `out`.
  void encode(std::string_view text, std::vector<TokenId>& out) const {
    std::uint32_t cp = 0;
    for (std::size_t i = 0; i < text.size();) {
      if (static_cast<unsigned char>(text[i]) < 0x80) {
        ++i;
      } else {
        i += decode_utf8_at(text, i, &cp);
      }
    }
    Scratch s;
    split_added(text, non_normalized_, out, s, [&](std::string_view part) {
      split_added(part, normalized_, out, s,
                  [&](std::string_view rest) { encode_plain(rest, out, s); });
    });
  }

  /// The text of `ids`: invalid UTF-8 produced by ids that split a character becomes U+FFFD.
  /// Throws InputError for an id that names no token.
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const {
    std::string bytes;
    for (const TokenId id : ids) {
      check_id(id);
      if (skip_special_tokens && special_[static_cast<std::size_t>(id)]) continue;
      bytes.append(decoded_bytes(id));
    }
    return utf8_lossy(bytes);
  }

  /// The raw bytes token `id` stands for (possibly part of a UTF-8 character).
  std::string_view decoded_bytes(TokenId id) const {
    check_id(id);
    const auto k = static_cast<std::size_t>(id);
    return std::string_view(decoded_).substr(decoded_offset_[k],
                                             decoded_offset_[k + 1] - decoded_offset_[k]);
  }

  /// The token string of `id` as tokenizer.json spells it (byte characters for BPE tokens).
  const std::string& id_to_token(TokenId id) const {
    check_id(id);
    return token_[static_cast<std::size_t>(id)];
  }

  /// The id of token string `token` (an added token's content, or a vocabulary entry).
  std::optional<TokenId> token_to_id(std::string_view token) const {
    const std::string key(token);
    if (const auto it = added_ids_.find(key); it != added_ids_.end()) return it->second;
    if (const auto it = vocab_.find(key); it != vocab_.end()) return it->second;
    return std::nullopt;
  }

  /// The id of an added token; throws FormatError naming the token when the file lacks it.
  TokenId special_id(std::string_view content) const {
    const auto it = added_ids_.find(std::string(content));
    DSV4_CHECK(it != added_ids_.end(), FormatError,
               "the tokenizer has no added token '{}', which the DeepSeek-V4 chat format needs",
               content);
    return it->second;
  }

  /// One more than the largest id (129,280 for DeepSeek-V4).
  TokenId vocab_size() const noexcept { return static_cast<TokenId>(token_.size()); }
  bool is_special(TokenId id) const {
    check_id(id);
    return special_[static_cast<std::size_t>(id)] != 0;
  }
  const std::vector<AddedToken>& added_tokens() const noexcept { return added_; }
  std::size_t merge_count() const noexcept { return merges_.size(); }

 private:
  Tokenizer() = default;

  /// Buffers reused across the pieces of one encode call.
  struct Scratch {
    std::vector<std::uint32_t> cp;
    std::vector<CharClass> cls;
    std::vector<std::uint32_t> offset;  // byte offset of each code point, plus the end
    struct Symbol {
      TokenId id;
      std::int32_t prev, next;
      bool alive;
    };
    std::vector<Symbol> symbols;
    struct Entry {
      std::int32_t rank, pos;
      TokenId new_id;
      bool operator<(const Entry& o) const noexcept {  // inverted: a min-heap on (rank, pos)
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::vector<Entry> heap;
  };

  void check_id(TokenId id) const {
    DSV4_CHECK(id >= 0 && id < vocab_size() && defined_[static_cast<std::size_t>(id)], InputError,
               "token id {} is not in the tokenizer (valid ids: 0..{}{})", id, vocab_size() - 1,
               holes_ ? ", with gaps" : "");
  }

  template <class Rest>
  static void split_added(std::string_view text, const detail::TokenMatcher& m,
                          std::vector<TokenId>& out, Scratch&, Rest&& rest) {
    if (m.empty()) {
      if (!text.empty()) rest(text);
      return;
    }
    std::size_t gap = 0;
    for (std::size_t i = 0; i < text.size();) {
      const auto [len, id] = m.match_at(text, i);
      if (len == 0) {
        ++i;
        continue;
      }
      if (gap < i) rest(text.substr(gap, i - gap));
      out.push_back(id);
      i += len;
      gap = i;
    }
    if (gap < text.size()) rest(text.substr(gap));
  }

  /// Text without added tokens: pre-tokenize, then BPE each piece.
  void encode_plain(std::string_view text, std::vector<TokenId>& out, Scratch& s) const {
    s.cp.clear();
    s.cls.clear();
    s.offset.clear();
    std::uint32_t cp = 0;
    for (std::size_t i = 0; i < text.size();) {
      s.offset.push_back(static_cast<std::uint32_t>(i));
      i += decode_utf8_at(text, i, &cp);
      s.cp.push_back(cp);
      s.cls.push_back(char_class(cp));
    }
    s.offset.push_back(static_cast<std::uint32_t>(text.size()));
    pretokenize_v4(s.cp.data(), s.cls.data(), s.cp.size(), [&](std::size_t b, std::size_t e) {
      bpe(text.substr(s.offset[b], s.offset[e] - s.offset[b]), out, s);
    });
  }

  /// Byte-level BPE of one piece, the merge order of `tokenizers` (models/bpe/word.rs).
  void bpe(std::string_view piece, std::vector<TokenId>& out, Scratch& s) const {
    if (ignore_merges_) {
      std::string mapped;
      for (const char c : piece) append_utf8(mapped, byte_char_[static_cast<unsigned char>(c)]);
      if (const auto it = vocab_.find(mapped); it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    auto& sym = s.symbols;
    sym.clear();
    for (const char c : piece) {
      const TokenId id = byte_id_[static_cast<unsigned char>(c)];
      if (id < 0) continue;  // a byte the vocabulary lacks is dropped (no unk token)
      const auto n = static_cast<std::int32_t>(sym.size());
      sym.push_back({id, n - 1, n + 1, true});
    }
    if (sym.empty()) return;
    sym.back().next = -1;
    if (sym.size() > 1) {
      auto& heap = s.heap;
      heap.clear();
      const auto push = [&](std::int32_t pos, TokenId a, TokenId b) {
        const auto it = merges_.find(detail::pair_key(a, b));
        if (it == merges_.end()) return;
        heap.push_back({it->second.rank, pos, it->second.new_id});
        std::push_heap(heap.begin(), heap.end());
      };
      for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
        push(static_cast<std::int32_t>(i), sym[i].id, sym[i + 1].id);
      }
      while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end());
        const auto top = heap.back();
        heap.pop_back();
        auto& cur = sym[static_cast<std::size_t>(top.pos)];
        if (!cur.alive || cur.next < 0) continue;
        const auto right_pos = static_cast<std::size_t>(cur.next);
        const auto right = sym[right_pos];
        // An entry is stale when its pair has changed since it was queued.
        const auto it = merges_.find(detail::pair_key(cur.id, right.id));
        if (it == merges_.end() || it->second.new_id != top.new_id) continue;
        cur.id = top.new_id;
        cur.next = right.next;
        sym[right_pos].alive = false;
        if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = top.pos;
        if (cur.prev >= 0) push(cur.prev, sym[static_cast<std::size_t>(cur.prev)].id, cur.id);
        if (cur.next >= 0) push(top.pos, cur.id, sym[static_cast<std::size_t>(cur.next)].id);
      }
    }
    for (const auto& x : sym) {
      if (x.alive) out.push_back(x.id);
    }
  }

  static void expect(bool ok, const std::string& source, std::string_view what) {
    DSV4_CHECK(ok, FormatError,
               "{}: unsupported tokenizer.json: {} (this tokenizer implements the DeepSeek-V4 "
               "byte-level BPE tokenizer only)",
               source, what);
  }

  void parse(const nlohmann::json& j, const std::string& source) {
    expect(j.is_object(), source, "the top level is not a JSON object");
    const auto field = [&](const nlohmann::json& obj, const char* key) -> const nlohmann::json& {
      static const nlohmann::json null_value;
      const auto it = obj.find(key);
      return it == obj.end() ? null_value : *it;
    };

    // normalizer: none, or an empty Sequence.
    const auto& norm = field(j, "normalizer");
    expect(norm.is_null() ||
               (norm.value("type", "") == "Sequence" && field(norm, "normalizers").is_array() &&
                field(norm, "normalizers").empty()),
           source, "\"normalizer\" must be null or an empty Sequence");

    // pre_tokenizer: exactly the DeepSeek-V4 sequence.
    static constexpr std::string_view word_regex =
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
    static constexpr std::string_view split_regexes[] = {
        R"(\p{N}{1,3})",
        "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        word_regex,
    };
    const auto& pre = field(j, "pre_tokenizer");
    const auto& steps = field(pre, "pretokenizers");
    bool pre_ok = pre.is_object() && pre.value("type", "") == "Sequence" && steps.is_array() &&
                  steps.size() == 4;
    for (std::size_t k = 0; pre_ok && k < 3; ++k) {
      const auto& st = steps[k];
      pre_ok =
          st.is_object() && st.value("type", "") == "Split" &&
          st.value("behavior", "") == "Isolated" && !st.value("invert", false) &&
          field(st, "pattern").is_object() &&
          field(field(st, "pattern"), "Regex") == nlohmann::json(std::string(split_regexes[k]));
    }
    pre_ok = pre_ok && steps[3].is_object() && steps[3].value("type", "") == "ByteLevel" &&
             !steps[3].value("add_prefix_space", true) && !steps[3].value("use_regex", true);
    expect(pre_ok, source,
           "\"pre_tokenizer\" is not the DeepSeek-V4 sequence (three Isolated regex splits: digit "
           "groups, CJK runs, the word regex; then ByteLevel without prefix space or regex)");

    const auto& dec = field(j, "decoder");
    expect(dec.is_object() && dec.value("type", "") == "ByteLevel", source,
           "\"decoder\" must be ByteLevel");
    const auto& post = field(j, "post_processor");
    expect(post.is_null() || (post.is_object() && post.value("type", "") == "ByteLevel"), source,
           "\"post_processor\" must be null or ByteLevel (no template adding tokens)");

    const auto& model = field(j, "model");
    expect(model.is_object() && model.value("type", "BPE") == "BPE", source,
           "\"model\" must be a BPE model");
    expect(field(model, "dropout").is_null() || field(model, "dropout") == 0.0, source,
           "BPE dropout is not supported");
    expect(field(model, "unk_token").is_null(), source, "an unk_token is not supported");
    expect(field(model, "continuing_subword_prefix").is_null() &&
               field(model, "end_of_word_suffix").is_null(),
           source, "subword prefixes and suffixes are not supported");
    expect(!model.value("byte_fallback", false), source, "byte_fallback is not supported");
    ignore_merges_ = model.value("ignore_merges", false);

    // Vocabulary.
    const auto& vocab = field(model, "vocab");
    expect(vocab.is_object() && !vocab.empty(), source,
           "\"model.vocab\" must be a non-empty object");
    constexpr std::int64_t max_id_limit = 1 << 21;  // far above any real vocabulary
    std::int64_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      expect(it.value().is_number_integer(), source, "a \"model.vocab\" id is not an integer");
      const auto id = it.value().get<std::int64_t>();
      DSV4_CHECK(id >= 0 && id < max_id_limit, FormatError,
                 "{}: token '{}' has id {}, outside 0..{}", source, it.key(), id, max_id_limit - 1);
      max_id = std::max(max_id, id);
    }
    const auto& added = field(j, "added_tokens");
    expect(added.is_null() || added.is_array(), source, "\"added_tokens\" must be an array");
    for (const auto& a : added) {
      expect(a.is_object() && field(a, "id").is_number_integer() && field(a, "content").is_string(),
             source, R"(an added token needs an integer "id" and a string "content")");
      const auto id = a["id"].get<std::int64_t>();
      DSV4_CHECK(id >= 0 && id < max_id_limit, FormatError,
                 "{}: added token '{}' has id {}, outside 0..{}", source,
                 a["content"].get<std::string>(), id, max_id_limit - 1);
      max_id = std::max(max_id, id);
    }
    const auto n = static_cast<std::size_t>(max_id + 1);
    token_.assign(n, {});
    defined_.assign(n, 0);
    special_.assign(n, 0);
    vocab_.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const auto id = it.value().get<TokenId>();
      const auto k = static_cast<std::size_t>(id);
      DSV4_CHECK(!defined_[k], FormatError, "{}: tokens '{}' and '{}' share id {}", source,
                 token_[k], it.key(), id);
      expect(is_valid_utf8(it.key()), source, "a vocabulary token is not valid UTF-8");
      token_[k] = it.key();
      defined_[k] = 1;
      vocab_.emplace(it.key(), id);
    }

    // Added tokens: they take their ids over from the vocabulary where both name one.
    for (const auto& a : added) {
      AddedToken t;
      t.id = a["id"].get<TokenId>();
      t.content = a["content"].get<std::string>();
      t.special = a.value("special", false);
      t.normalized = a.value("normalized", !t.special);
      expect(
          !a.value("lstrip", false) && !a.value("rstrip", false) && !a.value("single_word", false),
          source, "added tokens with lstrip, rstrip or single_word are not supported");
      expect(is_valid_utf8(t.content), source, "an added token is not valid UTF-8");
      const auto k = static_cast<std::size_t>(t.id);
      token_[k] = t.content;
      defined_[k] = 1;
      added_ids_[t.content] = t.id;
      (t.normalized ? normalized_ : non_normalized_).add(t.content, t.id);
      added_.push_back(std::move(t));
    }
    // Merges: "a b" strings or [a, b] pairs; rank = position (a repeated pair keeps the last).
    const auto& merges = field(model, "merges");
    expect(merges.is_null() || merges.is_array(), source, "\"model.merges\" must be an array");
    merges_.reserve(merges.size());
    std::int32_t rank = 0;
    for (const auto& m : merges) {
      if (m.is_string()) {
        add_merge_line(m.get_ref<const std::string&>(), rank, source);
      } else {
        expect(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), source,
               R"(a merge is neither "a b" nor ["a", "b"])");
        add_merge(m[0].get<std::string>(), m[1].get<std::string>(), rank, source);
      }
      ++rank;
    }
    finish();
  }

  /// A merge "a b" of rank `rank`.
  void add_merge_line(const std::string& line, std::int32_t rank, const std::string& source) {
    const auto sp = line.find(' ');
    DSV4_CHECK(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos, FormatError,
               "{}: merge {} ('{}') is not two tokens separated by one space", source, rank, line);
    add_merge(line.substr(0, sp), line.substr(sp + 1), rank, source);
  }

  void add_merge(const std::string& a, const std::string& b, std::int32_t rank,
                 const std::string& source) {
    const auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    DSV4_CHECK(ia != vocab_.end() && ib != vocab_.end() && iab != vocab_.end(), FormatError,
               "{}: merge {} ('{}' + '{}') names a token missing from the vocabulary", source, rank,
               a, b);
    merges_[detail::pair_key(ia->second, ib->second)] = {rank, iab->second};
  }

  /// The tables derived from the tokens: special flags, byte map, what each id decodes to.
  void finish() {
    const std::size_t n = token_.size();
    // `tokenizers` skips by content: every id whose token reads like a special token.
    std::unordered_map<std::string, bool> special_content;
    for (const auto& t : added_) {
      if (t.special) special_content[t.content] = true;
    }
    special_.assign(n, 0);
    for (std::size_t k = 0; k < n; ++k) {
      if (defined_[k] && special_content.count(token_[k]) != 0) special_[k] = 1;
    }
    holes_ = std::find(defined_.begin(), defined_.end(), 0) != defined_.end();

    // Byte map.
    const auto table = detail::byte_to_char_table();
    std::unordered_map<std::uint32_t, int> char_byte;
    for (int b = 0; b < 256; ++b) {
      byte_char_[static_cast<std::size_t>(b)] = table[static_cast<std::size_t>(b)];
      char_byte[table[static_cast<std::size_t>(b)]] = b;
      std::string s;
      append_utf8(s, table[static_cast<std::size_t>(b)]);
      const auto it = vocab_.find(s);
      byte_id_[static_cast<std::size_t>(b)] = it == vocab_.end() ? -1 : it->second;
    }

    // What each id decodes to.
    decoded_offset_.assign(n + 1, 0);
    for (std::size_t k = 0; k < n; ++k) {
      decoded_offset_[k] = decoded_.size();
      const std::string& tok = token_[k];
      std::string bytes;
      bool mapped = true;
      std::uint32_t c = 0;
      for (std::size_t i = 0; i < tok.size() && mapped;) {
        i += decode_utf8_at(tok, i, &c, "a token");
        const auto it = char_byte.find(c);
        if (it == char_byte.end()) {
          mapped = false;
        } else {
          bytes += static_cast<char>(it->second);
        }
      }
      decoded_ += mapped ? bytes : tok;
    }
    decoded_offset_[n] = decoded_.size();
  }

  std::vector<std::string> token_;           // [vocab_size] token strings
  std::vector<std::uint8_t> defined_;        // [vocab_size] 1 where an id names a token
  std::vector<std::uint8_t> special_;        // [vocab_size] 1 for special tokens
  std::string decoded_;                      // the bytes of every id, back to back
  std::vector<std::size_t> decoded_offset_;  // [vocab_size + 1]
  bool holes_ = false;
  std::unordered_map<std::string, TokenId> vocab_;
  std::unordered_map<std::string, TokenId> added_ids_;
  std::vector<AddedToken> added_;
  detail::TokenMatcher non_normalized_, normalized_;
  std::unordered_map<std::uint64_t, detail::MergeRule> merges_;
  std::array<TokenId, 256> byte_id_{};
  std::array<std::uint32_t, 256> byte_char_{};
  bool ignore_merges_ = false;
};

}  // namespace dsv4::text
