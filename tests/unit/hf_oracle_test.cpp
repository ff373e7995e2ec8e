// The model against the Hugging Face oracle (tests/data/hf/hf_a, hf_b; transformers' DeepSeek-V4
// in float32, which has no FP8/FP4 activation simulation; tools/golden/README.md, docs/oracles.md).
// dsv4 runs the reference-named weights.safetensors with reference_config.json:
//  * with PlainFp32Numerics (simulation off): prefill logits of every position, the last block's
//    output, the decode logits after each recorded prefix, and the MoE and indexer selections
//    (as sets; HF indexer picks are 0-based entry numbers) — max |Δlogit| ≤ 1e-4 and identical
//    selections;
//  * with ReferenceFp32Numerics (simulation on) the same model lands about as far from HF as the
//    official model.py does (docs/oracles.md), mostly through FP4 indexer flips: the simulation is
//    a compile-time switch of the same code.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/safetensors.hpp>
#include <dsv4/model/model.hpp>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace d = dsv4;
using d::io::SafetensorsFile;
using d::test::compare;
using d::test::ErrorStats;

/// One HF oracle configuration.
struct HfCase {
  std::string name;
  std::vector<int> decode_prefixes;
  // docs/oracles.md, "official, all simulation, vs HF prefill": max / mean |Δlogit| and the rows
  // whose selections differ from HF's (summed over the blocks).
  double official_sim_max;
  double official_sim_mean;
  std::size_t official_sim_expert_rows;
  std::size_t official_sim_indexer_rows;
};

const HfCase hf_cases[] = {{"hf_a", {5, 37}, 2.64, 0.048, 1 + 1, 15 + 14},
                           {"hf_b", {13, 70}, 0.94, 0.036, 1, 26 + 26}};

template <class N>
d::ReferenceModel<d::WithNumerics<N>> load(const std::string& name) {
  const auto dir = d::test::data_path("hf/" + name);
  return d::ReferenceModel<d::WithNumerics<N>>::load(
      d::io::Checkpoint(dir / "reference_config.json", {dir / "weights.safetensors"}));
}

std::vector<std::int32_t> ints(const SafetensorsFile& f, const std::string& key) {
  const auto s = f.span<std::int32_t>(key);
  return {s.begin(), s.end()};
}

std::set<std::int32_t> row_set(std::span<const std::int32_t> v, std::size_t r, std::size_t w) {
  std::set<std::int32_t> s;
  for (std::size_t i = 0; i < w; ++i) {
    if (v[r * w + i] >= 0) s.insert(v[r * w + i]);
  }
  return s;
}

/// Rows whose selections differ as sets: MoE experts of every block and indexer picks of every
/// CSA block, against the HF golden keys.
struct SelectionDiff {
  std::size_t expert_rows = 0;
  std::size_t indexer_rows = 0;
  std::size_t indexer_rows_total = 0;  // rows with a selection at all
  std::size_t blocks_with_indexer = 0;
};

SelectionDiff compare_selections(const d::ForwardTrace& tr, const SafetensorsFile& g,
                                 std::size_t n_tokens) {
  SelectionDiff out;
  for (std::size_t l = 0; l < tr.routing.size(); ++l) {
    const std::string p = fmt::format("prefill.layers.{}.", l);
    const d::Routing& rt = tr.routing[l];
    REQUIRE(rt.tokens == n_tokens);
    const auto want = ints(g, p + "ffn.gate.indices");
    REQUIRE(want.size() == n_tokens * rt.k);
    for (std::size_t t = 0; t < n_tokens; ++t) {
      if (row_set(rt.experts, t, rt.k) != row_set(want, t, rt.k)) ++out.expert_rows;
    }
    if (!tr.index[l]) continue;
    ++out.blocks_with_indexer;
    const d::IndexerSelection& sel = *tr.index[l];
    const auto want_idx = ints(g, p + "attn.indexer.topk_idxs");
    REQUIRE(want_idx.size() == n_tokens * sel.k);
    for (std::size_t t = 0; t < n_tokens; ++t) {
      const auto got_set = row_set(sel.topk, t, sel.k);
      if (!got_set.empty()) ++out.indexer_rows_total;
      if (got_set != row_set(want_idx, t, sel.k)) ++out.indexer_rows;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("PlainFp32Numerics reproduces the Hugging Face model (simulation off)") {
  for (const HfCase& c : hf_cases) {
    CAPTURE(c.name);
    const SafetensorsFile g(d::test::data_path("hf/" + c.name + "/golden.safetensors"));
    const auto m = load<d::PlainFp32Numerics>(c.name);
    const std::size_t v = m.vocab_size();
    const auto tokens = ints(g, "tokens");

    // Prefill: logits of every position, the last block's output, the selections.
    auto st = m.new_state();
    d::ForwardTrace tr;
    const auto out = m.forward(tokens, 0, st, true, &tr);
    const ErrorStats pre = compare(out.logits, g.to_float("prefill.logits_all"));
    const ErrorStats hid = compare(out.hidden, g.to_float("prefill.hidden_out"));
    const SelectionDiff sel = compare_selections(tr, g, tokens.size());
    MESSAGE(fmt::format(
        "{} prefill logits: {}; hidden_out: {}; selection rows differing: "
        "experts {}, indexer {} (of {} rows with picks)",
        c.name, pre.str(), hid.str(), sel.expert_rows, sel.indexer_rows, sel.indexer_rows_total));
    // fp32 summation order only; measured max 3.8e-6 (logits), 1.7e-6 (hidden_out)
    CHECK(pre.max_abs <= 2e-5);
    CHECK(hid.max_abs <= 2e-5);
    CHECK(sel.expert_rows == 0);
    CHECK(sel.indexer_rows == 0);
    CHECK(sel.blocks_with_indexer == 2);
    CHECK(sel.indexer_rows_total > tokens.size());  // the indexers really select

    // Decode after each recorded prefix, one token per call.
    for (const int p : c.decode_prefixes) {
      CAPTURE(p);
      const auto pu = static_cast<std::size_t>(p);
      auto ds = m.new_state();
      const std::string key = fmt::format("decode_from_{}", p);
      const auto first = m.prefill(std::span<const std::int32_t>(tokens.data(), pu), ds, false);
      const ErrorStats s0 = compare(first.logits, g.to_float(key + ".prefill_logits"));
      std::vector<float> got;
      for (std::size_t i = pu; i < tokens.size(); ++i) {
        const auto o = m.decode(tokens[i], ds);
        got.insert(got.end(), o.logits.begin(), o.logits.end());
      }
      const ErrorStats s = compare(got, g.to_float(key + ".logits"));
      MESSAGE(fmt::format("{} {}: prefill_logits {}; decode logits {}", c.name, key, s0.str(),
                          s.str()));
      // measured max 2.4e-6 (prefill of the prefix), 4.3e-6 (decode)
      CHECK(s0.max_abs <= 2e-5);
      CHECK(s.max_abs <= 2e-5);
      CHECK(got.size() == (tokens.size() - pu) * v);
    }
  }
}

TEST_CASE("with the FP8/FP4 simulation on, the model is as far from HF as the official model") {
  for (const HfCase& c : hf_cases) {
    CAPTURE(c.name);
    const SafetensorsFile g(d::test::data_path("hf/" + c.name + "/golden.safetensors"));
    const auto m = load<d::ReferenceFp32Numerics>(c.name);
    const auto tokens = ints(g, "tokens");
    auto st = m.new_state();
    d::ForwardTrace tr;
    const auto out = m.forward(tokens, 0, st, true, &tr);
    const ErrorStats s = compare(out.logits, g.to_float("prefill.logits_all"));
    const SelectionDiff sel = compare_selections(tr, g, tokens.size());
    MESSAGE(
        fmt::format("{} simulation on vs HF prefill: {}; selection rows differing: experts "
                    "{}, indexer {} (official model.py: max {}, mean {})",
                    c.name, s.str(), sel.expert_rows, sel.indexer_rows, c.official_sim_max,
                    c.official_sim_mean));
    // The official model.py run the same way differs from HF by these amounts and flips the same
    // selections (measured: hf_a max 2.64 / mean 0.0477, hf_b 0.942 / 0.0355, the same rows); the
    // bounds allow 5% for fp32 summation order near the FP8/FP4 grid.
    CHECK(s.mean_abs == doctest::Approx(c.official_sim_mean).epsilon(0.05));
    CHECK(s.max_abs == doctest::Approx(c.official_sim_max).epsilon(0.05));
    CHECK(sel.expert_rows == c.official_sim_expert_rows);
    CHECK(sel.indexer_rows == c.official_sim_indexer_rows);
  }
}

TEST_CASE("on tiny_a, switching the simulation off moves dsv4 as far as HF is from the official") {
  // docs/oracles.md: HF vs tiny_a's golden_fp32 (official, simulation on) is max 0.165, mean
  // 0.0109 in the prefill logits; the official model without simulation matches HF to 3e-6. So
  // dsv4 with PlainFp32Numerics must land at that distance from golden_fp32, as well.
  const auto& rc = d::test::reference_case("tiny_a");
  const auto* golden = rc.file("golden_fp32");
  REQUIRE(golden != nullptr);
  const auto dir = d::test::data_path("reference/tiny_a");
  const auto m = d::ReferenceModel<d::WithNumerics<d::PlainFp32Numerics>>::load(
      d::io::Checkpoint(dir / "config.json", {dir / "weights.safetensors"}));
  const auto tokens = d::test::read_i32(*golden, "tokens");
  auto st = m.new_state();
  const ErrorStats s =
      compare(m.prefill(tokens, st).logits, golden->to_float("prefill.logits_all"));
  MESSAGE(fmt::format("tiny_a PlainFp32Numerics vs golden_fp32 prefill: {}", s.str()));
  CHECK(s.max_abs == doctest::Approx(0.165).epsilon(0.05));
  CHECK(s.mean_abs == doctest::Approx(0.0109).epsilon(0.05));
}
