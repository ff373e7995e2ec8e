// The attention stack (layers/attention.hpp, compressor.hpp, indexer.hpp, kv_cache.hpp) against
// the official reference's recorded intermediates of the two tiny golden models
// (tests/data/reference/tiny_{a,b}; golden reference README "Intermediates"). Every attention
// block of the trunk and the MTP block is fed its recorded input `attn.in` and compared on its
// output, the sparse-attention arguments (q, kv rows, candidate indices), the compressor entries,
// the indexer's keys, scores and selections; then prefixes are decoded token by token and compared
// with the recorded decode runs. Set DSV4_TEST_REPORT=1 to print every measured error.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dsv4/core/numeric.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/io/config_json.hpp>
#include <dsv4/io/safetensors.hpp>
#include <dsv4/layers/attention.hpp>
#include <dsv4/model/load_layers.hpp>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

namespace d = dsv4;
using d::io::SafetensorsFile;
using Fp32 = d::ReferenceFp32Numerics;
using Bf16 = d::ReferenceTorch1Numerics;  // the golden bf16 runs used PyTorch 1.13

// ---------------------------------------------------------------------------------------------
// Golden data

/// One golden configuration in one precision: config, weights and intermediates.
struct Golden {
  std::string name;
  d::ModelConfig cfg;
  SafetensorsFile weights;
  SafetensorsFile inter;
  std::vector<int> decode_prefixes;  // P of the recorded decode_from_P runs

  Golden(const std::string& n, const std::string& mode, std::vector<int> prefixes)
      : name(n),
        cfg(d::load_config(d::test::data_path("reference/" + n + "/config.json").string())),
        weights(d::test::data_path("reference/" + n + "/weights.safetensors")),
        inter(d::test::data_path("reference/" + n + "/intermediates_" + mode + ".safetensors")),
        decode_prefixes(std::move(prefixes)) {}

  std::size_t dim() const { return static_cast<std::size_t>(cfg.dim); }
};

const Golden& tiny_a_fp32() {
  static const Golden g("tiny_a", "fp32", {3, 37});
  return g;
}
const Golden& tiny_b_fp32() {
  static const Golden g("tiny_b", "fp32", {21, 70});
  return g;
}
const Golden& tiny_a_bf16() {
  static const Golden g("tiny_a", "bf16", {3, 37});
  return g;
}
/// tiny_a in the precision of N (the bf16 intermediates exist for tiny_a only).
template <class N>
const Golden& tiny_a() {
  if constexpr (std::is_same_v<N, Bf16>) {
    return tiny_a_bf16();
  } else {
    return tiny_a_fp32();
  }
}

std::vector<float> floats(const SafetensorsFile& f, const std::string& name) {
  return f.to_float(name);
}

std::vector<std::int32_t> ints(const SafetensorsFile& f, const std::string& name) {
  REQUIRE(f.info(name).dtype == d::DType::I32);
  const auto bytes = f.bytes(name);
  std::vector<std::int32_t> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

/// An attention block of a golden model.
struct Block {
  std::string weights;  // weight prefix, "layers.1.attn."
  std::string prefill;  // intermediates prefix of the prefill, "prefill.layers.1.attn."
  std::string decode;   // decode intermediates after "decode_from_P.", "" for the MTP block
  int layer;
};

std::vector<Block> blocks(const d::ModelConfig& cfg) {
  std::vector<Block> out;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".attn.";
    out.push_back({p, "prefill." + p, p, l});
  }
  out.push_back({"mtp.0.attn.", "mtp_prefill.mtp.0.attn.", "", cfg.n_layers});
  return out;
}

const Block& block(const d::ModelConfig& cfg, int layer) {
  static std::vector<Block> all;
  all = blocks(cfg);
  return all.at(static_cast<std::size_t>(layer));
}

// ---------------------------------------------------------------------------------------------
// Error measures and tolerances

struct Err {
  double max_abs = 0;  // max |got - want|
  double scale = 0;    // max |want|
  double rel_l2 = 0;   // ||got - want|| / ||want||
  double max_rel() const { return scale > 0 ? max_abs / scale : max_abs; }
};

/// Compares finite values; both sides must be -inf at the same places.
Err compare(const float* got, const float* want, std::size_t n) {
  Err e;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      CHECK(got[i] == want[i]);
      continue;
    }
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    e.max_abs = std::max(e.max_abs, diff);
    e.scale = std::max(e.scale, std::fabs(static_cast<double>(want[i])));
    num += diff * diff;
    den += static_cast<double>(want[i]) * want[i];
  }
  e.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}

/// Tolerances of the layer-level comparisons with the reference's intermediates.
template <class N>
struct Tol;
template <>
struct Tol<Fp32> {
  // The fp32 reference is reproduced up to float32 summation order and libm ulps: measured at most
  // 6.7e-7 relative to the largest value. No FP8/FP4 grid flip occurs in this data.
  static constexpr double max_rel = 1e-5;
  static constexpr double rel_l2 = 1e-5;
};
template <>
struct Tol<Bf16> {
  // The trunk blocks of tiny_a are reproduced bit for bit (and the q of every tiny_b trunk block,
  // whose bf16 intermediates are not in the repository, with the two-rounding bf16 mean of the
  // per-head norm that head_dim 96 exposes). In the MTP block (79 rows) PyTorch
  // computes the per-head q rsqrt of the last 28 (row, head) pairs in its scalar tail loop, which
  // rounds sqrt to bf16 before the reciprocal: one bf16 ulp in those heads' scale, rel L2 1.6e-3
  // of the block output. We implement the single rounding of the vectorised path.
  static constexpr double max_rel = 2e-2;
  static constexpr double rel_l2 = 5e-3;
};

bool verbose() {
  static const bool v = std::getenv("DSV4_TEST_REPORT") != nullptr;
  return v;
}

void check_err(const std::string& what, const Err& e, double max_rel, double rel_l2) {
  INFO(what << ": max abs " << e.max_abs << ", max rel " << e.max_rel() << ", rel L2 " << e.rel_l2);
  if (verbose()) {
    std::cout << what << ": max abs " << e.max_abs << ", max rel " << e.max_rel() << ", rel L2 "
              << e.rel_l2 << '\n';
  }
  CHECK(e.max_rel() <= max_rel);
  CHECK(e.rel_l2 <= rel_l2);
}

template <class N>
void check_close(const std::string& what, std::span<const float> got, std::span<const float> want) {
  REQUIRE(got.size() == want.size());
  check_err(what, compare(got.data(), want.data(), got.size()), Tol<N>::max_rel, Tol<N>::rel_l2);
}

std::set<std::int32_t> as_set(const std::int32_t* row, std::size_t n, std::int32_t offset = 0) {
  std::set<std::int32_t> s;
  for (std::size_t i = 0; i < n; ++i) {
    if (row[i] >= 0) s.insert(row[i] + offset);
  }
  return s;
}

/// Candidate lists: the first `exact` columns equal, the rest equal as sets (the order of a
/// selection carries no meaning).
void check_candidates(const std::vector<std::int32_t>& got, const std::vector<std::int32_t>& want,
                      std::size_t width, std::size_t exact) {
  REQUIRE(got.size() == want.size());
  REQUIRE(width > 0);
  std::size_t bad_rows = 0;
  for (std::size_t t = 0; t < got.size() / width; ++t) {
    const std::int32_t* g = got.data() + t * width;
    const std::int32_t* w = want.data() + t * width;
    const bool ok = std::equal(g, g + exact, w) &&
                    as_set(g + exact, width - exact) == as_set(w + exact, width - exact);
    if (!ok) ++bad_rows;
  }
  CHECK(bad_rows == 0);
}

std::vector<float> entries_of(const d::AttentionState& st, std::size_t first, std::size_t n) {
  std::vector<float> out;
  for (std::size_t j = first; j < first + n; ++j) {
    const auto e = st.compressed_entry(j);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

std::vector<float> keys_of(const d::AttentionState& st, std::size_t first, std::size_t n) {
  std::vector<float> out;
  for (std::size_t j = first; j < first + n; ++j) {
    const auto e = st.indexer().key(j);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

/// Runs x ([T, dim]) as one prefill; returns the output.
template <class N>
std::vector<float> run_prefill(const d::AttentionLayer<>& attn, const std::vector<float>& x,
                               d::AttentionState& st, d::AttentionTrace* tr = nullptr) {
  std::vector<float> out(x.size());
  attn.forward<N>(x, 0, st, out, tr);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prefill against the recorded intermediates

template <class N>
void check_prefill(const Golden& g) {
  for (const Block& b : blocks(g.cfg)) {
    CAPTURE(b.weights);
    const std::string tag = g.name + " " + N::act::name + " prefill " + b.weights;
    const auto w = d::load_attention_weights(g.weights, b.weights, g.cfg, b.layer);
    const d::AttentionLayer<> attn(w);
    d::AttentionState st = attn.make_state(g.cfg);
    const std::vector<float> x = floats(g.inter, b.prefill + "in");
    const std::size_t t_count = x.size() / g.dim();
    d::AttentionTrace tr;
    const std::vector<float> out = run_prefill<N>(attn, x, st, &tr);

    check_close<N>(tag + "out", out, floats(g.inter, b.prefill + "out"));
    check_close<N>(tag + "sparse_attn.q", tr.q, floats(g.inter, b.prefill + "sparse_attn.q"));
    check_close<N>(tag + "sparse_attn.kv", tr.kv, floats(g.inter, b.prefill + "sparse_attn.kv"));
    check_close<N>(tag + "sparse_attn.o", tr.o, floats(g.inter, b.prefill + "sparse_attn.o"));
    const std::size_t win_width = std::min(t_count, static_cast<std::size_t>(g.cfg.window_size));
    check_candidates(tr.idx, ints(g.inter, b.prefill + "sparse_attn.topk_idxs"), tr.idx_width,
                     w.indexer ? win_width : tr.idx_width);
    CHECK(st.next_pos() == static_cast<std::int64_t>(t_count));

    if (w.compressor) {
      const std::size_t c = t_count / static_cast<std::size_t>(w.ratio);
      REQUIRE(st.entries() == c);
      CHECK(tr.compressed.first == 0);
      CHECK(tr.compressed.count == static_cast<std::int64_t>(c));
      check_close<N>(tag + "compressor.out", entries_of(st, 0, c),
                     floats(g.inter, b.prefill + "compressor.out"));
    }
    if (w.indexer) {
      REQUIRE(tr.index.has_value());
      const std::size_t c = t_count / 4;
      check_close<N>(tag + "indexer.compressor.out", keys_of(st, 0, c),
                     floats(g.inter, b.prefill + "indexer.compressor.out"));
      check_close<N>(tag + "indexer.topk_input", tr.index->scores,
                     floats(g.inter, b.prefill + "indexer.topk_input"));
      // The recorded selections carry the prefill offset T; -1 marks invisible picks.
      const auto want = ints(g.inter, b.prefill + "indexer.topk_idxs");
      REQUIRE(want.size() == tr.index->topk.size());
      const std::size_t k = tr.index->k;
      std::size_t bad_rows = 0;
      for (std::size_t t = 0; t < t_count; ++t) {
        if (as_set(&tr.index->topk[t * k], k, static_cast<std::int32_t>(t_count)) !=
            as_set(&want[t * k], k))
          ++bad_rows;
      }
      CHECK(bad_rows == 0);
    }
  }
}

TEST_CASE_TEMPLATE("prefill of every tiny_a attention block matches the reference", N, Fp32, Bf16) {
  check_prefill<N>(tiny_a<N>());
}

TEST_CASE("prefill of every tiny_b attention block matches the reference (fp32)") {
  check_prefill<Fp32>(tiny_b_fp32());
}

// ---------------------------------------------------------------------------------------------
// Token-by-token decode against the recorded decode runs

/// Everything one decode run produced.
struct DecodeRun {
  std::vector<float> out;                          // [T, dim]: prefix rows then decoded rows
  std::vector<float> entries, keys;                // compressor entries / index keys emitted
  std::vector<std::int32_t> entry_pos, key_pos;    // positions that emitted them
  std::vector<std::set<std::int32_t>> selections;  // per decode step, offset by the window
  d::AttentionTrace last;                          // the last step's trace
};

template <class N>
DecodeRun run_decode(const Golden& g, const d::AttentionLayer<>& attn, const std::vector<float>& x,
                     std::size_t prefix) {
  const std::size_t dim = g.dim();
  const std::size_t t_count = x.size() / dim;
  const auto win = static_cast<std::int32_t>(g.cfg.window_size);
  d::AttentionState st = attn.make_state(g.cfg);
  DecodeRun r;
  r.out.resize(x.size());
  attn.forward<N>(std::span<const float>(x.data(), prefix * dim), 0, st,
                  std::span<float>(r.out.data(), prefix * dim));
  for (std::size_t p = prefix; p < t_count; ++p) {
    d::AttentionTrace& tr = r.last;
    attn.forward<N>(std::span<const float>(x.data() + p * dim, dim), static_cast<std::int64_t>(p),
                    st, std::span<float>(r.out.data() + p * dim, dim), &tr);
    CHECK(tr.compressed.count <= 1);
    if (tr.compressed.count == 1) {
      const auto j = static_cast<std::size_t>(tr.compressed.first);
      const auto e = entries_of(st, j, 1);
      r.entries.insert(r.entries.end(), e.begin(), e.end());
      r.entry_pos.push_back(static_cast<std::int32_t>(p));
      if (st.has_indexer()) {
        const auto k = keys_of(st, j, 1);
        r.keys.insert(r.keys.end(), k.begin(), k.end());
        r.key_pos.push_back(static_cast<std::int32_t>(p));
      }
    }
    if (tr.index) r.selections.push_back(as_set(tr.index->topk.data(), tr.index->k, win));
  }
  return r;
}

void check_decode_fp32(const Golden& g) {
  using N = Fp32;
  const std::size_t dim = g.dim();
  for (const int prefix : g.decode_prefixes) {
    const std::string dk = "decode_from_" + std::to_string(prefix) + ".";
    for (const Block& b : blocks(g.cfg)) {
      CAPTURE(prefix);
      CAPTURE(b.weights);
      const std::string tag = g.name + " fp32 " + dk + b.weights;
      const auto w = d::load_attention_weights(g.weights, b.weights, g.cfg, b.layer);
      const d::AttentionLayer<> attn(w);
      // The decode run's own block inputs were not recorded; the prefill's agree with them up to
      // float32 noise (fp32 decode logits differ from prefill logits by 3e-6).
      const std::vector<float> x = floats(g.inter, b.prefill + "in");
      const std::size_t t_count = x.size() / dim;
      const auto pu = static_cast<std::size_t>(prefix);
      const DecodeRun r = run_decode<N>(g, attn, x, pu);

      // Decoded rows against the reference's prefill output of the same positions.
      const std::vector<float> want_out = floats(g.inter, b.prefill + "out");
      check_err(tag + "out vs prefill out",
                compare(r.out.data() + pu * dim, want_out.data() + pu * dim, (t_count - pu) * dim),
                Tol<N>::max_rel, Tol<N>::rel_l2);
      // ... and against this implementation's own prefill: the same operations in the same order.
      {
        d::AttentionState st = attn.make_state(g.cfg);
        CHECK(run_prefill<N>(attn, x, st) == r.out);
      }
      if (b.decode.empty()) continue;  // no decode intermediates for the MTP block

      const std::string dp = dk + b.decode;
      if (w.compressor) {
        check_close<N>(tag + "compressor.out", r.entries, floats(g.inter, dp + "compressor.out"));
        CHECK(r.entry_pos == ints(g.inter, dp + "compressor.positions"));
      }
      if (w.indexer) {
        check_close<N>(tag + "indexer.compressor.out", r.keys,
                       floats(g.inter, dp + "indexer.compressor.out"));
        CHECK(r.key_pos == ints(g.inter, dp + "indexer.compressor.positions"));
        const auto want = ints(g.inter, dp + "indexer.topk_idxs");
        const auto k = static_cast<std::size_t>(g.cfg.index_topk);
        REQUIRE(want.size() == r.selections.size() * k);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < r.selections.size(); ++i) {
          if (as_set(&want[i * k], k) != r.selections[i]) ++bad;
        }
        CHECK(bad == 0);
      }
      // The sparse-attention call of the last step: q, the whole cache, the candidate row.
      const std::string sk =
          dk + "step" + std::to_string(t_count - 1) + "." + b.decode + "sparse_attn.";
      check_close<N>(tag + "last step q", r.last.q, floats(g.inter, sk + "q"));
      check_close<N>(tag + "last step kv", r.last.kv, floats(g.inter, sk + "kv"));
      check_candidates(r.last.idx, ints(g.inter, sk + "topk_idxs"), r.last.idx_width,
                       static_cast<std::size_t>(g.cfg.window_size));
    }
  }
}

TEST_CASE("decode token by token matches the recorded decode runs (fp32, tiny_a)") {
  check_decode_fp32(tiny_a_fp32());
}

TEST_CASE("decode token by token matches the recorded decode runs (fp32, tiny_b)") {
  check_decode_fp32(tiny_b_fp32());
}

TEST_CASE("decode token by token in bf16 (tiny_a)") {
  using N = Bf16;
  const Golden& g = tiny_a_bf16();
  const std::size_t dim = g.dim();
  for (const int prefix : g.decode_prefixes) {
    const std::string dk = "decode_from_" + std::to_string(prefix) + ".";
    std::size_t flips = 0;
    for (const Block& b : blocks(g.cfg)) {
      CAPTURE(prefix);
      CAPTURE(b.weights);
      const std::string tag = g.name + " bf16 " + dk + b.weights;
      const auto w = d::load_attention_weights(g.weights, b.weights, g.cfg, b.layer);
      const d::AttentionLayer<> attn(w);
      const std::vector<float> x = floats(g.inter, b.prefill + "in");
      const std::size_t t_count = x.size() / dim;
      const auto pu = static_cast<std::size_t>(prefix);
      const DecodeRun r = run_decode<N>(g, attn, x, pu);
      const std::vector<float> want_out = floats(g.inter, b.prefill + "out");
      check_err(tag + "out vs prefill out",
                compare(r.out.data() + pu * dim, want_out.data() + pu * dim, (t_count - pu) * dim),
                Tol<N>::max_rel, Tol<N>::rel_l2);
      {
        d::AttentionState st = attn.make_state(g.cfg);
        CHECK(run_prefill<N>(attn, x, st) == r.out);
      }
      if (b.decode.empty()) continue;
      // The bf16 decode run's block inputs differ from the prefill's by bf16 noise of the earlier
      // blocks (they were not recorded), and FP8/FP4 simulation turns that into whole grid steps
      // in some elements: measured rel L2 1.7e-2 (entries) and 4.4e-2 (index keys).
      const std::string dp = dk + b.decode;
      if (w.compressor) {
        const Err e = compare(r.entries.data(), floats(g.inter, dp + "compressor.out").data(),
                              r.entries.size());
        check_err(tag + "compressor.out", e, 0.15, 0.05);
        CHECK(r.entry_pos == ints(g.inter, dp + "compressor.positions"));
      }
      if (w.indexer) {
        const auto want_keys = floats(g.inter, dp + "indexer.compressor.out");
        REQUIRE(want_keys.size() == r.keys.size());
        check_err(tag + "indexer.compressor.out",
                  compare(r.keys.data(), want_keys.data(), r.keys.size()), 0.25, 0.1);
        const auto want = ints(g.inter, dp + "indexer.topk_idxs");
        const auto k = static_cast<std::size_t>(g.cfg.index_topk);
        REQUIRE(want.size() == r.selections.size() * k);
        for (std::size_t i = 0; i < r.selections.size(); ++i) {
          if (as_set(&want[i * k], k) != r.selections[i]) {
            ++flips;
            // The one known flip of the bf16 reference (golden README, "Divergences" item 4).
            CHECK(b.layer == 1);
            CHECK(i + pu == 79);
          }
        }
      }
    }
    CHECK(flips <= 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Chunked prefill, compile-time variants, the compressor alone

TEST_CASE_TEMPLATE("a prefill split into chunks equals the whole prefill", N, Fp32, Bf16) {
  const Golden& g = tiny_a<N>();
  for (const Block& b : blocks(g.cfg)) {
    CAPTURE(b.weights);
    const d::AttentionLayer<> attn(d::load_attention_weights(g.weights, b.weights, g.cfg, b.layer));
    const std::vector<float> x = floats(g.inter, b.prefill + "in");
    d::AttentionState whole = attn.make_state(g.cfg);
    const std::vector<float> want = run_prefill<N>(attn, x, whole);

    d::AttentionState st = attn.make_state(g.cfg);
    std::vector<float> out(x.size());
    const std::size_t dim = g.dim();
    std::size_t pos = 0;
    for (std::size_t len : {5, 1, 20, 3, 17}) {
      const std::size_t n = std::min(len, x.size() / dim - pos);
      attn.forward<N>(std::span<const float>(x.data() + pos * dim, n * dim),
                      static_cast<std::int64_t>(pos), st,
                      std::span<float>(out.data() + pos * dim, n * dim));
      pos += n;
    }
    const std::size_t rest = x.size() / dim - pos;
    attn.forward<N>(std::span<const float>(x.data() + pos * dim, rest * dim),
                    static_cast<std::int64_t>(pos), st,
                    std::span<float>(out.data() + pos * dim, rest * dim));
    CHECK(out == want);
    CHECK(st.entries() == whole.entries());
    for (std::size_t j = 0; j < st.entries(); ++j) {
      const auto a = st.compressed_entry(j);
      const auto c = whole.compressed_entry(j);
      CHECK(std::equal(a.begin(), a.end(), c.begin()));
    }
  }
}

TEST_CASE("variants fixed at compile time equal the run-time dispatch") {
  using N = Fp32;
  const Golden& g = tiny_a_fp32();
  const std::size_t dim = g.dim();

  auto run_both = [&]<class V>(V, int layer) {
    CAPTURE(layer);
    const Block& b = block(g.cfg, layer);
    const auto w = d::load_attention_weights(g.weights, b.weights, g.cfg, layer);
    const d::Attention<V> fixed(w);
    const d::AttentionLayer<> dynamic(w);
    const std::vector<float> x = floats(g.inter, b.prefill + "in");
    d::AttentionState s1 = fixed.make_state(g.cfg);
    d::AttentionState s2 = dynamic.make_state(g.cfg);
    std::vector<float> o1(x.size()), o2(x.size());
    fixed.template forward<N>(x, 0, s1, o1);
    dynamic.forward<N>(x, 0, s2, o2);
    CHECK(o1 == o2);
  };
  run_both(d::attention::SlidingWindow{}, 0);
  run_both(d::attention::Csa{}, 1);
  run_both(d::attention::Hca{}, 2);
  CHECK(d::AttentionLayer<>(d::load_attention_weights(g.weights, "layers.1.attn.", g.cfg, 1))
            .kind() == d::AttentionKind::csa);

  // A variant refuses a block of another ratio.
  const auto w0 = d::load_attention_weights(g.weights, "layers.0.attn.", g.cfg, 0);
  const auto w1 = d::load_attention_weights(g.weights, "layers.1.attn.", g.cfg, 1);
  const auto w2 = d::load_attention_weights(g.weights, "layers.2.attn.", g.cfg, 2);
  CHECK_THROWS_AS(d::Attention<d::attention::Csa>{w0}, d::ConfigError);
  CHECK_THROWS_AS(d::Attention<d::attention::Csa>{w2}, d::ConfigError);
  CHECK_THROWS_AS(d::Attention<d::attention::SlidingWindow>{w1}, d::ConfigError);
  CHECK_THROWS_AS(d::Attention<d::attention::Hca>{w0}, d::ConfigError);

  // Hca on a ratio-4 block attends to every visible entry: while at most index_topk entries are
  // visible the indexer selects all of them too, so both agree up to summation order.
  const d::Attention<d::attention::Hca> dense(w1);
  const d::Attention<d::attention::Csa> sparse(w1);
  const std::vector<float> x = floats(g.inter, "prefill.layers.1.attn.in");
  d::AttentionState s1 = dense.make_state(g.cfg);
  d::AttentionState s2 = sparse.make_state(g.cfg);
  std::vector<float> o1(x.size()), o2(x.size());
  dense.forward<N>(x, 0, s1, o1);
  sparse.forward<N>(x, 0, s2, o2);
  const std::size_t all_selected = 4 * static_cast<std::size_t>(g.cfg.index_topk + 1) - 1;
  const Err same = compare(o1.data(), o2.data(), all_selected * dim);
  CHECK(same.max_rel() <= 1e-6);
  const Err later = compare(o1.data() + all_selected * dim, o2.data() + all_selected * dim,
                            x.size() - all_selected * dim);
  CHECK(later.max_rel() > 1e-3);  // then the selection is active
}

TEST_CASE_TEMPLATE("the compressor alone: one call or token by token, against the reference", N,
                   Fp32, Bf16) {
  const Golden& g = tiny_a<N>();
  const int layer = 2;  // HCA, ratio 16
  const auto w = d::load_attention_weights(g.weights, "layers.2.attn.", g.cfg, layer);
  REQUIRE(w.compressor.has_value());
  const auto& cw = *w.compressor;
  CHECK(cw.ratio == 16);
  CHECK_FALSE(cw.overlap());
  const std::vector<float> x = floats(g.inter, "prefill.layers.2.attn.in");
  const std::size_t dim = g.dim();
  const std::size_t t_count = x.size() / dim;
  const auto dh = static_cast<std::size_t>(cw.head_dim);
  const std::size_t cap = static_cast<std::size_t>(g.cfg.max_seq_len) / 16;

  std::vector<float> a(cap * dh), b(cap * dh);
  d::CompressorState sa(16, cw.head_dim), sb(16, cw.head_dim);
  const auto e = d::compressor_forward<N>(cw, w.rope, d::ConstView2<float>(x.data(), t_count, dim),
                                          0, sa, d::View2<float>(a.data(), cap, dh));
  CHECK(e.first == 0);
  CHECK(e.count == static_cast<std::int64_t>(t_count / 16));
  for (std::size_t t = 0; t < t_count; ++t) {
    d::compressor_forward<N>(cw, w.rope, d::ConstView2<float>(x.data() + t * dim, 1, dim),
                             static_cast<std::int64_t>(t), sb, d::View2<float>(b.data(), cap, dh));
  }
  CHECK(a == b);
  a.resize(e.count * dh);
  check_close<N>(g.name + " compressor alone", a,
                 floats(g.inter, "prefill.layers.2.attn.compressor.out"));
}

TEST_CASE("indexer selection: ties go to the lower entry id") {
  std::vector<std::int32_t> order(4);
  const std::vector<float> s = {1.0f, 3.0f, 3.0f, -std::numeric_limits<float>::infinity(), 3.0f};
  d::ReferenceBackend{}.top_k(s, order);
  CHECK(order[0] == 1);
  CHECK(order[1] == 2);
  CHECK(order[2] == 4);
  CHECK(order[3] == 0);
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_CASE("attention: wrong shapes, positions and states are clear errors") {
  using N = Fp32;
  const Golden& g = tiny_a_fp32();
  const std::size_t dim = g.dim();
  const d::AttentionLayer<> attn(d::load_attention_weights(g.weights, "layers.1.attn.", g.cfg, 1));
  const std::vector<float> x = floats(g.inter, "prefill.layers.1.attn.in");
  d::AttentionState st = attn.make_state(g.cfg);
  std::vector<float> out(x.size());

  // x not [T, dim], out of another size, no token.
  CHECK_THROWS_AS(attn.forward<N>(std::span<const float>(x.data(), dim + 3), 0, st,
                                  std::span<float>(out.data(), dim + 3)),
                  d::ShapeError);
  CHECK_THROWS_AS(attn.forward<N>(std::span<const float>(x.data(), 2 * dim), 0, st,
                                  std::span<float>(out.data(), dim)),
                  d::ShapeError);
  CHECK_THROWS_AS(attn.forward<N>(std::span<const float>(), 0, st, std::span<float>()),
                  d::ShapeError);

  // Positions must continue the state's sequence.
  const std::span<const float> one(x.data(), dim);
  const std::span<float> one_out(out.data(), dim);
  CHECK_THROWS_AS(attn.forward<N>(one, 5, st, one_out), d::InputError);
  attn.forward<N>(std::span<const float>(x.data(), 10 * dim), 0, st,
                  std::span<float>(out.data(), 10 * dim));
  CHECK(st.next_pos() == 10);
  CHECK_THROWS_AS(attn.forward<N>(one, 11, st, one_out), d::InputError);
  CHECK_THROWS_AS(attn.forward<N>(one, 9, st, one_out), d::InputError);
  CHECK_THROWS_AS(attn.forward<N>(one, -1, st, one_out), d::InputError);
  CHECK_NOTHROW(attn.forward<N>(one, 10, st, one_out));
  CHECK_NOTHROW(attn.forward<N>(one, 0, st, one_out));  // a new sequence
  CHECK(st.next_pos() == 1);

  // Positions beyond max_seq_len (128): the message names the limit.
  std::vector<float> big(120 * dim, 0.25f), big_out(big.size());
  attn.forward<N>(big, 0, st, big_out);
  try {
    attn.forward<N>(std::span<const float>(big.data(), 9 * dim), 120, st,
                    std::span<float>(big_out.data(), 9 * dim));
    FAIL("expected InputError");
  } catch (const d::InputError& e) {
    CHECK(std::string(e.what()).find("max_seq_len = 128") != std::string::npos);
  }
  for (std::int64_t p = 120; p < 128; ++p) attn.forward<N>(one, p, st, one_out);
  CHECK_THROWS_AS(attn.forward<N>(one, 128, st, one_out), d::InputError);

  // A state made for another layer.
  const d::AttentionLayer<> swa(d::load_attention_weights(g.weights, "layers.0.attn.", g.cfg, 0));
  d::AttentionState swa_state = swa.make_state(g.cfg);
  CHECK_THROWS_AS(attn.forward<N>(one, 0, swa_state, one_out), d::ShapeError);
  d::ModelConfig longer = g.cfg;
  longer.max_seq_len = 256;
  d::AttentionState other = attn.make_state(longer);
  CHECK_THROWS_AS(attn.forward<N>(one, 0, other, one_out), d::ShapeError);
}

/// An in-memory safetensors file of (name, dtype, shape, bytes) tensors.
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> bytes;
};

SafetensorsFile make_file(const std::vector<TensorSpec>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<std::byte> data;
  for (const TensorSpec& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';
  std::vector<std::byte> file(8 + h.size());
  const std::uint64_t n = h.size();
  std::memcpy(file.data(), &n, 8);
  std::memcpy(file.data() + 8, h.data(), h.size());
  file.insert(file.end(), data.begin(), data.end());
  return SafetensorsFile(std::move(file), "in-memory");
}

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const d::Error& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("loading: shapes, dtypes and names are checked and named in the error") {
  const Golden& g = tiny_a_fp32();
  // A config that does not match the checkpoint.
  d::ModelConfig wrong = g.cfg;
  wrong.q_lora_rank = 32;
  std::string msg =
      error_of([&] { d::load_attention_weights(g.weights, "layers.1.attn.", wrong, 1); });
  CHECK(msg.find("layers.1.attn.wq_a.weight") != std::string::npos);
  CHECK(msg.find("[32, 64]") != std::string::npos);
  CHECK_THROWS_AS(d::load_attention_weights(g.weights, "layers.1.attn.", wrong, 1), d::FormatError);
  // The layer's ratio decides which tensors must exist: ratio 4 on an SWA block lacks them.
  d::ModelConfig swapped = g.cfg;
  swapped.compress_ratios[0] = 4;
  msg = error_of([&] { d::load_attention_weights(g.weights, "layers.0.attn.", swapped, 0); });
  CHECK(msg.find("layers.0.attn.compressor.wkv.weight") != std::string::npos);
  CHECK_THROWS_AS(d::load_attention_weights(g.weights, "layers.0.attn.", swapped, 0),
                  d::FormatError);
  CHECK_THROWS_AS(d::load_attention_weights(g.weights, "layers.9.attn.", g.cfg, 1), d::FormatError);
  CHECK_THROWS_AS(d::load_attention_weights(g.weights, "layers.1.attn.", g.cfg, 7), d::ConfigError);
  d::ModelConfig odd = g.cfg;
  odd.o_groups = 3;
  CHECK_THROWS_AS(d::load_attention_weights(g.weights, "layers.1.attn.", odd, 1), d::ConfigError);

  // Wrong dtypes.
  const auto sink_i32 = make_file({{"a.attn_sink", "I32", {4}, bytes_of(std::vector<int>(4))}});
  msg = error_of([&] { d::io::load_float(sink_i32, "a.attn_sink", {4}); });
  CHECK(msg.find("a.attn_sink") != std::string::npos);
  CHECK(msg.find("I32") != std::string::npos);

  // wo_a: the release's FP8 codes with 128x128 block scales are multiplied out (as convert.py
  // does); the scales must be present; plain dtypes must hold bf16 values.
  const std::vector<std::uint8_t> codes = {0x38, 0xB8, 0x40, 0x30};  // e4m3: 1, -1, 2, 0.5
  std::vector<std::byte> cb(codes.size());
  std::memcpy(cb.data(), codes.data(), codes.size());
  const std::vector<std::byte> scale = {std::byte{126}};  // ue8m0: 2^-1
  const auto fp8 =
      make_file({{"q.weight", "F8_E4M3", {2, 2}, cb},
                 {"q.scale", "F8_E8M0", {1, 1}, scale},
                 {"r.weight", "F8_E4M3", {2, 2}, cb},
                 {"s.weight", "F32", {1, 2}, bytes_of(std::vector<float>{1.0f, 1.0f + 0x1p-12f})}});
  std::vector<float> q;
  for (d::bf16 v : d::load_wo_a(fp8, "q.weight", 2, 2)) q.push_back(v.to_float());
  CHECK(q == std::vector<float>{0.5f, -0.5f, 1.0f, 0.25f});
  msg = error_of([&] { d::load_wo_a(fp8, "r.weight", 2, 2); });
  CHECK(msg.find("r.scale") != std::string::npos);
  CHECK_THROWS_AS(d::load_wo_a(fp8, "s.weight", 1, 2), d::FormatError);
  CHECK_THROWS_AS(d::load_wo_a(fp8, "q.weight", 4, 1), d::FormatError);
}

}  // namespace
