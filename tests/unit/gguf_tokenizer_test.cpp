// The tokenizer inside a GGUF file (tokenizer.ggml.* keys): a GGUF written from the V4
// tokenizer.json with dsv4's writer gives the ids of tokenizer.json (and of Hugging Face
// `tokenizers`) on the whole golden corpus, and bad keys are errors naming the key.
#include <doctest/doctest.h>

#include <cstdint>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_tokenizer.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using dsv4::FormatError;
using dsv4::io::GgufFile;
using dsv4::io::GgufMetadata;
using dsv4::io::GgufTokenizer;
using dsv4::io::GgufValue;
using dsv4::text::TokenId;

const GgufTokenizer& v4_keys() {
  static const GgufTokenizer t =
      dsv4::io::gguf_tokenizer_from_json(dsv4::test::data_path("tokenizer/tokenizer.json"), 129280);
  return t;
}

/// The bytes of a GGUF file with only the tokenizer keys of `t`, read back.
GgufFile gguf_with(const GgufTokenizer& t) {
  GgufMetadata m;
  m.add("general.architecture", GgufValue("deepseek4"));
  m.add("tokenizer.ggml.model", GgufValue(t.model));
  m.add("tokenizer.ggml.pre", GgufValue(t.pre));
  m.add("tokenizer.ggml.tokens", GgufValue::array(t.tokens));
  m.add("tokenizer.ggml.token_type", GgufValue::array(t.token_types));
  m.add("tokenizer.ggml.merges", GgufValue::array(t.merges));
  if (t.bos) m.add("tokenizer.ggml.bos_token_id", GgufValue(*t.bos));
  if (t.eos) m.add("tokenizer.ggml.eos_token_id", GgufValue(*t.eos));
  if (t.add_bos) m.add("tokenizer.ggml.add_bos_token", GgufValue(*t.add_bos));
  return GgufFile(dsv4::io::encode_gguf_header(m, {}), "tokenizer-only.gguf");
}

std::string error_of(const GgufTokenizer& t) {
  try {
    (void)dsv4::io::text_tokenizer_from_gguf(gguf_with(t));
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a GGUF with the V4 tokenizer's keys encodes the golden corpus as tokenizer.json does") {
  const GgufFile f = gguf_with(v4_keys());
  const auto t = dsv4::io::text_tokenizer_from_gguf(f);
  const auto json_tok =
      dsv4::text::Tokenizer::load(dsv4::test::data_path("tokenizer/tokenizer.json"));
  CHECK(t.tokenizer.vocab_size() == json_tok.vocab_size());
  CHECK(t.tokenizer.merge_count() == json_tok.merge_count());
  CHECK(t.bos == 0);
  CHECK(t.eos == 1);
  CHECK(t.add_bos);
  CHECK(t.tokenizer.special_id("<｜User｜>") == 128803);
  CHECK(t.tokenizer.is_special(0));

  std::ifstream in(dsv4::test::data_path("tokenizer/encode.jsonl"));
  REQUIRE(in.good());
  std::size_t rows = 0, matched = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    const auto text = row["text"].get<std::string>();
    const auto want = row["ids"].get<std::vector<TokenId>>();
    const auto got = t.tokenizer.encode(text);
    ++rows;
    if (got == want && got == json_tok.encode(text)) {
      ++matched;
    } else {
      INFO("text: ", nlohmann::json(text).dump());
      CHECK(nlohmann::json(got).dump() == nlohmann::json(want).dump());
    }
    if (got == want) CHECK(t.tokenizer.decode(got) == json_tok.decode(want));
  }
  REQUIRE(rows >= 3000);
  CHECK(matched == rows);
}

TEST_CASE("bad tokenizer keys are FormatErrors naming the key") {
  GgufTokenizer t;
  t.tokens = {"a", "b", "ab", "<s>", "[PAD4]"};
  t.token_types = {1, 1, 1, 3, 5};
  t.merges = {"a b"};
  t.bos = 3;
  t.add_bos = true;
  const auto ok = dsv4::io::text_tokenizer_from_gguf(gguf_with(t));
  CHECK(ok.tokenizer.encode("ab<s>ba") == std::vector<TokenId>{2, 3, 1, 0});
  CHECK(ok.tokenizer.decode(std::vector<TokenId>{3, 2}) == "<s>ab");
  CHECK_THROWS_AS((void)ok.tokenizer.decode(std::vector<TokenId>{4}), dsv4::InputError);

  auto bad = t;
  bad.model = "llama";
  CHECK(error_of(bad).find("'tokenizer.ggml.model'") != std::string::npos);
  bad = t;
  bad.pre = "qwen2";
  CHECK(error_of(bad).find("'tokenizer.ggml.pre'") != std::string::npos);
  bad = t;
  bad.token_types.pop_back();
  CHECK(error_of(bad).find("'tokenizer.ggml.token_type'") != std::string::npos);
  bad = t;
  bad.token_types[1] = 9;
  CHECK(error_of(bad).find("token 1 has type 9") != std::string::npos);
  bad = t;
  bad.merges = {"a c"};
  CHECK(error_of(bad).find("merge 0") != std::string::npos);
  bad = t;
  bad.merges.clear();
  CHECK(error_of(bad).find("'tokenizer.ggml.merges'") != std::string::npos);
  bad = t;
  bad.bos = 7;
  CHECK(error_of(bad).find("'tokenizer.ggml.bos_token_id'") != std::string::npos);
  bad = t;
  bad.tokens[1] = "a";
  CHECK(error_of(bad).find("both 'a'") != std::string::npos);

  GgufMetadata none;
  none.add("general.architecture", GgufValue("deepseek4"));
  CHECK_THROWS_WITH_AS((void)dsv4::io::text_tokenizer_from_gguf(none, "x.gguf"),
                       doctest::Contains("'tokenizer.ggml.tokens'"), FormatError);
}
