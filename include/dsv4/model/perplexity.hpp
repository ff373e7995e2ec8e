// Perplexity over a token sequence, chunked as llama.cpp's llama-perplexity computes it:
//   * the text is tokenized once (BOS first when the tokenizer adds one);
//   * it is cut into floor(T / n_ctx) chunks of n_ctx tokens (the rest is left out); each chunk
//     is evaluated as a new sequence, its first token replaced by BOS when the tokenizer adds one;
//   * only the second half of each chunk is scored: the logits at positions n_ctx/2 … n_ctx-2
//     predict the tokens at n_ctx/2+1 … n_ctx-1 (n_ctx - n_ctx/2 - 1 tokens per chunk), so every
//     scored token has at least half a context before it;
//   * perplexity = exp(mean negative log-likelihood of the scored tokens), log-softmax in double.
// It needs at least 2·n_ctx tokens, as llama-perplexity does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/model/generate.hpp"

namespace dsv4 {

/// log softmax of one row of logits, in double.
inline std::vector<double> log_softmax(std::span<const float> logits) {
  double mx = -INFINITY;
  for (const float v : logits) mx = std::max(mx, static_cast<double>(v));
  double sum = 0.0;
  for (const float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
  return out;
}

/// One evaluated chunk, handed to PerplexityOptions::on_chunk.
struct PerplexityChunk {
  std::size_t index = 0;                 ///< chunk number
  std::span<const std::int32_t> tokens;  ///< [n_ctx] as evaluated (BOS substituted)
  std::span<const float> logits;         ///< [n_ctx, vocab]
  std::size_t first = 0;                 ///< the first scored logits row (n_ctx / 2)
};

struct PerplexityOptions {
  std::size_t n_ctx = 512;
  std::optional<std::int32_t> bos;  ///< replaces each chunk's first token when set
  std::size_t max_chunks = 0;       ///< 0: every whole chunk
  std::function<void(const PerplexityChunk&)> on_chunk;
};

struct PerplexityResult {
  double perplexity = 0.0;
  double nll = 0.0;                 ///< summed negative log-likelihood
  std::size_t tokens = 0;           ///< scored tokens
  std::size_t chunks = 0;           ///< evaluated chunks
  std::vector<double> running_ppl;  ///< the estimate after each chunk
};

/// Perplexity of `tokens` (the tokenized text) under `model`.
template <GenerativeModel M>
PerplexityResult perplexity(const M& model, std::span<const std::int32_t> tokens,
                            const PerplexityOptions& opt) {
  const std::size_t n_ctx = opt.n_ctx;
  DSV4_CHECK(n_ctx >= 4, InputError, "perplexity: a context of {} tokens is too short (at least 4)",
             n_ctx);
  DSV4_CHECK(static_cast<std::int64_t>(n_ctx) <= model.config().max_seq_len, InputError,
             "perplexity: a context of {} tokens exceeds the model's max_seq_len {}", n_ctx,
             model.config().max_seq_len);
  DSV4_CHECK(tokens.size() >= 2 * n_ctx, InputError,
             "perplexity: {} tokens; at least 2 x {} (two chunks of the context) are needed",
             tokens.size(), n_ctx);
  std::size_t n_chunks = tokens.size() / n_ctx;
  if (opt.max_chunks > 0) n_chunks = std::min(n_chunks, opt.max_chunks);
  const std::size_t vocab = model.vocab_size();
  const std::size_t first = n_ctx / 2;
  PerplexityResult r;
  std::vector<std::int32_t> chunk(n_ctx);
  for (std::size_t c = 0; c < n_chunks; ++c) {
    std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(c * n_ctx), n_ctx, chunk.begin());
    if (opt.bos) chunk[0] = *opt.bos;
    auto st = model.new_state();
    const auto out = model.forward(std::span<const std::int32_t>(chunk), 0, st, true);
    for (std::size_t j = first; j + 1 < n_ctx; ++j) {
      const auto lp = log_softmax(std::span<const float>(out.logits).subspan(j * vocab, vocab));
      r.nll -= lp[static_cast<std::size_t>(chunk[j + 1])];
      ++r.tokens;
    }
    ++r.chunks;
    r.running_ppl.push_back(std::exp(r.nll / static_cast<double>(r.tokens)));
    if (opt.on_chunk) opt.on_chunk({c, chunk, out.logits, first});
  }
  r.perplexity = r.running_ppl.back();
  return r;
}

}  // namespace dsv4
