// Batches (Model::forward_batch): sequences of different lengths and positions run in one call,
// each with its own state, and every sequence's logits and last-block output equal, bit for bit,
// what it computes alone. tiny_b (SWA, CSA and HCA blocks, hash and scored MoE) in both numerics.
#include <doctest/doctest.h>

#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/model.hpp>
#include <span>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace d = dsv4;

template <class N>
const d::ReferenceModel<d::WithNumerics<N>>& tiny_b() {
  static const auto m = [] {
    const auto dir = d::test::data_path("reference/tiny_b");
    return d::ReferenceModel<d::WithNumerics<N>>::load(
        d::io::Checkpoint(dir / "config.json", {dir / "weights.safetensors"}));
  }();
  return m;
}

}  // namespace

TEST_CASE_TEMPLATE("sequences decoded together equal each sequence decoded alone", N,
                   d::ReferenceNumerics, d::ReferenceFp32Numerics) {
  const auto& m = tiny_b<N>();
  using M = d::ReferenceModel<d::WithNumerics<N>>;
  const auto tokens =
      d::test::read_i32(*d::test::reference_case("tiny_b").file("golden_fp32"), "tokens");
  const std::span<const std::int32_t> all(tokens);
  // Three sequences taken from different parts of the golden tokens.
  const std::span<const std::int32_t> seq[3] = {all.subspan(0, 40), all.subspan(40, 40),
                                                all.subspan(10, 40)};

  // Alone: each sequence on its own state, with the same call boundaries as in the batch below.
  struct Call {
    std::size_t seq, first, count;
    bool all_logits;
  };
  // Rounds of calls made together: different lengths, positions, prefill next to decode.
  const std::vector<std::vector<Call>> rounds = {
      {{0, 0, 7, true}, {1, 0, 19, true}},                     // two prefills of different lengths
      {{0, 7, 1, true}, {1, 19, 1, true}},                     // decode at positions 7 and 19
      {{0, 8, 1, true}, {1, 20, 3, false}, {2, 0, 5, true}},   // decode, a chunk, a new prefill
      {{2, 5, 1, true}, {0, 9, 1, true}, {1, 23, 1, true}},    // three decodes, another order
      {{1, 24, 10, true}, {2, 6, 1, true}},                    // a long chunk crossing blocks
      {{0, 10, 1, true}, {1, 34, 1, true}, {2, 7, 1, true}}};  // all decoding
  std::vector<typename M::State> alone(3), batched(3);
  for (std::size_t s = 0; s < 3; ++s) {
    alone[s] = m.new_state();
    batched[s] = m.new_state();
  }
  std::size_t compared = 0;
  for (const auto& round : rounds) {
    std::vector<typename M::BatchItem> items;
    std::vector<typename M::Output> want;
    for (const Call& c : round) {
      const auto toks = seq[c.seq].subspan(c.first, c.count);
      want.push_back(
          m.forward(toks, static_cast<std::int64_t>(c.first), alone[c.seq], c.all_logits));
      items.push_back({toks, static_cast<std::int64_t>(c.first), &batched[c.seq], c.all_logits});
    }
    const auto got = m.forward_batch(items);
    REQUIRE(got.size() == round.size());
    for (std::size_t i = 0; i < round.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].tokens == round[i].count);
      CHECK(got[i].logits.size() == (round[i].all_logits ? round[i].count : 1) * m.vocab_size());
      CHECK(got[i].logits == want[i].logits);
      CHECK(got[i].hidden == want[i].hidden);
      CHECK(batched[round[i].seq].next_pos == alone[round[i].seq].next_pos);
      ++compared;
    }
  }
  CHECK(compared == 15);
}

TEST_CASE("batch errors") {
  const auto& m = tiny_b<d::ReferenceNumerics>();
  using M = d::ReferenceModel<d::WithNumerics<d::ReferenceNumerics>>;
  auto a = m.new_state();
  auto b = m.new_state();
  const std::vector<std::int32_t> t = {1, 2, 3};
  CHECK_THROWS_AS(m.forward_batch({}), d::InputError);
  const std::vector<M::BatchItem> shared = {{t, 0, &a, true}, {t, 0, &a, true}};
  CHECK_THROWS_WITH_AS(m.forward_batch(shared), doctest::Contains("share one state"),
                       d::InputError);
  const std::vector<M::BatchItem> no_state = {{t, 0, &a, true}, {t, 0, nullptr, true}};
  CHECK_THROWS_AS(m.forward_batch(no_state), d::InputError);
  const std::vector<M::BatchItem> gap = {{t, 0, &a, true}, {t, 4, &b, true}};
  CHECK_THROWS_AS(m.forward_batch(gap), d::InputError);
}
