// The DeepSeek-V4 pre-tokenizer: how text is cut into pieces before byte-level BPE.
//
// The V4 tokenizer.json chains three Split pre-tokenizers (behaviour "Isolated": matches and the
// gaps between them both become pieces), each applied to every piece the previous one produced:
//   1. \p{N}{1,3}                                  digit groups of one to three, from the left
//   2. [一-龥぀-ゟ゠-ヿ]+                             runs of U+4E00..U+9FA5 and
//   U+3040..U+30FF
//   3. [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//      | ?[\p{P}\p{S}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
// then maps bytes to characters (ByteLevel without its own regex). The regexes run on Oniguruma,
// a backtracking engine: at each start position the alternatives are tried in order and the first
// that matches wins; the rules below are those alternatives written out over code points, with the
// backtracking resolved by hand (see the comments on each). Lookahead sees only the current piece.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsv4/text/unicode_tables.hpp"

namespace dsv4::text {

/// The character classes the regexes use (Unicode general categories as Oniguruma has them).
enum class CharClass : std::uint8_t { other, letter, mark, number, punctuation, symbol, space };

/// The class of code point `cp` (\p{L}, \p{M}, \p{N}, \p{P}, \p{S}, \s or none of them).
inline CharClass char_class(std::uint32_t cp) noexcept {
  if (cp >= 0x110000) return CharClass::other;
  const std::uint32_t block = detail::class_stage1[cp >> detail::class_block_shift];
  const std::uint32_t mask = (1u << detail::class_block_shift) - 1;
  return static_cast<CharClass>(
      detail::class_stage2[(block << detail::class_block_shift) | (cp & mask)]);
}

namespace detail {

inline bool is_letter_or_mark(CharClass c) noexcept {
  return c == CharClass::letter || c == CharClass::mark;
}
inline bool is_punct_or_symbol(CharClass c) noexcept {
  return c == CharClass::punctuation || c == CharClass::symbol;
}
inline bool is_cr_lf(std::uint32_t cp) noexcept { return cp == '\r' || cp == '\n'; }
inline bool is_ascii_letter(std::uint32_t cp) noexcept {
  return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
}
/// The bracket expression of the first alternative: every printable ASCII character that is
/// neither a letter, a digit nor a space.
inline bool is_ascii_punct(std::uint32_t cp) noexcept {
  return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
         (cp >= 0x7B && cp <= 0x7E);
}
/// [一-龥぀-ゟ゠-ヿ]: CJK ideographs U+4E00..U+9FA5, hiragana and katakana U+3040..U+30FF.
inline bool is_cjk_run_char(std::uint32_t cp) noexcept {
  return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF);
}

/// Length of the match of the third regex at `p` in the piece [.., e), 0 if none.
inline std::size_t main_match(const std::uint32_t* cp, const CharClass* cls, std::size_t p,
                              std::size_t e) noexcept {
  const auto run = [&](std::size_t q, auto pred) {
    while (q < e && pred(q)) ++q;
    return q;
  };
  const auto lm = [&](std::size_t q) { return is_letter_or_mark(cls[q]); };
  const auto ps = [&](std::size_t q) { return is_punct_or_symbol(cls[q]); };
  const auto crlf = [&](std::size_t q) { return is_cr_lf(cp[q]); };
  const auto space = [&](std::size_t q) { return cls[q] == CharClass::space; };

  // [!"#...~][A-Za-z]+ : one ASCII punctuation character, then ASCII letters.
  if (is_ascii_punct(cp[p]) && p + 1 < e && is_ascii_letter(cp[p + 1])) {
    return run(p + 1, [&](std::size_t q) { return is_ascii_letter(cp[q]); }) - p;
  }
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : the optional prefix is taken when a letter or mark
  // follows it; otherwise the engine backtracks to an empty prefix.
  if (!is_cr_lf(cp[p]) && cls[p] != CharClass::letter && !is_punct_or_symbol(cls[p]) && p + 1 < e &&
      lm(p + 1)) {
    return run(p + 1, lm) - p;
  }
  if (lm(p)) return run(p, lm) - p;
  // ' '?[\p{P}\p{S}]+[\r\n]*
  if (cp[p] == ' ' && p + 1 < e && ps(p + 1)) return run(run(p + 1, ps), crlf) - p;
  if (ps(p)) return run(run(p, ps), crlf) - p;
  if (!space(p)) return 0;
  const std::size_t q = run(p, space);  // the maximal whitespace run [p, q)
  // \s*[\r\n]+ : \s* gives back characters until [\r\n]+ can match, so the match ends just after
  // the last CR or LF of the run.
  for (std::size_t k = q; k > p; --k) {
    if (is_cr_lf(cp[k - 1])) return k - p;
  }
  // \s+(?!\S) : the whole run at the end of the piece, else the run less its last character
  // (which then starts the next match); \s+ : a single space before a non-space.
  if (q == e || q - p == 1) return q - p;
  return q - p - 1;
}

/// Isolated split: emits the matches of `match` and the gaps between them, in order.
template <class Match, class Emit>
void split_isolated(std::size_t b, std::size_t e, Match&& match, Emit&& emit) {
  std::size_t gap = b;
  for (std::size_t p = b; p < e;) {
    const std::size_t n = match(p, e);
    if (n == 0) {
      ++p;
      continue;
    }
    if (gap < p) emit(gap, p);
    emit(p, p + n);
    p += n;
    gap = p;
  }
  if (gap < e) emit(gap, e);
}

}  // namespace detail

/// Runs the V4 pre-tokenizer over the code points `cp[0..n)` with their classes `cls` and calls
/// `emit(begin, end)` for each piece (code point indices, in order; the pieces tile [0, n)).
template <class Emit>
void pretokenize_v4(const std::uint32_t* cp, const CharClass* cls, std::size_t n, Emit&& emit) {
  using detail::split_isolated;
  const auto main_stage = [&](std::size_t b, std::size_t e) {
    split_isolated(
        b, e, [&](std::size_t p, std::size_t end) { return detail::main_match(cp, cls, p, end); },
        emit);
  };
  const auto cjk_stage = [&](std::size_t b, std::size_t e) {
    split_isolated(
        b, e,
        [&](std::size_t p, std::size_t end) {
          std::size_t q = p;
          while (q < end && detail::is_cjk_run_char(cp[q])) ++q;
          return q - p;
        },
        main_stage);
  };
  split_isolated(
      0, n,
      [&](std::size_t p, std::size_t end) {
        std::size_t q = p;
        while (q < end && q - p < 3 && cls[q] == CharClass::number) ++q;
        return q - p;
      },
      cjk_stage);
}

}  // namespace dsv4::text
