// Fuzzes encode and decode with the DeepSeek-V4 tokenizer (text/tokenizer.hpp): valid UTF-8 must
// encode and decode back to itself, invalid UTF-8 must be an InputError, and the same bytes read
// as token ids must decode or be rejected as unknown ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dsv4/core/error.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <string_view>
#include <vector>

namespace {

const dsv4::text::Tokenizer& v4() {
  static const auto tok =
      dsv4::text::Tokenizer::load(DSV4_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json");
  return tok;
}

}  // namespace

// Loads the tokenizer before the first input, whose run would otherwise count the load (several
// seconds under ASan) against the per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)v4();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& tok = v4();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (dsv4::text::is_valid_utf8(text)) {
    const auto ids = tok.encode(text);
    if (tok.decode(ids) != text) std::abort();  // the round trip is exact for valid UTF-8
  } else {
    try {
      (void)tok.encode(text);
      std::abort();  // invalid UTF-8 must be rejected
    } catch (const dsv4::InputError&) {
    }
  }
  std::vector<dsv4::text::TokenId> ids(size / 4);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::uint32_t v = 0;
    std::memcpy(&v, data + 4 * i, 4);
    ids[i] = static_cast<dsv4::text::TokenId>(v % 131072u);  // mostly valid ids, some unknown
  }
  try {
    const auto out = tok.decode(ids, (size & 1) != 0);
    if (!dsv4::text::is_valid_utf8(out)) std::abort();
  } catch (const dsv4::InputError&) {
  }
  return 0;
}
