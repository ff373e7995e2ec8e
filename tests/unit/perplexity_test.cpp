// Perplexity (include/dsv4/model/perplexity.hpp) on the tiny reference checkpoint tiny_a: the
// value equals one computed independently from the model's logits (llama-perplexity's chunking:
// whole chunks of n_ctx tokens, the first one replaced by BOS, the second half scored), and short
// input is an error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/model.hpp>
#include <dsv4/model/perplexity.hpp>
#include <vector>

#include "test_data.hpp"

namespace {

using M = dsv4::ReferenceModel<dsv4::WithNumerics<dsv4::ReferenceFp32Numerics>>;

const M& tiny() {
  static const M m = [] {
    const auto dir = dsv4::test::data_path("reference/tiny_a");
    const dsv4::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
    return M::load(ckpt);
  }();
  return m;
}

}  // namespace

TEST_CASE("perplexity equals the mean NLL of the second half of each chunk, from the logits") {
  const M& m = tiny();
  std::vector<std::int32_t> tokens;
  for (std::int32_t i = 0; i < 53; ++i) tokens.push_back((i * 37 + 11) % 500);
  const std::size_t n_ctx = 16;
  dsv4::PerplexityOptions opt;
  opt.n_ctx = n_ctx;
  opt.bos = 0;
  std::size_t seen = 0;
  opt.on_chunk = [&](const dsv4::PerplexityChunk& c) {
    CHECK(c.index == seen++);
    CHECK(c.tokens[0] == 0);
    CHECK(c.first == 8);
  };
  const auto r = dsv4::perplexity(m, tokens, opt);
  CHECK(seen == 3);  // 53 tokens: three whole chunks of 16, the last 5 left out
  CHECK(r.chunks == 3);
  CHECK(r.tokens == 3 * 7);

  // Independently: each chunk as its own prefill, probabilities by a float softmax.
  const std::size_t vocab = m.vocab_size();
  double nll = 0.0;
  for (std::size_t c = 0; c < 3; ++c) {
    std::vector<std::int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(c * n_ctx),
                                    tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * n_ctx));
    chunk[0] = 0;
    auto st = m.new_state();
    const auto logits = m.prefill(chunk, st).logits;
    for (std::size_t j = n_ctx / 2; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + j * vocab;
      float mx = row[0];
      for (std::size_t i = 1; i < vocab; ++i) mx = std::max(mx, row[i]);
      float sum = 0.0f;
      for (std::size_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
      const float p = std::exp(row[chunk[j + 1]] - mx) / sum;
      nll -= std::log(static_cast<double>(p));
    }
  }
  const double want = std::exp(nll / 21.0);
  MESSAGE("tiny_a perplexity over 21 tokens: ", r.perplexity, " (independent: ", want, ")");
  // A float softmax against the double log-softmax: measured relative difference ~1e-7.
  CHECK(std::abs(r.perplexity - want) <= 1e-5 * want);
  CHECK(r.running_ppl.size() == 3);
  CHECK(r.running_ppl.back() == r.perplexity);

  // Without BOS the chunks keep their first token, and the figure changes.
  opt.bos.reset();
  opt.on_chunk = nullptr;
  CHECK(dsv4::perplexity(m, tokens, opt).perplexity != r.perplexity);
  opt.max_chunks = 2;
  CHECK(dsv4::perplexity(m, tokens, opt).chunks == 2);

  // Fewer than two chunks' worth of tokens, a context beyond max_seq_len: errors.
  opt.n_ctx = 32;
  CHECK_THROWS_AS((void)dsv4::perplexity(m, tokens, opt), dsv4::InputError);
  opt.n_ctx = 4096;
  CHECK_THROWS_AS((void)dsv4::perplexity(m, tokens, opt), dsv4::InputError);
}
