// Fuzzes the tokenizer.json loader (text/tokenizer.hpp): any bytes either load or throw a
// dsv4::Error, and a tokenizer that loads must encode and decode without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <dsv4/core/error.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = dsv4::text::Tokenizer::from_json(json, "fuzz.json");
    static constexpr std::string_view texts[] = {"Hello, world! 123456", "  leading\r\n\ttabs  ",
                                                 "中文テキスト 한국어 😀\u200d👍", "<s>a<t>b"};
    for (const std::string_view text : texts) {
      const auto ids = tok.encode(text);
      (void)tok.decode(ids, /*skip_special_tokens=*/true);
      (void)tok.decode(ids);
    }
    std::vector<dsv4::text::TokenId> all;
    for (dsv4::text::TokenId id = 0; id < tok.vocab_size() && id < 4096; ++id) {
      try {
        (void)tok.id_to_token(id);
        all.push_back(id);
      } catch (const dsv4::InputError&) {
        // a gap in the ids
      }
    }
    (void)tok.decode(all);
  } catch (const dsv4::Error&) {
    // rejected input: what the loader is for
  }
  return 0;
}
