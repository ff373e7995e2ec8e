// Text generation over a model: a prefill of the prompt, then one token per step, chosen greedily
// or by seeded temperature/top-p sampling, until a stop token, the token budget or the end of the
// context; optionally with speculative decoding, the MTP block drafting one token ahead.
// Spec: spec/architecture.md §11.1-11.2 (loop, sampling), §8.3 (speculative protocol).
//
// Speculative step at position t (x_t sampled, not yet fed to the trunk; draft d for t+1 from
// the drafter):
//   1. the trunk runs [x_t, d] at positions t, t+1 in one call (logits rows ℓ_t, ℓ_t+1);
//   2. the token for t+1 is verified: greedy accepts d iff argmax ℓ_t = d; sampling accepts d with
//      probability min(1, p(d)/q(d)) and otherwise draws from the normalised max(0, p − q), so
//      the token is distributed exactly as the trunk's p (standard speculative sampling);
//   3. accepted: d is emitted, then a token for t+2 from ℓ_t+1 (two tokens for one trunk call);
//      rejected: the trunk forgets position t+1 (Model::rewind) and the verified token is emitted;
//   4. the drafter continues with the trunk's hidden states of the accepted positions and the
//      tokens that follow them, so its cache only ever holds accepted tokens.
// A two-token call computes each row as a one-token decode does, so greedy speculative decoding
// emits exactly the tokens of plain greedy decoding.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/model/sampling.hpp"

namespace dsv4 {

/// Why generation ended.
enum class StopReason : std::uint8_t {
  max_new_tokens,  ///< the token budget is spent
  stop_token,      ///< a stop token was produced (it is not part of the output)
  context_full,    ///< prompt + output fill max_seq_len
};

inline const char* stop_reason_name(StopReason r) noexcept {
  switch (r) {
    case StopReason::max_new_tokens:
      return "max_new_tokens";
    case StopReason::stop_token:
      return "stop_token";
    case StopReason::context_full:
      return "context_full";
  }
  return "?";
}

/// What to generate.
struct GenerateOptions {
  std::size_t max_new_tokens = 300;
  std::vector<std::int32_t> stop_tokens;       ///< e.g. {1}, the V4 end-of-sentence token
  SamplingParams sampling;                     ///< temperature 0 (the default) is greedy
  bool speculative = false;                    ///< draft one token ahead (MTP block 0 by default)
  std::function<void(std::int32_t)> on_token;  ///< called for every emitted token, in order
  /// Prefill in chunks of this many tokens (0: one call), calling on_prefill(done, total) after
  /// each; chunks compute what one call does (the model continues a sequence chunk by chunk).
  std::size_t prefill_chunk = 0;
  std::function<void(std::size_t, std::size_t)> on_prefill;
};

/// What generate() produced.
struct GenerateResult {
  std::vector<std::int32_t> tokens;  ///< the new tokens (without the prompt and the stop token)
  StopReason stop = StopReason::max_new_tokens;
  std::int32_t stop_token = -1;   ///< the stop token produced, when stop == stop_token
  std::size_t trunk_calls = 0;    ///< forward calls of the trunk, the prefill included
  std::size_t drafted = 0;        ///< draft tokens the trunk verified
  std::size_t accepted = 0;       ///< of which it accepted
  std::size_t prompt_tokens = 0;  ///< tokens prefilled
  /// The stop token was read by the trunk (a verified draft): the state holds it, so a resumed
  /// sequence starts after it.
  bool stop_token_fed = false;
  double prefill_seconds = 0.0;  ///< wall time of the prefill (and the first token's choice)
  double decode_seconds = 0.0;   ///< wall time after it

  /// Prefill and generation speeds (0 when nothing was timed).
  double prompt_tps() const noexcept {
    return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
  }
  double gen_tps() const noexcept {
    // The first token comes with the prefill; the others with the decode steps.
    return decode_seconds > 0 && tokens.size() > 1
               ? static_cast<double>(tokens.size() - 1) / decode_seconds
               : 0.0;
  }

  /// accepted / drafted (0 without drafts).
  double acceptance_rate() const noexcept {
    return drafted == 0 ? 0.0 : static_cast<double>(accepted) / static_cast<double>(drafted);
  }
};

/// What generate() needs of a model (dsv4::Model provides it).
template <class M>
concept GenerativeModel = requires(const M& m, typename M::State& st,
                                   std::span<const std::int32_t> tok, std::span<const float> h) {
  { m.new_state() } -> std::same_as<typename M::State>;
  { m.forward(tok, std::int64_t{0}, st, true).logits } -> std::convertible_to<std::vector<float>>;
  { m.forward(tok, std::int64_t{0}, st, true).hidden } -> std::convertible_to<std::vector<float>>;
  m.rewind(st, std::int64_t{0});
  { m.config() } -> std::convertible_to<const ModelConfig&>;
  { m.vocab_size() } -> std::convertible_to<std::size_t>;
  { m.dim() } -> std::convertible_to<std::size_t>;
  { M::streams } -> std::convertible_to<std::size_t>;
};

/// A drafter proposes the token after next. `draft(model, state, hidden, tokens, pos)`: hidden
/// [n, streams, dim] are the trunk's outputs at positions pos … pos+n-1, tokens [n] the accepted
/// tokens at positions pos+1 … pos+n; it returns the logits [vocab] of the token at pos+n+1.
/// Calls continue one another (pos 0 starts a sequence, later calls start where the last ended).
template <class D, class M>
concept Drafter = GenerativeModel<M> &&
    requires(D& d, const M& m, typename M::State& st, std::span<const float> h,
             std::span<const std::int32_t> tok, std::int64_t pos) {
  { d.draft(m, st, h, tok, pos) } -> std::convertible_to<std::vector<float>>;
};

/// What lets a drafter continue a sequence across calls of generate(): the trunk's output at the
/// last position the previous call fed it, which the drafter pairs with the first token of the
/// next call's prompt. A drafter with a `carry` member gets it kept by generate(); a resumed
/// sequence drafts when the carry is at the position before the prompt, and decodes without
/// drafting otherwise.
struct DraftCarry {
  std::vector<float> hidden;  ///< [streams, dim]
  std::int64_t pos = -1;      ///< its position; -1: nothing to continue from
};

/// The model's MTP block `block` as drafter (spec §8.2: the hidden state at i paired with token
/// i+1 predicts token i+2); its cache lives in the model's State. Keep one MtpDrafter per
/// sequence (and reset it with the state) to draft in every turn of a conversation.
struct MtpDrafter {
  std::size_t block = 0;
  DraftCarry carry;

  template <GenerativeModel M>
  std::vector<float> draft(const M& m, typename M::State& st, std::span<const float> hidden,
                           std::span<const std::int32_t> tokens, std::int64_t pos) const {
    return m.mtp_forward(hidden, tokens, pos, st, block, /*all_logits=*/false).logits;
  }
};

/// The outcome of verifying one draft token.
struct DraftVerdict {
  std::int64_t token = 0;  ///< the token for the drafted position
  bool accepted = false;   ///< token == the draft
};

/// Speculative sampling of one position: p is the target distribution, q the draft's and `draft`
/// a token drawn from q. Accepts the draft with probability min(1, p[draft] / q[draft]) (one
/// number of s's stream); otherwise returns a token drawn from the normalised max(0, p − q). The
/// returned token is distributed as p whatever q is.
inline DraftVerdict verify_draft(std::span<const double> p, std::span<const double> q,
                                 std::int64_t draft, Sampler& s) {
  DSV4_CHECK(p.size() == q.size() && draft >= 0 && static_cast<std::size_t>(draft) < p.size(),
             ShapeError, "verify_draft: distributions of {} and {} tokens, draft {}", p.size(),
             q.size(), draft);
  const auto d = static_cast<std::size_t>(draft);
  if (s.uniform() * q[d] < p[d]) return {draft, true};
  std::vector<double> residual(p.size());
  double total = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    residual[i] = std::max(0.0, p[i] - q[i]);
    total += residual[i];
  }
  // total is 0 only when p == q, where the draft is always accepted; guard rounding anyway.
  const std::int64_t token = total > 0.0 ? s.draw(residual) : s.draw(p);
  return {token, token == draft};
}

namespace generate_detail {

/// Rows first … first+n-1 of a [rows, width] buffer.
inline std::span<const float> rows(const std::vector<float>& v, std::size_t first, std::size_t n,
                                   std::size_t width) {
  return std::span<const float>(v).subspan(first * width, n * width);
}

/// Row r of [rows, vocab] logits.
inline std::span<const float> logit_row(const std::vector<float>& v, std::size_t r,
                                        std::size_t vocab) {
  return std::span<const float>(v).subspan(r * vocab, vocab);
}

}  // namespace generate_detail

/// Generates up to opt.max_new_tokens tokens after `prompt`, continuing the sequence of `st`: the
/// prompt is fed at st.next_pos (0: a new sequence; otherwise a conversation resumes where it
/// stopped, its cache reused). On return st holds every position fed to the trunk: the prompt
/// and the emitted tokens except those at the end that were sampled but not fed (st.next_pos
/// says how many were). With opt.speculative `drafter` proposes one token per trunk call
/// (MtpDrafter needs a model with an MTP block: ConfigError otherwise); it is used in place, so a
/// caller's drafter keeps what it recorded. A resumed sequence (st.next_pos > 0) drafts when the
/// drafter carries on from the previous call (DraftCarry: the same MtpDrafter passed again), and
/// decodes without drafting otherwise. Throws InputError on a bad prompt.
template <GenerativeModel M, class D>
requires Drafter<std::remove_cvref_t<D>, M> GenerateResult
generate(const M& model, typename M::State& st, std::span<const std::int32_t> prompt,
         const GenerateOptions& opt, D&& drafter) {
  using generate_detail::logit_row;
  using generate_detail::rows;
  const std::int64_t max_len = model.config().max_seq_len;
  const std::int64_t start = st.next_pos;
  const auto t_prompt = static_cast<std::int64_t>(prompt.size());
  DSV4_CHECK(!prompt.empty(), InputError, "generate: the prompt is empty");
  DSV4_CHECK(start + t_prompt < max_len, InputError,
             "generate: a prompt of {} tokens after {} leaves no room in max_seq_len = {}",
             t_prompt, start, max_len);
  DraftCarry* carry = nullptr;
  if constexpr (requires { drafter.carry.pos = 0; }) carry = &drafter.carry;
  const bool resumes = carry != nullptr && start > 0 && carry->pos == start - 1;
  const bool speculative = opt.speculative && (start == 0 || resumes);
  if (carry != nullptr && !speculative) carry->pos = -1;  // the drafter falls behind the trunk
  if constexpr (std::same_as<std::remove_cvref_t<D>, MtpDrafter>) {
    DSV4_CHECK(!speculative || model.config().n_mtp_layers > 0, ConfigError,
               "generate: speculative decoding drafts with the MTP block, and this model has "
               "n_mtp_layers = 0");
  }
  const std::size_t vocab = model.vocab_size();
  const std::size_t width = M::streams * model.dim();
  const bool greedy = opt.sampling.temperature == 0.0f;
  Sampler sampler(opt.sampling);
  GenerateResult res;
  if (opt.max_new_tokens == 0) return res;

  // Emits one token; false when generation ends with it. pos: the token's position.
  using clock = std::chrono::steady_clock;
  clock::time_point decode_from{};
  bool done = false;
  const auto emit = [&](std::int64_t token, std::int64_t pos) {
    res.decode_seconds = std::chrono::duration<double>(clock::now() - decode_from).count();
    const auto tok = static_cast<std::int32_t>(token);
    if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), tok) != opt.stop_tokens.end()) {
      res.stop = StopReason::stop_token;
      res.stop_token = tok;
      done = true;
      return false;
    }
    res.tokens.push_back(tok);
    if (opt.on_token) opt.on_token(tok);
    if (res.tokens.size() >= opt.max_new_tokens) {
      res.stop = StopReason::max_new_tokens;
      done = true;
    } else if (pos + 1 >= max_len) {
      res.stop = StopReason::context_full;
      done = true;
    }
    return !done;
  };

  const auto t0 = clock::now();
  res.prompt_tokens = prompt.size();
  // The prefill, in chunks when asked (the drafter needs every position's hidden state).
  const std::size_t chunk = opt.prefill_chunk == 0 ? prompt.size() : opt.prefill_chunk;
  decltype(model.forward(prompt, 0, st, false)) out;
  std::vector<float> prompt_hidden;
  for (std::size_t fed = 0; fed < prompt.size();) {
    const std::size_t n = std::min(chunk, prompt.size() - fed);
    out = model.forward(prompt.subspan(fed, n), start + static_cast<std::int64_t>(fed), st,
                        /*all_logits=*/false);
    ++res.trunk_calls;
    fed += n;
    if (speculative && n < prompt.size()) {
      prompt_hidden.insert(prompt_hidden.end(), out.hidden.begin(), out.hidden.end());
    }
    if (opt.on_prefill) opt.on_prefill(fed, prompt.size());
  }
  if (speculative && !prompt_hidden.empty()) out.hidden = std::move(prompt_hidden);
  auto x = static_cast<std::int32_t>(sampler.sample(logit_row(out.logits, 0, vocab)));
  std::int64_t pos = start + t_prompt;  // x's position
  const auto t1 = clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  decode_from = t1;

  // The drafter's first pairs: (hidden_i, token_i+1) over the prompt, the last with x, led by the
  // carried hidden state paired with the prompt's first token when the sequence resumes. `upto`
  // pairs are drafted (the last prompt position's pair waits when x ends generation). At every
  // exit a drafter that carries on has read every position the trunk has but the last, which
  // it keeps.
  const auto first_draft = [&](std::size_t upto) {
    std::vector<float> h;
    std::vector<std::int32_t> next;
    std::int64_t from = 0;
    if (resumes) {
      h = carry->hidden;
      next.push_back(prompt[0]);
      from = start - 1;
    }
    h.insert(h.end(), out.hidden.begin(), out.hidden.end());
    next.insert(next.end(), prompt.begin() + 1, prompt.end());
    next.push_back(x);
    h.resize(upto * width);
    next.resize(upto);
    return drafter.draft(model, st, h, next, from);
  };
  // Keeps the trunk's output at its last fed position for the next call.
  const auto keep_carry = [&](std::span<const float> hidden_row, std::int64_t at) {
    if (carry == nullptr) return;
    carry->hidden.assign(hidden_row.begin(), hidden_row.end());
    carry->pos = at;
  };
  if (!emit(x, pos)) {
    if (speculative && carry != nullptr) {
      // Pairs up to the one before the last prompt position; that position is carried.
      const std::size_t pairs = static_cast<std::size_t>(t_prompt) - 1 + (resumes ? 1 : 0);
      if (pairs > 0) (void)first_draft(pairs);
      keep_carry(rows(out.hidden, static_cast<std::size_t>(t_prompt) - 1, 1, width), pos - 1);
    }
    return res;
  }

  if (!speculative) {
    while (true) {
      const std::span<const std::int32_t> one(&x, 1);
      if constexpr (requires { model.forward_into(one, pos, st, out, true); }) {
        model.forward_into(one, pos, st, out, true);  // the output's vectors reused
      } else {
        out = model.forward(one, pos, st, true);
      }
      ++res.trunk_calls;
      x = static_cast<std::int32_t>(sampler.sample(logit_row(out.logits, 0, vocab)));
      if (!emit(x, ++pos)) return res;
    }
  }

  // The drafter starts on the whole prompt: pairs (hidden_i, token_i+1), the last with x.
  std::vector<float> q_logits = first_draft(static_cast<std::size_t>(t_prompt) + (resumes ? 1 : 0));
  while (true) {
    // Draft for pos+1, then verify it with [x, d] at pos, pos+1.
    std::int32_t d = 0;
    std::vector<double> q;
    if (greedy) {
      d = static_cast<std::int32_t>(Sampler::argmax(q_logits));
    } else {
      q = sampler.distribution(q_logits);
      d = static_cast<std::int32_t>(sampler.draw(q));
    }
    const std::int32_t pair[2] = {x, d};
    out = model.forward(pair, pos, st, /*all_logits=*/true);
    ++res.trunk_calls;
    ++res.drafted;
    DraftVerdict v;
    if (greedy) {
      v.token = Sampler::argmax(logit_row(out.logits, 0, vocab));
      v.accepted = v.token == d;
    } else {
      v = verify_draft(sampler.distribution(logit_row(out.logits, 0, vocab)), q, d, sampler);
    }
    if (v.accepted) {
      ++res.accepted;
      // Generation ending here leaves [x, d] fed: for a drafter that carries on, the pair
      // (hidden_pos, d) is drafted and position pos+1 carried.
      const auto stop_after_d = [&] {
        if (carry != nullptr) {
          (void)drafter.draft(model, st, rows(out.hidden, 0, 1, width),
                              std::span<const std::int32_t>(&d, 1), pos);
          keep_carry(rows(out.hidden, 1, 1, width), pos + 1);
        }
        return res;
      };
      if (!emit(d, pos + 1)) {
        res.stop_token_fed = res.stop == StopReason::stop_token;
        return stop_after_d();
      }
      const auto z = static_cast<std::int32_t>(sampler.sample(logit_row(out.logits, 1, vocab)));
      if (!emit(z, pos + 2)) return stop_after_d();
      const std::int32_t accepted_next[2] = {d, z};
      q_logits = drafter.draft(model, st, rows(out.hidden, 0, 2, width), accepted_next, pos);
      x = z;
      pos += 2;
    } else {
      model.rewind(st, pos + 1);
      const auto y = static_cast<std::int32_t>(v.token);
      if (!emit(y, pos + 1)) {
        keep_carry(rows(out.hidden, 0, 1, width), pos);  // x fed at pos, its pair waits for y
        return res;
      }
      q_logits = drafter.draft(model, st, rows(out.hidden, 0, 1, width),
                               std::span<const std::int32_t>(&y, 1), pos);
      x = y;
      pos += 1;
    }
  }
}

/// As above on a new sequence (a fresh state).
template <GenerativeModel M, class D>
requires Drafter<std::remove_cvref_t<D>, M> GenerateResult generate(
    const M& model, std::span<const std::int32_t> prompt, const GenerateOptions& opt, D&& drafter) {
  typename M::State st = model.new_state();
  return generate(model, st, prompt, opt, std::forward<D>(drafter));
}

/// As above with the model's MTP block 0 as drafter.
template <GenerativeModel M>
GenerateResult generate(const M& model, std::span<const std::int32_t> prompt,
                        const GenerateOptions& opt) {
  return generate(model, prompt, opt, MtpDrafter{});
}

/// A continued sequence with the model's MTP block 0 as drafter.
template <GenerativeModel M>
GenerateResult generate(const M& model, typename M::State& st, std::span<const std::int32_t> prompt,
                        const GenerateOptions& opt) {
  return generate(model, st, prompt, opt, MtpDrafter{});
}

}  // namespace dsv4
