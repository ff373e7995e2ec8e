// cpu::Backend (backends/cpu/include/dsv4/cpu/backend.hpp) op by op against the reference backend:
// linear layers of every weight format under both semantics and both activation precisions, the
// elementwise and attention ops, with odd sizes (K not a multiple of the vector width where the
// format allows, output columns and rows not multiples of the tile or the thread count), on 1
// and 3 threads (bit-identical to each other) and on every compiled SIMD target.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/backend/reference.hpp>
#include <dsv4/cpu/backend.hpp>
#include <dsv4/cpu/kernels.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/layers/mhc.hpp>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cpu/simd_targets.hpp"

namespace {

namespace d = dsv4;

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// max |a - b| / (Σ_k |x_k·w_k| of that output), the error relative to the dot's magnitude.
struct LinearRun {
  std::vector<float> ref, cpu1, cpu3;
};

template <class N, class L>
LinearRun run_linear(const L& w, const std::vector<float>& x, std::size_t rows) {
  const std::size_t in = w.in_features(), out = w.out_features();
  const d::ConstView2<float> xv(x.data(), rows, in);
  LinearRun r;
  r.ref.assign(rows * out, 0.0f);
  r.cpu1.assign(rows * out, 0.0f);
  r.cpu3.assign(rows * out, 0.0f);
  d::ReferenceBackend{}.linear<N>(w, xv, d::View2<float>(r.ref.data(), rows, out));
  d::cpu::Backend(1).linear<N>(w, xv, d::View2<float>(r.cpu1.data(), rows, out));
  d::cpu::Backend(3).linear<N>(w, xv, d::View2<float>(r.cpu3.data(), rows, out));
  return r;
}

/// max over outputs of |cpu - ref| / max(Σ_k |x_k|·|w_k|, tiny): the dense GEMMs' rounding error
/// relative to the scale of the dot product.
double relative_error(const std::vector<float>& got, const std::vector<float>& want,
                      const std::vector<float>& x, const std::vector<float>& w, std::size_t rows,
                      std::size_t out, std::size_t in) {
  double worst = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t o = 0; o < out; ++o) {
      double mag = 0;
      for (std::size_t k = 0; k < in; ++k) mag += std::abs(double(x[r * in + k]) * w[o * in + k]);
      const double e = std::abs(double(got[r * out + o]) - want[r * out + o]);
      worst = std::max(worst, e / std::max(mag, 1e-30));
    }
  }
  return worst;
}

// x quantized to the activation format A and back: the activation as a weight's partner sees it
template <class A>
std::vector<float> partner_rounded(const std::vector<float>& x) {
  std::vector<float> xa(x.size());
  for (std::size_t i = 0; i < x.size(); i += A::block_elems) {
    typename A::block_type blk{};
    d::partner_quantize<A>(x.data() + i, blk);
    A::dequantize(blk, xa.data() + i);
  }
  return xa;
}

// the shape of a test weight of format F under semantics S: K the smallest multiple of every
// block the layer needs, times 3 (or 67, odd, for the one-value formats)
template <class F, class S>
std::size_t test_in() {
  std::size_t need = F::block_elems;
  if constexpr (std::same_as<S, d::PartnerDot>) need = std::max(need, F::activation::block_elems);
  return need == 1 ? 67 : 3 * need;
}
constexpr std::size_t kOut = 37;  // not a multiple of the tile (16) or of 2 or 3 threads
constexpr std::size_t kRows = 7;  // not a multiple of the 4-row GEMM tile

// the formats cpu::Backend dots with its integer SIMD kernels: those with ggml's x86 order
// (bit for bit F::dot_x86, which the reference's PartnerDot uses) and Q3_K / IQ4_XS (fp32 lanes,
// not bit-identical to F::dot)
template <class F>
constexpr bool kLanesOnly = std::same_as<F, d::Q3_K> || std::same_as<F, d::IQ4_XS>;
template <class F>
constexpr bool kIntegerSimd = kLanesOnly<F> || d::X86DotFormat<F>;

}  // namespace

TEST_CASE_TEMPLATE("cpu::Backend dense linear against the reference", T, float, d::bf16) {
  // DenseLinear<float|bf16>: lane-parallel fp32 sums, so not bit-exact; measured relative error
  // (|Δ| / Σ|x·w|) up to 2.1e-7 over the targets, the bound 10x of the fp32 epsilon 1.2e-7
  for (const std::size_t in : {std::size_t{1}, std::size_t{7}, std::size_t{67}, std::size_t{256}}) {
    CAPTURE(in);
    const auto wf = random_values(kOut * in, 1);
    std::vector<T> wt(wf.begin(), wf.end());
    std::vector<float> wv(wt.begin(), wt.end());  // the weight's values as float
    const d::DenseLinear<T> w(wt, kOut, in);
    const auto x = random_values(kRows * in, 2);
    d::test::for_each_simd_target([&] {
      const auto r = run_linear<d::PlainFp32Numerics>(w, x, kRows);
      CHECK(same_bits(r.cpu1, r.cpu3));
      const double rel = relative_error(r.cpu1, r.ref, x, wv, kRows, kOut, in);
      MESSAGE("dense relative error ", rel);
      CHECK(rel <= 1.2e-6);
      // bf16 activations: the result rounded to bf16 after the sum (one bf16 step at most)
      const auto b = run_linear<d::ReferenceNumerics>(w, x, kRows);
      CHECK(same_bits(b.cpu1, b.cpu3));
      for (std::size_t i = 0; i < b.ref.size(); ++i) {
        const float step = std::abs(b.ref[i]) * 0x1p-7f;
        CHECK(std::abs(b.cpu1[i] - b.ref[i]) <= step + 1e-6f);
      }
    });
  }
}

TEST_CASE_TEMPLATE_DEFINE("cpu::Backend Linear<F, PartnerDot> against the reference", F,
                          partner_dot) {
  using L = d::Linear<F, d::PartnerDot>;
  const std::size_t in = test_in<F, d::PartnerDot>();
  const auto wf = random_values(kOut * in, 3);
  const auto w = L::quantize(d::ConstView2<float>(wf.data(), kOut, in));
  const auto x = random_values(kRows * in, 4);
  std::vector<float> wd(kOut * in);
  for (std::size_t o = 0; o < kOut; ++o) w.dequantize_row(o, wd.data() + o * in);
  // the activation as the weight's partner sees it (for the dense-GEMM formats' bound)
  const auto xa = partner_rounded<typename F::activation>(x);
  const d::AnyLinear any = w;
  d::test::for_each_simd_target([&] {
    const auto r = run_linear<d::PlainFp32Numerics>(w, x, kRows);
    CHECK(same_bits(r.cpu1, r.cpu3));
    if constexpr (std::same_as<F, d::F32> || std::same_as<F, d::F16> || std::same_as<F, d::BF16>) {
      // the dense GEMM on the partner-rounded activation (the dense test measures up to 2.1e-7)
      CHECK(relative_error(r.cpu1, r.ref, xa, wd, kRows, kOut, in) <= 1.2e-6);
    } else if constexpr (kLanesOnly<F>) {
      // exact integer block sums, the blocks accumulated in fp32 lanes: the reference's block
      // dot up to fp32 rounding (measured up to 6.3e-8 relative to Σ|x·w|)
      const double rel = relative_error(r.cpu1, r.ref, xa, wd, kRows, kOut, in);
      MESSAGE(F::name, " relative error ", rel);
      CHECK(rel <= 5e-7);
    } else {
      // the reference's own block dot (dot_x86 for the 32-value formats) on the same quantized
      // activation: bit for bit
      CHECK(same_bits(r.cpu1, r.ref));
    }
    std::vector<float> via_any(kRows * kOut);
    d::cpu::Backend(2).linear<d::PlainFp32Numerics>(any, d::ConstView2<float>(x.data(), kRows, in),
                                                    d::View2<float>(via_any.data(), kRows, kOut));
    CHECK(same_bits(via_any, r.cpu1));
  });
}
TEST_CASE_TEMPLATE_APPLY(partner_dot, d::LinearFormats::tuple);

TEST_CASE_TEMPLATE("cpu::Backend integer dots: GEMV and GEMM rows on 1, 2 and 3 threads", F,
                   d::Q8_0, d::Q4_0, d::Q4_1, d::Q5_0, d::Q5_1, d::IQ4_NL, d::MXFP4, d::Q2_K,
                   d::Q3_K, d::Q4_K, d::Q5_K, d::Q6_K, d::IQ4_XS) {
  // sizes large enough to be split over the threads: an odd block count (37 blocks of 32 values,
  // 5 super-blocks of 256), output columns not a multiple of the tile or the thread count, one
  // activation row (the GEMV; IQ4_NL and MXFP4 pair their blocks, the odd one last; the k-quants
  // four weight rows at a time), 6 (a group of 4 and 2 single rows) and 21 (the packed tile GEMM
  // where the CPU has AVX-512 VNNI: the 32-value formats two rows at a time or one, the k-quants
  // one; also run with the packed kernels switched off)
  static_assert(kIntegerSimd<F>);
  using L = d::Linear<F, d::PartnerDot>;
  const std::size_t in = F::block_elems == 32 ? 32 * 37 : 256 * 5;
  const std::size_t out = 67;
  const auto wf = random_values(out * in, 7);
  const auto w = L::quantize(d::ConstView2<float>(wf.data(), out, in));
  std::vector<float> wd(out * in);
  for (std::size_t o = 0; o < out; ++o) w.dequantize_row(o, wd.data() + o * in);
  struct Restore {
    ~Restore() { d::cpu::kernels::allow_packed_gemm(true); }
  } restore;
  for (const std::size_t rows : {std::size_t{1}, std::size_t{6}, std::size_t{21}}) {
    CAPTURE(rows);
    const auto x = random_values(rows * in, 8 + static_cast<std::uint32_t>(rows));
    const auto xa = partner_rounded<typename F::activation>(x);
    const d::ConstView2<float> xv(x.data(), rows, in);
    std::vector<float> ref(rows * out);
    d::ReferenceBackend{}.linear<d::PlainFp32Numerics>(w, xv,
                                                       d::View2<float>(ref.data(), rows, out));
    for (const bool packed : {true, false}) {
      CAPTURE(packed);
      d::cpu::kernels::allow_packed_gemm(packed);
      d::test::for_each_simd_target([&] {
        std::vector<float> y[3];
        for (int t = 0; t < 3; ++t) {
          y[t].assign(rows * out, 0.0f);
          d::cpu::Backend(t + 1).linear<d::PlainFp32Numerics>(
              w, xv, d::View2<float>(y[t].data(), rows, out));
        }
        CHECK(same_bits(y[0], y[1]));
        CHECK(same_bits(y[0], y[2]));
        if constexpr (kLanesOnly<F>) {
          // as the test above (measured up to 4.6e-8 relative to Σ|x·w| here)
          const double rel = relative_error(y[0], ref, xa, wd, rows, out, in);
          MESSAGE(F::name, " relative error ", rel);
          CHECK(rel <= 5e-7);
        } else {
          // every kernel (rows, four-row GEMV, packed tile) is the format's dot_x86
          CHECK(same_bits(y[0], ref));
        }
        // a weight row alone (the one-row kernels) gives the bits it gives among the others
        // (the GEMV's four-row kernels, the tiles)
        if (rows == 1) {
          const std::size_t nb = in / F::block_elems;
          bool same = true;
          for (const std::size_t o :
               {std::size_t{0}, std::size_t{5}, std::size_t{33}, std::size_t{63}, out - 1}) {
            const auto one = L::view(w.blocks().subspan(o * nb, nb), 1, in);
            float y1 = 0;
            d::cpu::Backend(1).linear<d::PlainFp32Numerics>(one, xv, d::View2<float>(&y1, 1, 1));
            same =
                same && std::bit_cast<std::uint32_t>(y1) == std::bit_cast<std::uint32_t>(y[0][o]);
          }
          CHECK(same);
        }
      });
    }
  }
}

TEST_CASE_TEMPLATE(
    "cpu::Backend F32 / F16 PartnerDot with K a multiple of 16: llama.cpp's GEMM order", F, d::F32,
    d::F16) {
  // F::dot_x86 (16 FMA lanes, reduced as _mm512_reduce_add_ps) on every target and thread count
  using L = d::Linear<F, d::PartnerDot>;
  for (const std::size_t in : {std::size_t{16}, std::size_t{256}, std::size_t{272}}) {
    CAPTURE(in);
    const auto wf = random_values(kOut * in, 21);
    const auto w = L::quantize(d::ConstView2<float>(wf.data(), kOut, in));
    for (const std::size_t rows : {std::size_t{1}, kRows}) {
      const auto x = random_values(rows * in, 22);
      d::test::for_each_simd_target([&] {
        const auto r = run_linear<d::PlainFp32Numerics>(w, x, rows);
        CHECK(same_bits(r.cpu1, r.ref));
        CHECK(same_bits(r.cpu3, r.ref));
      });
    }
  }
}

TEST_CASE_TEMPLATE(
    "cpu::Backend repacked weights: llama.cpp's GEMM and GEMV orders, the reference's bits", F,
    d::Q4_0, d::Q2_K, d::Q4_K) {
  // Linear::repacked (F::dot_repacked): as a mul_mat the first n − n % 4 rows take the GEMM order,
  // the rest the GEMV order; as a mul_mat_id every row the GEMV order. 1 row (GEMV), 7 (4 GEMM +
  // 3 GEMV), 21 (20 + 1); 72 outputs (a multiple of 8, not of the tile or the thread count).
  static_assert(d::RepackedDotFormat<F>);
  using L = d::Linear<F, d::PartnerDot>;
  const std::size_t in = F::block_elems == 32 ? 32 * 37 : 256 * 5;
  const std::size_t out = 72;
  const auto wf = random_values(out * in, 17);
  const auto plain = L::quantize(d::ConstView2<float>(wf.data(), out, in));
  for (const auto how : {d::GgmlRepack::mul_mat, d::GgmlRepack::mul_mat_id}) {
    const L w = plain.repacked(how);
    for (const std::size_t rows : {std::size_t{1}, std::size_t{7}, std::size_t{21}}) {
      CAPTURE(rows);
      const auto x = random_values(rows * in, 18 + static_cast<std::uint32_t>(rows));
      const d::ConstView2<float> xv(x.data(), rows, in);
      std::vector<float> ref(rows * out);
      d::ReferenceBackend{}.linear<d::PlainFp32Numerics>(w, xv,
                                                         d::View2<float>(ref.data(), rows, out));
      std::vector<float> vec_dot(rows * out);
      d::ReferenceBackend{}.linear<d::PlainFp32Numerics>(
          plain, xv, d::View2<float>(vec_dot.data(), rows, out));
      if (!std::is_same_v<F, d::Q4_0> || rows > 1) CHECK(!same_bits(ref, vec_dot));
      d::test::for_each_simd_target([&] {
        for (int t = 1; t <= 3; ++t) {
          std::vector<float> y(rows * out);
          d::cpu::Backend(t).linear<d::PlainFp32Numerics>(w, xv,
                                                          d::View2<float>(y.data(), rows, out));
          CHECK(same_bits(y, ref));
        }
      });
    }
  }
}

TEST_CASE_TEMPLATE("cpu::Backend native FP8/FP4 dots: bit for bit the reference on 1, 2, 3 threads",
                   F, d::Fp8B128, d::Fp4G32) {
  // the vectorised exact block sums give the formats' own dots: odd block counts (5 activation
  // blocks of 128), output columns not a multiple of the tile or the thread count, 1 and 6
  // activation rows; some weights and activations tiny so that subnormal E4M3 codes occur
  using L = d::Linear<F, d::PartnerDot>;
  const std::size_t in = 128 * 5, out = 67;
  auto wf = random_values(out * in, 21);
  for (std::size_t i = 0; i < wf.size(); i += 13) wf[i] *= 1e-3f;
  const auto w = L::quantize(d::ConstView2<float>(wf.data(), out, in));
  for (const std::size_t rows : {std::size_t{1}, std::size_t{6}}) {
    CAPTURE(rows);
    auto x = random_values(rows * in, 22 + static_cast<std::uint32_t>(rows), 3.0f);
    for (std::size_t i = 0; i < x.size(); i += 7) x[i] *= 1e-4f;
    const d::ConstView2<float> xv(x.data(), rows, in);
    std::vector<float> ref(rows * out);
    d::ReferenceBackend{}.linear<d::PlainFp32Numerics>(w, xv,
                                                       d::View2<float>(ref.data(), rows, out));
    d::test::for_each_simd_target([&] {
      for (int t = 1; t <= 3; ++t) {
        CAPTURE(t);
        std::vector<float> y(rows * out, 0.0f);
        d::cpu::Backend(t).linear<d::PlainFp32Numerics>(w, xv,
                                                        d::View2<float>(y.data(), rows, out));
        CHECK(same_bits(y, ref));
      }
    });
  }
}

TEST_CASE("cpu kernels: sparse attention of all heads at once is each head's alone, bit for bit") {
  // 7 heads (a group of four, then three), an odd head dimension (a vector tail), 150 slots
  // (three chunks, the last partial) with unused (-1) slots and repeated rows; both P modes
  const std::size_t heads = 7, d = 67, k = 150, kv_rows = 40;
  const auto q = random_values(heads * d, 31, 0.5f);
  const auto kv = random_values(kv_rows * d, 32);
  const auto sinks = random_values(heads, 33);
  std::vector<std::int32_t> idx(k);
  for (std::size_t i = 0; i < k; ++i)
    idx[i] = i % 9 == 4 ? -1 : static_cast<std::int32_t>((i * 7) % kv_rows);
  d::test::for_each_simd_target([&] {
    for (const bool round_p : {false, true}) {
      CAPTURE(round_p);
      std::vector<float> all(heads * d), one(heads * d), acc(heads * d);
      d::cpu::kernels::sparse_attention_heads(q.data(), heads, kv.data(), idx.data(), k, d,
                                              sinks.data(), 0.125f, round_p, all.data(),
                                              acc.data());
      for (std::size_t h = 0; h < heads; ++h)
        d::cpu::kernels::sparse_attention_heads(q.data() + h * d, 1, kv.data(), idx.data(), k, d,
                                                sinks.data() + h, 0.125f, round_p,
                                                one.data() + h * d, acc.data());
      CHECK(same_bits(all, one));
    }
  });
}

TEST_CASE("cpu kernels: index dots are the dots, the same bits whatever range holds a key") {
  // 16 heads of 128 (the V4 shape: whole tiles, no tail) and 7 heads of 37 (partial head tiles,
  // a vector tail); 23 keys (partial key tiles)
  for (const auto& [heads, di] : {std::pair<std::size_t, std::size_t>{16, 128}, {7, 37}}) {
    CAPTURE(heads);
    const std::size_t n = 23, ldk = di + 3;
    const auto q = random_values(heads * di, 41);
    const auto keys = random_values(n * ldk, 42);
    d::test::for_each_simd_target([&] {
      std::vector<float> all(heads * n), part(heads * n);
      d::cpu::kernels::index_dots(q.data(), heads, di, keys.data(), ldk, n, all.data(), n);
      // the same keys as [0, 5), [5, 6), [6, 23): a key's dots must not depend on its tile
      for (const auto& [j0, j1] : {std::pair<std::size_t, std::size_t>{0, 5}, {5, 6}, {6, 23}})
        d::cpu::kernels::index_dots(q.data(), heads, di, keys.data() + j0 * ldk, ldk, j1 - j0,
                                    part.data() + j0, n);
      CHECK(same_bits(all, part));
      double worst = 0;
      for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t j = 0; j < n; ++j) {
          double want = 0, mag = 0;
          for (std::size_t e = 0; e < di; ++e) {
            want += double(q[h * di + e]) * keys[j * ldk + e];
            mag += std::abs(double(q[h * di + e]) * keys[j * ldk + e]);
          }
          worst = std::max(worst, std::abs(want - all[h * n + j]) / mag);
        }
      }
      CHECK(worst <= 1e-6);
    });
  }
}

TEST_CASE("cpu::Backend top_k: the reference's picks, ties to the smaller index") {
  const d::ReferenceBackend ref;
  const d::cpu::Backend cpu(2);
  std::mt19937 rng(43);
  // many exact ties (values on a coarse grid), -inf entries (not yet visible), small and large
  for (const auto& [n, k] : {std::pair<std::size_t, std::size_t>{8192, 128},
                             {600, 128},
                             {1000, 1},
                             {5000, 1250},
                             {700, 171},
                             {64, 6},
                             {511, 100}}) {
    CAPTURE(n);
    CAPTURE(k);
    std::vector<float> s(n);
    for (std::size_t i = 0; i < n; ++i)
      s[i] = i % 11 == 3 ? -std::numeric_limits<float>::infinity()
                         : static_cast<float>(static_cast<int>(rng() % 97) - 90) * 0.25f;
    std::vector<std::int32_t> a(k), b(k);
    ref.top_k(s, a);
    cpu.top_k(s, b);
    CHECK(a == b);
    // -0 and +0 tie (the picks follow the index), values in one radix bucket, all equal, a NaN
    for (std::size_t i = 0; i < n; ++i) s[i] = i % 3 == 0 ? -0.0f : (i % 3 == 1 ? 0.0f : -1.0f);
    ref.top_k(s, a);
    cpu.top_k(s, b);
    CHECK(a == b);
    for (std::size_t i = 0; i < n; ++i) s[i] = 1.0f + static_cast<float>(rng() % 50) * 0x1p-20f;
    ref.top_k(s, a);
    cpu.top_k(s, b);
    CHECK(a == b);
    std::fill(s.begin(), s.end(), 2.5f);
    ref.top_k(s, a);
    cpu.top_k(s, b);
    CHECK(a == b);
    s[n / 2] = std::numeric_limits<float>::quiet_NaN();
    ref.top_k(s, a);
    cpu.top_k(s, b);
    CHECK(a == b);
  }
}

TEST_CASE("cpu::Backend sparse attention: few queries split over heads, same bits") {
  // 1 and 2 queries of 9 heads (groups of four and a single head) on 1, 2 and 3 threads
  const std::size_t h = 9, dd = 40, n = 90, width = 70;
  for (const std::size_t t : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(t);
    const auto q = random_values(t * h * dd, 51);
    const auto kv = random_values(n * dd, 52);
    const auto sink = random_values(h, 53);
    std::vector<std::int32_t> idx(t * width);
    for (std::size_t i = 0; i < idx.size(); ++i)
      idx[i] = (i % 7 == 6) ? -1 : static_cast<std::int32_t>((i * 13) % n);
    std::vector<std::vector<float>> outs;
    for (const int threads : {1, 2, 3}) {
      std::vector<float> o(t * h * dd);
      d::SparseAttentionArgs args{q.data(), kv.data(), sink.data(), idx.data(), t,       h,
                                  dd,       n,         width,       0.2f,       o.data()};
      d::cpu::Backend(threads).sparse_attention<d::ReferenceNumerics>(args);
      outs.push_back(std::move(o));
    }
    CHECK(same_bits(outs[0], outs[1]));
    CHECK(same_bits(outs[0], outs[2]));
    std::vector<float> want(t * h * dd);
    d::SparseAttentionArgs args{q.data(), kv.data(), sink.data(), idx.data(), t,          h,
                                dd,       n,         width,       0.2f,       want.data()};
    d::ReferenceBackend{}.sparse_attention<d::ReferenceNumerics>(args);
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::abs(double(want[i]) - outs[0][i]));
    CHECK(worst <= 0x1p-7);
  }
}

TEST_CASE("cpu kernels: E4M3 codes decode to fp8_e4m3's values, every code") {
  std::vector<std::uint8_t> codes(256 + 5);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>(i * 37 + 1);
  d::test::for_each_simd_target([&] {
    std::vector<float> got(codes.size());
    d::cpu::kernels::e4m3_to_f32(codes.data(), codes.size(), got.data());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      const float want = d::fp8_e4m3::from_bits(codes[i]).to_float();
      CAPTURE(int(codes[i]));
      CHECK(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(want));
    }
  });
}

TEST_CASE_TEMPLATE_DEFINE("cpu::Backend Linear<F, DequantDot> against the reference", F,
                          dequant_dot) {
  using L = d::Linear<F, d::DequantDot>;
  const std::size_t in = test_in<F, d::DequantDot>();
  const auto wf = random_values(kOut * in, 5);
  const auto w = L::quantize(d::ConstView2<float>(wf.data(), kOut, in));
  const auto x = random_values(kRows * in, 6);
  std::vector<float> wd(kOut * in);
  for (std::size_t o = 0; o < kOut; ++o) w.dequantize_row(o, wd.data() + o * in);
  d::test::for_each_simd_target([&] {
    const auto r = run_linear<d::PlainFp32Numerics>(w, x, kRows);
    CHECK(same_bits(r.cpu1, r.cpu3));
    // the dense GEMM on the dequantised rows (the dense test measures up to 2.1e-7)
    CHECK(relative_error(r.cpu1, r.ref, x, wd, kRows, kOut, in) <= 1.2e-6);
  });
}
TEST_CASE_TEMPLATE_APPLY(dequant_dot, d::LinearFormats::tuple);

TEST_CASE("cpu::Backend rms_norm, swiglu, index_scores, sparse_attention against the reference") {
  const d::ReferenceBackend ref;
  for (const int threads : {1, 3}) {
    CAPTURE(threads);
    const d::cpu::Backend cpu(threads);
    d::test::for_each_simd_target([&] {
      {  // rms_norm: 301 rows of 67 (a vectorised sum of squares: not bit-exact)
        const std::size_t dim = 67, rows = 301;
        const auto x = random_values(rows * dim, 7, 3.0f);
        const auto w = random_values(dim, 8);
        std::vector<float> a(x.size()), b(x.size());
        ref.rms_norm<d::PlainFp32Numerics>(x, w, 1e-6f, a);
        cpu.rms_norm<d::PlainFp32Numerics>(x, w, 1e-6f, b);
        double worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i)
          worst = std::max(worst, std::abs(double(a[i]) - b[i]) / (std::abs(w[i % dim]) + 1e-30));
        MESSAGE("rms_norm max |Δ|/|w|: ", worst);
        CHECK(worst <= 1e-5);  // measured 9.1e-7 (AVX2, SSE4, scalar targets)
      }
      {  // swiglu: bit for bit
        const std::size_t rows = 53, cols = 45;
        auto g = random_values(rows * cols, 9, 4.0f);
        const auto v = random_values(rows * cols, 10, 4.0f);
        const auto rw = random_values(rows, 11);
        auto g2 = g;
        ref.swiglu<d::ReferenceNumerics>(d::View2<float>(g.data(), rows, cols),
                                         d::ConstView2<float>(v.data(), rows, cols), rw, 3.0f);
        cpu.swiglu<d::ReferenceNumerics>(d::View2<float>(g2.data(), rows, cols),
                                         d::ConstView2<float>(v.data(), rows, cols), rw, 3.0f);
        CHECK(same_bits(g, g2));
      }
      // index scores: the q·key dots one GEMM per 256 keys; 600 keys: 3 tiles, visibility
      // ending inside and between them
      for (const auto& [t, n] : {std::pair<std::size_t, std::size_t>{29, 41}, {4, 600}}) {
        const std::size_t hi = 3, di = 33;
        const auto q = random_values(t * hi * di, 12);
        const auto keys = random_values(n * di, 13);
        const auto hw = random_values(t * hi, 14);
        std::vector<std::size_t> vis(t);
        for (std::size_t i = 0; i < t; ++i) vis[i] = (i * 7) % (n + 3);
        if (n == 600) vis = {0, 256, 300, 603};
        std::vector<float> a(t * n), b(t * n);
        ref.index_scores<d::PlainFp32Numerics>(
            d::ConstView2<float>(q.data(), t, hi * di), d::ConstView2<float>(keys.data(), n, di),
            d::ConstView2<float>(hw.data(), t, hi), vis, d::View2<float>(a.data(), t, n));
        cpu.index_scores<d::PlainFp32Numerics>(
            d::ConstView2<float>(q.data(), t, hi * di), d::ConstView2<float>(keys.data(), n, di),
            d::ConstView2<float>(hw.data(), t, hi), vis, d::View2<float>(b.data(), t, n));
        double worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
          CHECK(std::isinf(a[i]) == std::isinf(b[i]));
          if (!std::isinf(a[i])) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
        }
        MESSAGE("index_scores max |Δ|: ", worst);
        CHECK(worst <= 5e-5);  // measured 7.6e-6 on every target (one ulp of scores near 100)
      }
      {  // sparse attention: vectorised dots and P·V, both activation modes
        const std::size_t t = 13, h = 3, dd = 35, n = 150, width = 137;  // 3 chunks of 64
        const auto q = random_values(t * h * dd, 15);
        const auto kv = random_values(n * dd, 16);
        const auto sink = random_values(h, 17);
        std::vector<std::int32_t> idx(t * width);
        for (std::size_t i = 0; i < idx.size(); ++i)
          idx[i] = (i % 5 == 4) ? -1 : static_cast<std::int32_t>((i * 11) % n);
        std::vector<float> a(t * h * dd), b(t * h * dd);
        d::SparseAttentionArgs args{q.data(), kv.data(), sink.data(), idx.data(), t,       h,
                                    dd,       n,         width,       0.17f,      a.data()};
        auto max_diff = [&] {
          double worst = 0;
          for (std::size_t i = 0; i < a.size(); ++i)
            worst = std::max(worst, std::abs(double(a[i]) - b[i]));
          return worst;
        };
        ref.sparse_attention<d::PlainFp32Numerics>(args);
        args.out = b.data();
        cpu.sparse_attention<d::PlainFp32Numerics>(args);
        const double f32 = max_diff();
        MESSAGE("sparse_attention fp32 max |Δ|: ", f32);
        CHECK(f32 <= 2e-6);  // measured 4.2e-7 (AVX2, SSE4, scalar), outputs ~1
        args.out = a.data();
        ref.sparse_attention<d::ReferenceNumerics>(args);
        args.out = b.data();
        cpu.sparse_attention<d::ReferenceNumerics>(args);
        const double bf = max_diff();
        MESSAGE("sparse_attention bf16 max |Δ|: ", bf);
        CHECK(bf <= 0x1p-7);  // measured 0; one bf16 step of an output below 1 at most
        args.out = a.data();
        idx[5] = static_cast<std::int32_t>(n);  // out of range: the reference's InputError
        CHECK_THROWS_AS(cpu.sparse_attention<d::PlainFp32Numerics>(args), d::InputError);
      }
    });
  }
}

TEST_CASE("cpu::Backend: thread counts, copies share the arena") {
  const d::cpu::Backend a(3);
  CHECK(a.threads() == 3);
  const d::cpu::Backend b = a;
  CHECK(b.threads() == 3);
  CHECK(d::cpu::Backend().threads() >= 1);
  CHECK(d::cpu::kernels::physical_cores() >= 1);
}

TEST_CASE("cpu kernels: the Q8_0 and Q8_K activation quantizers equal the formats' bit for bit") {
  // (Q8_0: Q8_0::quantize_x86, the rounding of llama.cpp's x86 CPU backend)
  constexpr std::size_t kBlocks = 5;
  std::vector<float> x = random_values(256 * kBlocks, 11, 2.0f);
  // block 0: halves, rounded to even (amax 127 so the scale is exactly 1)
  for (std::size_t j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 7) - 3.5f;
  x[5] = 127.f;
  // block 1 (of Q8_0) all zero; Q8_K block 1: the largest magnitude twice, negative first
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
  x[256 + 3] = -9.0f;
  x[256 + 10] = 9.0f;
  // Q8_K block 2 all zero
  std::fill(x.begin() + 512, x.begin() + 768, 0.0f);
  // tiny values (f16 subnormal scales)
  for (std::size_t j = 768; j < 800; ++j) x[j] *= 1e-6f;
  d::test::for_each_simd_target([&] {
    const std::size_t n0 = x.size() / 32;
    std::vector<d::Q8_0::block_type> want0(n0), got0(n0);
    std::vector<float> xd(n0);
    for (std::size_t i = 0; i < n0; ++i) d::Q8_0::quantize_x86(x.data() + 32 * i, want0[i]);
    d::cpu::kernels::quantize_q8_0(x.data(), n0, got0.data(), xd.data());
    CHECK(std::memcmp(want0.data(), got0.data(), n0 * sizeof(d::Q8_0::block_type)) == 0);
    for (std::size_t i = 0; i < n0; ++i) CHECK(xd[i] == want0[i].d.to_float());
    std::vector<d::Q8_K::block_type> wantk(kBlocks), gotk(kBlocks);
    for (std::size_t i = 0; i < kBlocks; ++i) d::Q8_K::quantize(x.data() + 256 * i, wantk[i]);
    d::cpu::kernels::quantize_q8_k(x.data(), kBlocks, gotk.data());
    CHECK(std::memcmp(wantk.data(), gotk.data(), kBlocks * sizeof(d::Q8_K::block_type)) == 0);
  });
}

TEST_CASE("cpu::Backend head_rms_norm: the reference's bits on 1 and 3 threads") {
  const d::ReferenceBackend ref;
  // 1,001 vectors of 67 (not a power of two: PyTorch 1's two roundings of the mean matter) and
  // 600 of 128, enough work to be split
  for (const auto& [n, dim] : {std::pair<std::size_t, std::size_t>{1001, 67}, {600, 128}}) {
    const auto x = random_values(n * dim, 12, 3.0f);
    for (const int threads : {1, 3}) {
      CAPTURE(threads);
      CAPTURE(dim);
      const d::cpu::Backend cpu(threads);
      auto a = x, b = x, c = x, e = x, f = x, g = x;
      ref.head_rms_norm<d::ReferenceTorch1Numerics>(a, dim, 1e-6f);
      cpu.head_rms_norm<d::ReferenceTorch1Numerics>(b, dim, 1e-6f);
      CHECK(same_bits(a, b));
      ref.head_rms_norm<d::ReferenceNumerics>(c, dim, 1e-6f);
      cpu.head_rms_norm<d::ReferenceNumerics>(e, dim, 1e-6f);
      CHECK(same_bits(c, e));
      ref.head_rms_norm<d::PlainFp32Numerics>(f, dim, 1e-6f);
      cpu.head_rms_norm<d::PlainFp32Numerics>(g, dim, 1e-6f);
      CHECK(same_bits(f, g));
    }
  }
  const d::cpu::Backend cpu(2);
  std::vector<float> odd(10);
  CHECK_THROWS_AS(cpu.head_rms_norm<d::PlainFp32Numerics>(odd, 3, 1e-6f), d::ShapeError);
}

TEST_CASE("cpu::Backend rope: the reference's bits, forward and inverse, every SIMD target") {
  const d::ReferenceBackend ref;
  // rope_dim 64 (whole vectors) and 6 (a tail narrower than a vector), vectors of 67 and 70
  // values (the rotated dims at an odd offset), positions with large angles
  for (const std::int64_t rope_dim : {64, 6}) {
    d::RopeParams p;
    p.rope_dim = rope_dim;
    p.max_seq_len = 5000;
    p.base = 10000.0;
    const d::Rope table(p);
    for (const std::size_t vec_len : {std::size_t{67}, std::size_t{70}}) {
      const std::size_t n_vec = 37;
      const auto x = random_values(n_vec * vec_len, 13, 4.0f);
      for (const int threads : {1, 3}) {
        const d::cpu::Backend cpu(threads);
        d::test::for_each_simd_target([&] {
          for (const std::int64_t pos : {std::int64_t{0}, std::int64_t{7}, std::int64_t{4999}}) {
            for (const auto dir : {d::RopeDirection::forward, d::RopeDirection::inverse}) {
              CAPTURE(rope_dim);
              CAPTURE(vec_len);
              CAPTURE(pos);
              auto a = x, b = x, c = x, e = x;
              ref.rope<d::ReferenceNumerics>(table, a.data(), n_vec, vec_len, pos, dir);
              cpu.rope<d::ReferenceNumerics>(table, b.data(), n_vec, vec_len, pos, dir);
              CHECK(same_bits(a, b));
              ref.rope<d::PlainFp32Numerics>(table, c.data(), n_vec, vec_len, pos, dir);
              cpu.rope<d::PlainFp32Numerics>(table, e.data(), n_vec, vec_len, pos, dir);
              CHECK(same_bits(c, e));
            }
          }
        });
      }
    }
    const d::cpu::Backend cpu(2);
    std::vector<float> v(64);
    CHECK_THROWS_AS(
        cpu.rope<d::PlainFp32Numerics>(table, v.data(), 1, 64, 5000, d::RopeDirection::forward),
        d::InputError);
    if (rope_dim == 64)
      CHECK_THROWS_AS(
          cpu.rope<d::PlainFp32Numerics>(table, v.data(), 2, 32, 0, d::RopeDirection::forward),
          d::ShapeError);
  }
}

TEST_CASE("cpu::Backend softmax_pool: the reference's pooling within a few ulp") {
  const d::ReferenceBackend ref;
  const d::cpu::Backend cpu(2);
  // d = 67 channels (a tail), 1..8 members; some scores -inf (a member that does not count)
  const std::size_t dim = 67;
  for (const std::size_t m : {std::size_t{1}, std::size_t{3}, std::size_t{8}}) {
    auto kv = random_values(m * dim, 14, 2.0f);
    auto sc = random_values(m * dim, 15, 6.0f);
    if (m > 1)
      for (std::size_t f = 0; f < dim; f += 5) sc[f] = -std::numeric_limits<float>::infinity();
    std::vector<const float*> kp(m), sp(m);
    for (std::size_t k = 0; k < m; ++k) {
      kp[k] = kv.data() + k * dim;
      sp[k] = sc.data() + k * dim;
    }
    std::vector<float> want(dim);
    ref.softmax_pool(kp.data(), sp.data(), m, dim, want.data());
    d::test::for_each_simd_target([&] {
      std::vector<float> got(dim, -1.0f);
      cpu.softmax_pool(kp.data(), sp.data(), m, dim, got.data());
      for (std::size_t f = 0; f < dim; ++f) {
        float scale = 0.0f;  // Σ |kv| bounds the pooled value
        for (std::size_t k = 0; k < m; ++k) scale += std::fabs(kv[k * dim + f]);
        CAPTURE(m);
        CAPTURE(f);
        CHECK(std::fabs(got[f] - want[f]) <= 1e-6f * scale);
      }
    });
  }
}

TEST_CASE_TEMPLATE("cpu kernels: dequantize_blocks is the format's dequantize, bit for bit", F,
                   d::Q8_0, d::Q4_0, d::Q4_1, d::Q5_0, d::Q5_1, d::Q2_K, d::Q3_K, d::Q4_K, d::Q5_K,
                   d::Q6_K, d::IQ4_NL, d::IQ4_XS, d::MXFP4) {
  // 7 rows of 512 values with scales over four decades and outliers; every SIMD target
  constexpr std::size_t rows = 7, in = 512;
  auto wf = random_values(rows * in, 16, 2.0f);
  for (std::size_t i = 0; i < wf.size(); ++i)
    wf[i] *= std::ldexp(1.0f, static_cast<int>(i % 13) - 6);
  const auto w = d::Linear<F, d::DequantDot>::quantize(d::ConstView2<float>(wf.data(), rows, in));
  std::vector<float> want(rows * in);
  for (std::size_t o = 0; o < rows; ++o) w.dequantize_row(o, want.data() + o * in);
  d::test::for_each_simd_target([&] {
    std::vector<float> got(rows * in, -1.0f);
    d::cpu::kernels::dequantize_blocks(d::cpu::dequant_kind_of<F>(), w.blocks().data(),
                                       w.blocks().size(), got.data());
    CHECK(same_bits(got, want));
  });
}

TEST_CASE("cpu::Backend residual_post: the hyper-connections' post, llama.cpp's order, same bits") {
  // kernels::hc_post_ggml against HyperConnection<4>::post under ggml_order: odd and even widths,
  // every SIMD target, 1 and 3 threads, the output apart from and aliasing the residual
  for (const std::size_t dim : {std::size_t{256}, std::size_t{37}}) {
    CAPTURE(dim);
    constexpr std::size_t kT = 9;
    const d::HyperConnection<4> hc(
        d::f32_linear(std::vector<float>(24 * 4 * dim, 0.0f), 24, 4 * dim),
        std::vector<float>(24, 0.0f), {1.0f, 1.0f, 1.0f}, dim, 1e-6f, 1e-6f, 20);
    d::HyperConnection<4>::Mix mix;
    mix.tokens = kT;
    const auto post = random_values(kT * 4, 31);
    const auto comb = random_values(kT * 16, 32);
    mix.post.resize(post.size());
    mix.comb.resize(comb.size());
    std::copy(post.begin(), post.end(), mix.post.begin());
    std::copy(comb.begin(), comb.end(), mix.comb.begin());
    const auto f = random_values(kT * dim, 33);
    const auto res = random_values(kT * 4 * dim, 34);
    std::vector<float> want(res.size());
    hc.post<d::PlainFp32Numerics>(f, res, mix, want);
    d::test::for_each_simd_target([&] {
      for (const int threads : {1, 3}) {
        std::vector<float> got(res.size());
        d::cpu::Backend(threads).residual_post<d::PlainFp32Numerics>(hc, f, res, mix, got);
        CHECK(same_bits(got, want));
        std::vector<float> inplace = res;
        d::cpu::Backend(threads).residual_post<d::PlainFp32Numerics>(hc, f, inplace, mix, inplace);
        CHECK(same_bits(inplace, want));
      }
    });
  }
}
