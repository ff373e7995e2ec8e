// The official FP8/FP4 release layout end to end: the tiny_fp8 checkpoint as downloaded (3 shards,
// index, Hugging Face config), FP8 dense and FP4 expert weights as zero-copy views, run with the
// reference's numerics, against the official model.py's logits on the same checkpoint (that run
// used PyTorch 2: ReferenceNumerics; with the PyTorch 1 mean of ReferenceTorch1Numerics the prefill
// mean error grows tenfold, to 0.053).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dsv4/core/numerics.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/safetensors.hpp>
#include <dsv4/model/model.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace d = dsv4;
namespace {

struct Stats {
  double max_abs = 0, mean_abs = 0, rel_l2 = 0, top1 = 0;
};

Stats compare_rows(const std::vector<float>& got, std::span<const float> want, std::size_t vocab) {
  REQUIRE(got.size() == want.size());
  Stats s;
  double sum = 0, d2 = 0, w2 = 0;
  std::size_t agree = 0;
  const std::size_t rows = got.size() / vocab;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto g = got.begin() + static_cast<std::ptrdiff_t>(r * vocab);
    const auto w = want.begin() + static_cast<std::ptrdiff_t>(r * vocab);
    agree += std::max_element(g, g + static_cast<std::ptrdiff_t>(vocab)) - g ==
             std::max_element(w, w + static_cast<std::ptrdiff_t>(vocab)) - w;
    for (std::size_t i = 0; i < vocab; ++i) {
      const double e =
          std::fabs(double(g[static_cast<std::ptrdiff_t>(i)]) - w[static_cast<std::ptrdiff_t>(i)]);
      s.max_abs = std::max(s.max_abs, e);
      sum += e;
      d2 += e * e;
      w2 += double(w[static_cast<std::ptrdiff_t>(i)]) * w[static_cast<std::ptrdiff_t>(i)];
    }
  }
  s.mean_abs = sum / double(got.size());
  s.rel_l2 = std::sqrt(d2 / w2);
  s.top1 = double(agree) / double(rows);
  return s;
}

/// Both comparisons of one numerics policy: the prefill of all tokens, and a prefix of `prefix`
/// tokens then one token at a time.
struct Runs {
  Stats prefill;        ///< against the reference's prefill
  Stats decode;         ///< against the reference's own decode from the prefix
  Stats decode_vs_pre;  ///< the same decoded rows against the reference's prefill rows
};

template <class N>
Runs run(const d::io::Checkpoint& ckpt, const d::io::SafetensorsFile& golden,
         const std::vector<std::int32_t>& tokens, std::size_t vocab, std::size_t prefix = 40) {
  using Model = d::ReferenceModel<d::WithLinear<d::AnyLinear, d::WithNumerics<N>>>;
  const Model m = Model::load(ckpt);
  Runs r;
  auto st = m.new_state();
  const auto pre = m.prefill(tokens, st);
  r.prefill = compare_rows(pre.logits, golden.span<float>("prefill.logits_all"), vocab);
  auto st2 = m.new_state();
  (void)m.prefill(std::span<const std::int32_t>(tokens.data(), prefix), st2);
  std::vector<float> dec;
  for (std::size_t i = prefix; i < tokens.size(); ++i) {
    const auto o = m.decode(tokens[i], st2);
    dec.insert(dec.end(), o.logits.end() - static_cast<std::ptrdiff_t>(vocab), o.logits.end());
  }
  r.decode = compare_rows(
      dec, golden.span<float>("decode_from_" + std::to_string(prefix) + ".logits"), vocab);
  r.decode_vs_pre =
      compare_rows(dec, golden.span<float>("prefill.logits_all").subspan(prefix * vocab), vocab);
  return r;
}

void print(const std::string& what, const Stats& s) {
  MESSAGE(what, ": max ", s.max_abs, " mean ", s.mean_abs, " rel-L2 ", s.rel_l2, " top-1 ", s.top1);
}

// Bounds on the mean |difference|, rel-L2 and top-1 agreement (the max is not gated: a selection
// flip moves a row by up to ~1). The golden README's tolerances for a faithful bf16
// implementation on FP8/FP4 weights (mean <= 0.1, rel-L2 <= 0.07, top-1 >= 0.9) would accept
// the PyTorch 1 bf16 mean (ReferenceTorch1Numerics) in place of the PyTorch 2 one the official
// run used. Measured figures: this test's MESSAGE lines (ci build, x86-64, GCC 12).
struct Bounds {
  double mean_abs, rel_l2, top1;
  bool hold(const Stats& s) const {
    return s.mean_abs <= mean_abs && s.rel_l2 <= rel_l2 && s.top1 >= top1;
  }
};
// Prefill, measured: max 0.107, mean 0.0055, rel-L2 0.0047, top-1 1 (with the PyTorch 1 mean:
// mean 0.053, rel-L2 0.037, top-1 0.97, which these bounds reject).
constexpr Bounds kPrefill{0.02, 0.02, 0.95};
// Decode from 40 against the reference's own decode, measured: max 0.81, mean 0.064, rel-L2
// 0.047, top-1 1. Loose on purpose: the oracle's decode differs from its own prefill by the same
// amount (mean 0.064), so this comparison cannot tell the numerics apart (the PyTorch 1 mean
// measures mean 0.060, rel-L2 0.039, top-1 0.96); the README's tolerances are the bound.
constexpr Bounds kDecodeVsDecode{0.1, 0.07, 0.9};
// The decoded rows against the reference's prefill rows 40..63, which carry no decode noise:
// this is where decode is checked closely and the numerics mix-up must fail. Measured: max
// 0.055, mean 0.0067, rel-L2 0.0047, top-1 1 (PyTorch 1 mean: 0.071, 0.050, 0.96).
constexpr Bounds kDecodeVsPrefill{0.02, 0.02, 0.95};

}  // namespace

TEST_CASE("tiny_fp8 release layout: logits of the official reference (prefill and decode)") {
  const auto ckpt = d::io::Checkpoint::open(d::test::data_path("reference/tiny_fp8/hf"));
  const d::io::SafetensorsFile golden(
      d::test::data_path("reference/tiny_fp8/golden_logits.safetensors"));
  const auto tok_span = golden.span<std::int32_t>("tokens");
  const std::vector<std::int32_t> tokens(tok_span.begin(), tok_span.end());
  REQUIRE(tokens.size() == 64);
  const std::size_t vocab = 512;

  const Runs ok = run<d::ReferenceNumerics>(ckpt, golden, tokens, vocab);
  print("prefill", ok.prefill);
  print("decode from 40 vs the reference's decode", ok.decode);
  print("decode from 40 vs the reference's prefill", ok.decode_vs_pre);
  CHECK(kPrefill.hold(ok.prefill));
  CHECK(kDecodeVsDecode.hold(ok.decode));
  CHECK(kDecodeVsPrefill.hold(ok.decode_vs_pre));

  // The numerics mix-up this test guards against must fail the prefill and decode bounds.
  const Runs mixed = run<d::ReferenceTorch1Numerics>(ckpt, golden, tokens, vocab);
  print("PyTorch 1 mean: prefill", mixed.prefill);
  print("PyTorch 1 mean: decode from 40 vs the reference's decode", mixed.decode);
  print("PyTorch 1 mean: decode from 40 vs the reference's prefill", mixed.decode_vs_pre);
  CHECK_FALSE(kPrefill.hold(mixed.prefill));
  CHECK_FALSE(kDecodeVsPrefill.hold(mixed.decode_vs_pre));
}

// A second release-layout checkpoint of another shape (wide_fp8: dim 256, head_dim 128, window 16,
// compress ratios 4 and 16, 8 experts, vocabulary 256; tests/data/README.md) against the official
// model.py on it. Its fp32 projections have K = dim = 256 (the compressor's wkv/wgate, the head)
// and K = 4·dim = 1024 (the hyper-connection mixes), where the CPU BLAS that ran the reference
// no longer sums K in ascending order as it does for K <= 192 (tiny_fp8's dim 128): it sums two
// blocks of 128 for K = 256 and blocks of 192 for K = 512 and 1024 (an M = 1 call, the decode,
// differs again). The first value that departs is therefore an fp32 compressor projection of
// layer 0, one ulp, which the bf16 rounding and FP8/FP4 grids amplify. The reference re-run with
// every F.linear summed in ascending k in fp32 is bit-exact with this library through layer 0
// (compressor entries, index keys, index scores), and the two reference runs differ from each
// other (prefill max 0.77, mean 0.014, rel-L2 0.019, top-1 0.97) as much as this library differs
// from either, so the bounds below are those of the reference's own summation order (as is
// PyTorch's vectorised RMSNorm mean; docs/oracles.md has a larger case where that departs first).
namespace {
// Prefill, measured: max 0.79, mean 0.0130, rel-L2 0.0189, top-1 0.984 (against the
// ascending-order re-run of the reference: max 0.12, mean 0.0102, rel-L2 0.0077, top-1 0.984).
constexpr Bounds kWidePrefill{0.05, 0.06, 0.9};
// Decode from 40 against the reference's decode, measured: max 0.11, mean 0.0209, rel-L2 0.0135,
// top-1 0.958 (the reference's decode differs from its own prefill: mean 0.030, rel-L2 0.031).
constexpr Bounds kWideDecode{0.08, 0.06, 0.9};
// The decoded rows against the reference's prefill rows 40..63, measured: max 0.79, mean 0.0259,
// rel-L2 0.0303, top-1 0.958.
constexpr Bounds kWideDecodeVsPrefill{0.08, 0.1, 0.9};
}  // namespace

TEST_CASE("wide_fp8 release layout (dim 256): logits of the official reference") {
  const auto ckpt = d::io::Checkpoint::open(d::test::data_path("reference/wide_fp8/hf"));
  const d::io::SafetensorsFile golden(
      d::test::data_path("reference/wide_fp8/golden_logits.safetensors"));
  const auto tok_span = golden.span<std::int32_t>("tokens");
  const std::vector<std::int32_t> tokens(tok_span.begin(), tok_span.end());
  REQUIRE(tokens.size() == 64);
  const std::size_t vocab = 256;

  const Runs ok = run<d::ReferenceNumerics>(ckpt, golden, tokens, vocab, 40);
  print("wide prefill", ok.prefill);
  print("wide decode from 40 vs the reference's decode", ok.decode);
  print("wide decode from 40 vs the reference's prefill", ok.decode_vs_pre);
  CHECK(kWidePrefill.hold(ok.prefill));
  CHECK(kWideDecode.hold(ok.decode));
  CHECK(kWideDecodeVsPrefill.hold(ok.decode_vs_pre));
}
