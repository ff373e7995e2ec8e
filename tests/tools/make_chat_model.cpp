// Writes the test model of the model commands: the tiny random deepseek4 GGUF of the llama.cpp
// golden data (tests/data/llamacpp/models/dsv4-tiny-f32.gguf, 512 ids) with its tokenizer keys
// changed so the DeepSeek-V4 chat format works: its last BPE tokens give way to the chat's
// special tokens (control), the merges that made them are dropped.
// With a third file, the tokenizer keys come from it (for a model converted without a tokenizer,
// such as tests/data/reference/tiny_a, which has an MTP block).
// Usage: dsv4_make_chat_model IN.gguf OUT.gguf [TOKENIZER_FROM.gguf]
#include <fmt/core.h>

#include <cstdio>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/output_file.hpp>
#include <dsv4/text/chat.hpp>
#include <exception>
#include <set>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fmt::print(stderr, "usage: {} IN.gguf OUT.gguf [TOKENIZER_FROM.gguf]\n", argv[0]);
    return 2;
  }
  try {
    namespace io = dsv4::io;
    namespace chat = dsv4::text::chat;
    const io::GgufFile in(argv[1]);
    const io::GgufFile tok_file(argc == 4 ? argv[3] : argv[1]);
    auto tok = io::gguf_tokenizer_of(tok_file.metadata(), tok_file.label()).value();
    const std::vector<std::string> specials = {
        std::string(chat::user_token), std::string(chat::assistant_token),
        std::string(chat::think_start_token), std::string(chat::think_end_token),
        std::string(chat::latest_reminder_token)};
    std::set<std::string> replaced;
    for (std::size_t k = 0; k < specials.size(); ++k) {
      const std::size_t id = tok.tokens.size() - specials.size() + k;
      replaced.insert(tok.tokens[id]);
      tok.tokens[id] = specials[k];
      tok.token_types[id] = io::kTokenControl;
    }
    std::vector<std::string> merges;
    for (const std::string& m : tok.merges) {
      const auto sp = m.find(' ');
      const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
      if (replaced.count(a) || replaced.count(b) || replaced.count(a + b)) continue;
      merges.push_back(m);
    }
    tok.merges = merges;

    io::GgufMetadata meta;
    for (const auto& [k, v] : in.metadata()) {
      if (k.rfind("tokenizer.ggml.", 0) != 0) meta.add(k, v);
    }
    meta.set("general.name", io::GgufValue("DeepSeek-V4 random tiny, chat tokens"));
    for (const auto& [k, v] : tok_file.metadata()) {
      if (k == "tokenizer.ggml.tokens") {
        meta.add(k, io::GgufValue::array(tok.tokens));
      } else if (k == "tokenizer.ggml.token_type") {
        meta.add(k, io::GgufValue::array(tok.token_types));
      } else if (k == "tokenizer.ggml.merges") {
        meta.add(k, io::GgufValue::array(tok.merges));
      } else if (k.rfind("tokenizer.ggml.", 0) == 0) {
        meta.add(k, v);
      }
    }
    io::AtomicOutputFile out(argv[2]);
    io::GgufWriter w(meta, in.tensors(), [&](std::span<const std::byte> s) { out.write(s); });
    for (const auto& t : in.tensors()) w.write_tensor(t.name, in.tensor_data(t));
    w.finish();
    out.commit();
    fmt::print("{}: {} tensors, {} tokens, {} merges\n", argv[2], in.tensors().size(),
               tok.tokens.size(), tok.merges.size());
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
