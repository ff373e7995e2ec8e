// The smallest program that turns a text prompt into text: load a GGUF model with its tokenizer,
// encode the prompt, generate, decode.
//
//   example_generate MODEL.gguf "Once upon a time"
#include <fmt/core.h>

#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_tokenizer.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/model/model.hpp>
#include <exception>
#include <vector>

int main(int argc, char** argv) try {
  if (argc != 3) {
    fmt::print(stderr, "usage: {} MODEL.gguf PROMPT\n", argv[0]);
    return 2;
  }
  using Model =
      dsv4::Model<dsv4::ReferenceBackend,
                  dsv4::WithLinear<dsv4::AnyLinear, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;
  const dsv4::io::GgufModel file(argv[1]);                           // weights, mapped
  const auto tok = dsv4::io::text_tokenizer_from_gguf(file.file());  // tokenizer.ggml.*
  const Model model = Model::load(file, file.config());

  std::vector<std::int32_t> prompt;
  if (tok.add_bos && tok.bos) prompt.push_back(*tok.bos);
  tok.tokenizer.encode(argv[2], prompt);
  dsv4::GenerateOptions opt;
  opt.max_new_tokens = 24;  // greedy (temperature 0) by default
  if (tok.eos) opt.stop_tokens = {*tok.eos};
  const dsv4::GenerateResult out = dsv4::generate(model, prompt, opt);
  fmt::print("{}{}\n", argv[2], tok.tokenizer.decode(out.tokens));
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
