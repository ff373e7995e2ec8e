// Generation (include/dsv4/model/generate.hpp) on the tiny reference checkpoints:
//  * the property speculative decoding rests on: a two-token trunk call computes each row exactly
//    as one-token decode steps do, and a rejected position is forgotten by Model::rewind;
//  * greedy speculative output equals greedy output token for token (tiny_a, tiny_b; bf16 and
//    fp32), with the MTP block as drafter and with drafts constructed to be always right or always
//    wrong; the MTP cache stays what a fresh MTP prefill of the accepted sequence gives;
//  * seeded sampling, stop tokens, the token budget, the end of the context, bad input;
//  * the speculative sampling rule returns tokens distributed as the target distribution.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/any_model.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/model/model.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace d = dsv4;
using Bf16 = d::ReferenceNumerics;
using Fp32 = d::ReferenceFp32Numerics;

template <class N>
using TinyModel = d::ReferenceModel<d::WithNumerics<N>>;

template <class N>
const TinyModel<N>& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<TinyModel<N>>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const auto dir = d::test::data_path("reference/" + name);
    const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
    it = cache.emplace(name, std::make_unique<TinyModel<N>>(TinyModel<N>::load(ckpt))).first;
  }
  return *it->second;
}

/// The golden data's token sequence of a tiny configuration.
std::vector<std::int32_t> golden_tokens(const std::string& name) {
  return d::test::read_i32(*d::test::reference_case(name).file("golden_fp32"), "tokens");
}

std::vector<std::int32_t> prompt_of(const std::string& name, std::size_t n) {
  const auto t = golden_tokens(name);
  return {t.begin(), t.begin() + static_cast<std::ptrdiff_t>(n)};
}

std::vector<float> row(const std::vector<float>& v, std::size_t r, std::size_t w) {
  return {v.begin() + static_cast<std::ptrdiff_t>(r * w),
          v.begin() + static_cast<std::ptrdiff_t>((r + 1) * w)};
}

/// Runs the MTP drafter (so the MTP cache evolves as in a real run) and replaces its proposal by
/// `pick(position of the drafted token)`; remembers the MTP's own last logits.
template <class Pick>
struct ScriptedDrafter {
  Pick pick;
  std::size_t vocab = 0;
  std::vector<float> last_mtp_logits;
  std::int64_t last_target = -1;

  template <class M>
  std::vector<float> draft(const M& m, typename M::State& st, std::span<const float> hidden,
                           std::span<const std::int32_t> tokens, std::int64_t pos) {
    last_mtp_logits = d::MtpDrafter{}.draft(m, st, hidden, tokens, pos);
    last_target = pos + static_cast<std::int64_t>(tokens.size()) + 1;
    std::vector<float> out(vocab, 0.0f);
    out[static_cast<std::size_t>(pick(last_target))] = 1.0f;
    return out;
  }
};

template <class Pick>
ScriptedDrafter<Pick> scripted(Pick pick, std::size_t vocab) {
  return {std::move(pick), vocab, {}, -1};
}

}  // namespace

TEST_CASE_TEMPLATE("two-token calls and rewinds reproduce one-token decoding bit for bit", N, Bf16,
                   Fp32) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    const auto& m = model<N>(name);
    const std::size_t v = m.vocab_size();
    const auto tokens = golden_tokens(name);  // 96+ tokens; windows of 8, ratios 4 to 32
    const std::size_t prompt = 5;
    const std::size_t end = std::min<std::size_t>(tokens.size(), 100);
    const std::span<const std::int32_t> all(tokens.data(), end);

    auto ref = m.new_state();  // prefill, then one token per call
    m.prefill(all.first(prompt), ref);
    std::vector<std::vector<float>> want(end);
    std::vector<std::vector<float>> want_hidden(end);
    for (std::size_t p = prompt; p < end; ++p) {
      const auto o = m.decode(all[p], ref);
      want[p] = o.logits;
      want_hidden[p] = o.hidden;
    }

    // Alternate accepted pairs and rejected drafts (a wrong second token, then rewind).
    auto st = m.new_state();
    m.prefill(all.first(prompt), st);
    std::size_t p = prompt;
    std::size_t step = 0;
    std::size_t bad = 0;
    while (p + 1 < end) {
      const bool accept = step++ % 3 == 1;
      const std::int32_t second = accept ? all[p + 1] : (all[p + 1] + 7) % static_cast<int>(v);
      const std::int32_t pair[2] = {all[p], second};
      const auto o = m.forward(pair, static_cast<std::int64_t>(p), st);
      bad += row(o.logits, 0, v) == want[p] ? 0 : 1;
      bad += row(o.hidden, 0, o.hidden.size() / 2) == want_hidden[p] ? 0 : 1;
      if (accept) {
        bad += row(o.logits, 1, v) == want[p + 1] ? 0 : 1;
        p += 2;
      } else {
        m.rewind(st, static_cast<std::int64_t>(p + 1));
        p += 1;
      }
    }
    CHECK(bad == 0);
    CHECK_THROWS_AS(m.rewind(st, st.next_pos - 2), d::InputError);
    CHECK_THROWS_AS(m.rewind(st, st.next_pos + 1), d::InputError);
  }
}

TEST_CASE_TEMPLATE("greedy speculative decoding emits the greedy tokens", N, Bf16, Fp32) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    const auto& m = model<N>(name);
    const auto prompt = prompt_of(name, 9);
    d::GenerateOptions opt;
    opt.max_new_tokens = 60;
    const d::GenerateResult plain = d::generate(m, prompt, opt);
    REQUIRE(plain.tokens.size() == 60);
    CHECK(plain.stop == d::StopReason::max_new_tokens);
    CHECK(plain.trunk_calls == 60);
    CHECK(plain.drafted == 0);

    opt.speculative = true;
    const d::GenerateResult spec = d::generate(m, prompt, opt);
    CHECK(spec.tokens == plain.tokens);
    CHECK(spec.stop == d::StopReason::max_new_tokens);
    CHECK(spec.trunk_calls == 1 + spec.drafted);
    // One token from the prefill, then two per accepted draft and one per rejected one (the
    // last pair may be cut by the budget).
    const std::size_t n = spec.tokens.size();
    CHECK((n == 1 + spec.drafted + spec.accepted || n == spec.drafted + spec.accepted));
    MESSAGE(
        fmt::format("{} {}: MTP drafts accepted {} of {} ({:.2f}); {} trunk calls for {} tokens",
                    name, N::act::name, spec.accepted, spec.drafted, spec.acceptance_rate(),
                    spec.trunk_calls, spec.tokens.size()));

    // The sequence greedy decoding produces, to script drafts against.
    std::vector<std::int32_t> seq = prompt;
    seq.insert(seq.end(), plain.tokens.begin(), plain.tokens.end());
    const auto at = [&](std::int64_t p) {
      return p < static_cast<std::int64_t>(seq.size()) ? seq[static_cast<std::size_t>(p)] : 0;
    };
    const std::size_t v = m.vocab_size();
    {
      auto right = scripted(at, v);
      const auto r = d::generate(m, prompt, opt, right);
      CHECK(r.tokens == plain.tokens);
      CHECK(r.acceptance_rate() == 1.0);
      CHECK(r.trunk_calls <= 1 + (plain.tokens.size() + 1) / 2);
    }
    {
      auto wrong = scripted([&](std::int64_t p) { return (at(p) + 1) % static_cast<int>(v); }, v);
      const auto r = d::generate(m, prompt, opt, wrong);
      CHECK(r.tokens == plain.tokens);
      CHECK(r.accepted == 0);
      CHECK(r.drafted == plain.tokens.size() - 1);
    }
  }
}

TEST_CASE("the MTP cache holds only accepted tokens (fp32)") {
  const auto& m = model<Fp32>("tiny_b");
  const auto prompt = prompt_of("tiny_b", 7);
  d::GenerateOptions opt;
  opt.max_new_tokens = 40;
  opt.speculative = true;
  const std::size_t v = m.vocab_size();
  // Drafts for every third position wrong, the others right, so both bookkeeping paths run.
  d::GenerateOptions g;
  g.max_new_tokens = 40;
  const auto plain = d::generate(m, prompt, g);
  std::vector<std::int32_t> seq = prompt;
  seq.insert(seq.end(), plain.tokens.begin(), plain.tokens.end());
  auto drafter = scripted(
      [&](std::int64_t p) {
        const std::int32_t t =
            p < static_cast<std::int64_t>(seq.size()) ? seq[static_cast<std::size_t>(p)] : 0;
        return p % 3 != 0 ? t : (t + 3) % static_cast<int>(v);
      },
      v);
  const auto r = d::generate(m, prompt, opt, drafter);
  CHECK(r.tokens == plain.tokens);
  CHECK(r.accepted > 0);
  CHECK(r.accepted < r.drafted);
  MESSAGE(fmt::format("scripted drafts: accepted {} of {}", r.accepted, r.drafted));
  // A fresh trunk prefill and MTP prefill of the accepted sequence up to the last draft.
  const auto target = static_cast<std::size_t>(drafter.last_target);
  REQUIRE(target >= 2);
  REQUIRE(target <= seq.size());
  auto st = m.new_state();
  const auto trunk = m.prefill(std::span<const std::int32_t>(seq.data(), target - 1), st);
  const auto mtp = m.mtp_forward(
      trunk.hidden, std::span<const std::int32_t>(seq.data() + 1, target - 1), 0, st, 0, false);
  CHECK(mtp.logits == drafter.last_mtp_logits);
}

TEST_CASE("sampling: seeds, speculative sampling, stop tokens, budgets, the end of the context") {
  const auto& m = model<Bf16>("tiny_a");
  const auto prompt = prompt_of("tiny_a", 6);
  d::GenerateOptions opt;
  opt.max_new_tokens = 30;
  opt.sampling = {0.8f, 0.95f, 11};
  const auto a = d::generate(m, prompt, opt);
  CHECK(d::generate(m, prompt, opt).tokens == a.tokens);
  opt.sampling.seed = 12;
  CHECK(d::generate(m, prompt, opt).tokens != a.tokens);
  opt.speculative = true;
  const auto s = d::generate(m, prompt, opt);
  CHECK(s.tokens.size() == 30);
  CHECK(d::generate(m, prompt, opt).tokens == s.tokens);
  MESSAGE(fmt::format("tiny_a sampled (T 0.8, top-p 0.95): MTP drafts accepted {} of {} ({:.2f})",
                      s.accepted, s.drafted, s.acceptance_rate()));

  // Stop tokens end the output (the stop token itself is not part of it), in both modes.
  d::GenerateOptions g;
  g.max_new_tokens = 20;
  const auto greedy = d::generate(m, prompt, g);
  g.stop_tokens = {greedy.tokens[5], 9999};
  std::vector<std::int32_t> streamed;
  g.on_token = [&](std::int32_t t) { streamed.push_back(t); };
  const auto stopped = d::generate(m, prompt, g);
  const auto first = std::find(greedy.tokens.begin(), greedy.tokens.end(), greedy.tokens[5]);
  CHECK(stopped.tokens == std::vector<std::int32_t>(greedy.tokens.begin(), first));
  CHECK(stopped.stop == d::StopReason::stop_token);
  CHECK(stopped.stop_token == greedy.tokens[5]);
  CHECK(streamed == stopped.tokens);
  g.speculative = true;
  g.on_token = nullptr;
  CHECK(d::generate(m, prompt, g).tokens == stopped.tokens);

  // The context ends at max_seq_len = 128: prompt + output never exceed it.
  const auto long_prompt = golden_tokens("tiny_a");
  std::vector<std::int32_t> lp(long_prompt.begin(), long_prompt.begin() + 60);
  while (lp.size() < 120) lp.push_back(static_cast<std::int32_t>(lp.size() % 500));
  d::GenerateOptions c;
  c.max_new_tokens = 50;
  const auto full = d::generate(m, lp, c);
  CHECK(full.stop == d::StopReason::context_full);
  CHECK(full.tokens.size() == 8);
  c.speculative = true;
  const auto full_spec = d::generate(m, lp, c);
  CHECK(full_spec.tokens == full.tokens);
  CHECK(full_spec.stop == d::StopReason::context_full);
  c.max_new_tokens = 0;
  CHECK(d::generate(m, lp, c).tokens.empty());

  // Bad input.
  CHECK_THROWS_AS(d::generate(m, std::vector<std::int32_t>{}, g), d::InputError);
  CHECK_THROWS_AS(d::generate(m, std::vector<std::int32_t>(128, 1), g), d::InputError);
  CHECK_THROWS_AS(d::generate(m, std::vector<std::int32_t>{1, 600}, g), d::InputError);
  opt.sampling.temperature = -1.0f;
  CHECK_THROWS_AS(d::generate(m, prompt, opt), d::InputError);
}

TEST_CASE("speculative sampling returns tokens distributed as the target") {
  const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
  const std::vector<double> q = {0.1, 0.2, 0.3, 0.4};
  d::Sampler s({1.0f, 1.0f, 3});
  const int n = 200000;
  std::array<int, 4> count{};
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    const auto draft = s.draw(q);
    const auto v = d::verify_draft(p, q, draft, s);
    ++count[static_cast<std::size_t>(v.token)];
    accepted += v.accepted ? 1 : 0;
  }
  for (std::size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(static_cast<double>(count[k]) / n == doctest::Approx(p[k]).epsilon(0.03));
  }
  // P(accept) = Σ min(p, q) = 0.5.
  CHECK(static_cast<double>(accepted) / n == doctest::Approx(0.5).epsilon(0.02));
  // Greedy distributions (one-hot): accepted exactly when the draft is the target's token.
  const std::vector<double> p1 = {0, 1, 0, 0}, q1 = {0, 0, 1, 0};
  CHECK(d::verify_draft(p1, q1, 2, s).token == 1);
  CHECK(!d::verify_draft(p1, q1, 2, s).accepted);
  CHECK(d::verify_draft(p1, p1, 1, s).accepted);
  // The distribution the sampler draws from.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  const auto dist = d::Sampler({1.0f, 0.75f, 0}).distribution(logits);
  CHECK(dist[0] == doctest::Approx(0.625));
  CHECK(dist[1] == doctest::Approx(0.375));
  CHECK(dist[2] == 0.0);
  CHECK(d::Sampler({0.0f, 1.0f, 0}).distribution(logits) == std::vector<double>{1, 0, 0, 0});
}

TEST_CASE("a chunked prefill and a resumed sequence give the tokens of one fresh generation") {
  const auto& m = model<Fp32>("tiny_a");
  const auto prompt = prompt_of("tiny_a", 12);
  d::GenerateOptions g;
  g.max_new_tokens = 10;
  const auto whole = d::generate(m, prompt, g);
  REQUIRE(whole.tokens.size() == 10);
  CHECK(whole.prompt_tokens == 12);

  // Chunks of 5 tokens: progress after each, the same tokens, plain and speculative.
  std::vector<std::size_t> progress;
  g.prefill_chunk = 5;
  g.on_prefill = [&](std::size_t done, std::size_t total) {
    CHECK(total == 12);
    progress.push_back(done);
  };
  CHECK(d::generate(m, prompt, g).tokens == whole.tokens);
  CHECK(progress == std::vector<std::size_t>{5, 10, 12});
  g.speculative = true;
  CHECK(d::generate(m, prompt, g).tokens == whole.tokens);
  g.speculative = false;
  g.on_prefill = nullptr;

  // A turn of 4 tokens, then the state resumes with the tokens it has not fed (the last emitted
  // one) and 3 more: only those are prefilled, and the output is a fresh generation's.
  g.max_new_tokens = 4;
  auto st = m.new_state();
  const auto first = d::generate(m, st, prompt, g);
  REQUIRE(first.tokens.size() == 4);
  CHECK(st.next_pos == 12 + 3);  // the 4th token was sampled but not fed
  std::vector<std::int32_t> conversation = prompt;
  conversation.insert(conversation.end(), first.tokens.begin(), first.tokens.end());
  const std::vector<std::int32_t> turn = {first.tokens.back(), 7, 8, 9};
  conversation.insert(conversation.end(), turn.begin() + 1, turn.end());
  g.max_new_tokens = 6;
  g.speculative = true;  // a resumed sequence decodes without drafting
  const auto resumed = d::generate(m, st, turn, g);
  CHECK(resumed.prompt_tokens == 4);
  CHECK(resumed.drafted == 0);
  g.speculative = false;
  const auto fresh = d::generate(m, conversation, g);
  CHECK(resumed.tokens == fresh.tokens);
  CHECK(st.next_pos == static_cast<std::int64_t>(conversation.size()) + 5);
}

namespace {

/// The MTP drafter with a carry (generate() keeps it between calls), remembering its last logits
/// and the position they predict. With `script`, it proposes script(position) instead (one-hot),
/// the MTP block still running so that its cache evolves as in a real run.
struct KeptDrafter {
  d::DraftCarry carry;
  std::function<std::int32_t(std::int64_t)> script;
  std::size_t vocab = 0;
  std::vector<float> last_mtp_logits;
  std::int64_t last_target = -1;

  template <class M>
  std::vector<float> draft(const M& m, typename M::State& st, std::span<const float> hidden,
                           std::span<const std::int32_t> tokens, std::int64_t pos) {
    last_mtp_logits = d::MtpDrafter{}.draft(m, st, hidden, tokens, pos);
    last_target = pos + static_cast<std::int64_t>(tokens.size()) + 1;
    if (!script) return last_mtp_logits;
    std::vector<float> out(vocab, 0.0f);
    out[static_cast<std::size_t>(script(last_target))] = 1.0f;
    return out;
  }
};

/// The tokens a resumed call must start with: those of `r` the state has not read (and the stop
/// token unless a verified draft fed it), as a chat keeps them.
std::vector<std::int32_t> unread(const d::GenerateResult& r, std::int64_t fed_before,
                                 std::size_t prompt, std::int64_t next_pos, std::int32_t stop) {
  const auto fed = static_cast<std::size_t>(next_pos - fed_before) - prompt;
  const std::size_t of_reply = fed - (r.stop_token_fed ? 1 : 0);
  std::vector<std::int32_t> out(r.tokens.begin() + static_cast<std::ptrdiff_t>(of_reply),
                                r.tokens.end());
  if (r.stop == d::StopReason::stop_token && !r.stop_token_fed) out.push_back(stop);
  return out;
}

}  // namespace

TEST_CASE("speculative decoding continues across resumed calls when the drafter is kept") {
  const auto& m = model<Fp32>("tiny_b");
  const auto prompt = prompt_of("tiny_b", 9);
  d::GenerateOptions g;
  g.max_new_tokens = 7;
  g.speculative = true;
  d::GenerateOptions plain = g;
  plain.speculative = false;
  auto st = m.new_state();
  KeptDrafter drafter;
  std::vector<std::int32_t> conversation = prompt;  // every token of the sequence so far
  std::vector<std::int32_t> feed = prompt;
  for (int turn = 0; turn < 3; ++turn) {
    CAPTURE(turn);
    const std::int64_t before = st.next_pos;
    const auto r = d::generate(m, st, feed, g, drafter);
    // The tokens of one fresh greedy generation over the whole sequence, drafting in every turn.
    CHECK(r.tokens == d::generate(m, conversation, plain).tokens);
    CHECK(r.drafted > 0);
    // The drafter carries the last position the trunk read; its cache covers all before it,
    // and its last logits are a fresh MTP prefill's over the sequence.
    CHECK(drafter.carry.pos == st.next_pos - 1);
    CHECK(st.mtp_next_pos[0] == st.next_pos - 1);
    std::vector<std::int32_t> seq = conversation;
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
    const auto target = static_cast<std::size_t>(drafter.last_target);
    REQUIRE(target <= seq.size());
    auto fresh = m.new_state();
    const auto trunk = m.prefill(std::span<const std::int32_t>(seq.data(), target - 1), fresh);
    const auto mtp =
        m.mtp_forward(trunk.hidden, std::span<const std::int32_t>(seq.data() + 1, target - 1), 0,
                      fresh, 0, false);
    CHECK(mtp.logits == drafter.last_mtp_logits);
    // The next turn: what the state has not read, and three new tokens.
    feed = unread(r, before, feed.size(), st.next_pos, -1);
    conversation.insert(conversation.end(), r.tokens.begin(), r.tokens.end());
    const std::vector<std::int32_t> extra = {5 + turn, 6, 7};
    feed.insert(feed.end(), extra.begin(), extra.end());
    conversation.insert(conversation.end(), extra.begin(), extra.end());
  }
  // A drafter that did not follow the sequence (a fresh one) does not draft on resume.
  d::MtpDrafter fresh_drafter;
  CHECK(d::generate(m, st, feed, g, fresh_drafter).drafted == 0);
  CHECK(fresh_drafter.carry.pos == -1);
}

TEST_CASE("a stop token fed by a verified draft: the state holds it, and the sequence resumes") {
  const auto& m = model<Fp32>("tiny_a");
  const auto prompt = prompt_of("tiny_a", 8);
  d::GenerateOptions plain;
  plain.max_new_tokens = 12;
  const auto greedy = d::generate(m, prompt, plain).tokens;
  std::vector<std::int32_t> seq = prompt;
  seq.insert(seq.end(), greedy.begin(), greedy.end());
  int fed_stops = 0;
  for (std::size_t at = 1; at <= 5; ++at) {
    const std::int32_t stop = greedy[at];
    if (std::find(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(at), stop) !=
        greedy.begin() + static_cast<std::ptrdiff_t>(at)) {
      continue;  // the stop token must first appear at `at`
    }
    CAPTURE(at);
    d::GenerateOptions g = plain;
    g.speculative = true;
    g.stop_tokens = {stop};
    KeptDrafter drafter;
    drafter.vocab = m.vocab_size();
    drafter.script = [&](std::int64_t p) {  // always right
      return p < static_cast<std::int64_t>(seq.size()) ? seq[static_cast<std::size_t>(p)] : 0;
    };
    auto st = m.new_state();
    const auto r = d::generate(m, st, prompt, g, drafter);
    REQUIRE(r.stop == d::StopReason::stop_token);
    CHECK(r.tokens == std::vector<std::int32_t>(greedy.begin(),
                                                greedy.begin() + static_cast<std::ptrdiff_t>(at)));
    // Always-right drafts put the stop token in a draft at odd indices of the output.
    CHECK(r.stop_token_fed == (at % 2 == 1));
    fed_stops += r.stop_token_fed ? 1 : 0;
    CHECK(drafter.carry.pos == st.next_pos - 1);
    CHECK(st.mtp_next_pos[0] == st.next_pos - 1);
    // Resuming with the unread tokens and more gives a fresh generation's tokens.
    auto feed = unread(r, 0, prompt.size(), st.next_pos, stop);
    std::vector<std::int32_t> conversation(
        seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(prompt.size() + at));
    conversation.push_back(stop);
    for (const std::int32_t t : {3, 4}) {
      feed.push_back(t);
      conversation.push_back(t);
    }
    d::GenerateOptions next = plain;
    next.max_new_tokens = 5;
    d::GenerateOptions next_spec = next;
    next_spec.speculative = true;
    const auto resumed = d::generate(m, st, feed, next_spec, drafter);
    CHECK(resumed.tokens == d::generate(m, conversation, next).tokens);
    CHECK(resumed.drafted > 0);
  }
  CHECK(fed_stops > 0);
}

TEST_CASE("a type-erased model computes and generates what the model it holds does") {
  const auto& m = model<Fp32>("tiny_b");
  const auto dir = d::test::data_path("reference/tiny_b");
  const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  const d::AnyModel any(TinyModel<Fp32>::load(ckpt), "reference");
  CHECK(any.label() == "reference");
  CHECK(any.vocab_size() == m.vocab_size());
  CHECK(any.n_mtp() == m.n_mtp());
  const auto prompt = prompt_of("tiny_b", 9);

  // Prefill, a decode step and the MTP block: bit for bit.
  auto st = m.new_state();
  auto ast = any.new_state();
  const auto want = m.prefill(prompt, st);
  const auto got = any.prefill(prompt, ast);
  CHECK(got.logits == want.logits);
  CHECK(got.hidden == want.hidden);
  CHECK(any.decode(5, ast).logits == m.decode(5, st).logits);
  CHECK(ast.next_pos == st.next_pos);
  const std::vector<std::int32_t> next(prompt.begin() + 1, prompt.end());
  const auto h =
      std::span<const float>(want.hidden).first(next.size() * d::AnyModel::streams * m.dim());
  CHECK(any.mtp_forward(h, next, 0, ast).logits == m.mtp_forward(h, next, 0, st).logits);

  // generate(): the same tokens, plain and speculative.
  d::GenerateOptions g;
  g.max_new_tokens = 12;
  CHECK(d::generate(any, prompt, g).tokens == d::generate(m, prompt, g).tokens);
  g.speculative = true;
  const auto spec = d::generate(any, prompt, g);
  CHECK(spec.tokens == d::generate(m, prompt, g).tokens);
  CHECK(spec.drafted > 0);

  // An empty one refuses to run.
  const d::AnyModel empty;
  CHECK_FALSE(empty.has_value());
  CHECK_THROWS_AS(empty.new_state(), d::InputError);
}
