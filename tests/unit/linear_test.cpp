// Linear<Format, Semantics> and AnyLinear: every weight format through both semantics against a
// double-precision reference, the native GEMM kernel data bit for bit, zero-copy views of the
// tiny_fp8 checkpoint, run-time dispatch and shape errors.
//
// Spec: spec/formats.md §9.3-9.6, §10.3. Data: tests/data/reference/kernels.safetensors
// (fp8_gemm.*, fp4_gemm.*) and tests/data/reference/tiny_fp8/linear_weights.safetensors.
//
// Error budgets. For a row, let S = Σ_k |w_k·a_k| over the dequantised weight w and the
// activation a the format actually multiplies (PartnerDot: x quantised to the partner and
// dequantised; DequantDot: x itself), and u = 2^-24. The exact reference is the double sum
// Σ w_k·a_k (for Q4_1/Q5_1 plus the known shift of ggml's f16 activation sum, see
// formats_ggml_test.cpp). Budgets, |got − exact| ≤ B·u·S, from the rounding steps of each dot:
//  * F16, BF16: exact products, double sum, one rounding: B = 1.
//  * F32: products rounded to fp32, double sum, one rounding: B = 2.
//  * 32-value GGUF blocks (Q8_0, Q4_0, Q5_0, IQ4_NL, MXFP4), nb blocks per row: exact integer
//    dot, one rounded scale product, one rounded multiply, nb fp32 additions: B = nb + 2;
//    Q4_1/Q5_1 add the min term (one product, one addition): B = nb + 4.
//  * k-quants and IQ4_XS (256-value blocks): per block 8-16 sub-block scale products and
//    eight-lane fp32 partial sums before the final fold; B = 16·nb + 8 covers every step.
//  * FP8_B128 (per 128-block an exact sum rounded once, times an exact scale product, nb fp32
//    additions): B = nb + 1; FP4_G32 the same with its 32-value groups: B = nb + 1.
//  * DequantDot: K products rounded to fp32 and K fp32 additions in ascending order: B = 2K.
// The measured worst cases are printed; they are far inside (mostly below 1·u·S).
#include "dsv4/formats/linear.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "dsv4/core/numeric.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/ops/gemm_native.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
using d::bf16;
using d::fp4_e2m1;
using d::fp8_e4m3;
using d::ue8m0;
using d::io::SafetensorsFile;

constexpr double kU = 0x1p-24;

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

std::vector<float> random_normal(std::size_t n, unsigned seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

/// A weight with some structure: per-row magnitudes over four decades and a few outliers, so
/// that scales differ between blocks and rows.
std::vector<float> test_weight(std::size_t n, std::size_t k, unsigned seed) {
  auto w = random_normal(n * k, seed);
  std::mt19937 rng(seed + 1);
  for (std::size_t r = 0; r < n; ++r) {
    const float row_scale = std::ldexp(1.f, static_cast<int>(r % 13) - 10);
    for (std::size_t c = 0; c < k; ++c) w[r * k + c] *= row_scale;
    w[r * k + rng() % k] *= 8.f;
  }
  return w;
}

/// Budget B (in units of u·S) of Linear<F, PartnerDot> for rows of nb weight blocks.
template <class F>
double partner_budget(std::size_t nb) {
  if constexpr (std::is_same_v<F, d::F16> || std::is_same_v<F, d::BF16>) {
    return 1;
  } else if constexpr (std::is_same_v<F, d::F32>) {
    return 2;
  } else if constexpr (std::is_same_v<F, d::Fp8B128> || std::is_same_v<F, d::Fp4G32>) {
    return static_cast<double>(nb) + 1;
  } else if constexpr (std::is_same_v<typename F::activation, d::Q8_K>) {
    return 16.0 * static_cast<double>(nb) + 8;
  } else if constexpr (std::is_same_v<typename F::activation, d::Q8_1>) {
    return static_cast<double>(nb) + 4;
  } else {
    return static_cast<double>(nb) + 2;
  }
}

/// Σ_b m_b·(s_b − d_b·Σq_b): the shift of ggml's Q4_1/Q5_1 dot from the exact one (its min
/// term uses the activation block's f16 sum s).
template <class F>
double min_term_shift(const d::Linear<F>& l, std::size_t o,
                      const typename F::activation::block_type* a) {
  if constexpr (std::is_same_v<typename F::activation, d::Q8_1>) {
    double shift = 0;
    for (std::size_t b = 0; b < l.row_blocks(); ++b) {
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += a[b].qs[j];
      const double exact_s = static_cast<double>(a[b].d.to_float()) * sum;
      shift += static_cast<double>(l.block(o, b).m.to_float()) *
               (static_cast<double>(a[b].s.to_float()) - exact_s);
    }
    return shift;
  } else {
    (void)l;
    (void)o;
    (void)a;
    return 0.0;
  }
}

/// x [rows, k] with a row stride larger than k (views need not be contiguous).
struct StridedInput {
  std::vector<float> storage;
  d::ConstView2<float> view;
};
StridedInput strided_input(std::size_t rows, std::size_t k, unsigned seed) {
  StridedInput in;
  const std::size_t stride = k + 7;
  in.storage = random_normal(rows * stride, seed);
  in.view = d::ConstView2<float>(in.storage.data(), rows, k, stride);
  return in;
}

struct Worst {
  double ratio = 0;  // max |got − exact| / (u·S)
};

}  // namespace

// N = 130 rows: FP8_B128 gets a full and a partial 128-row band. K = 512: every block size fits.
TEST_CASE_TEMPLATE_DEFINE("Linear<F, PartnerDot>: the format's dot on the partner-quantised input",
                          F, partner_dot) {
  using A = typename F::activation;
  constexpr std::size_t n = 130, k = 512, rows = 3;
  INFO("format ", F::name);
  const auto w = test_weight(n, k, 21);
  const auto l = d::Linear<F>::quantize(d::ConstView2<float>(w.data(), n, k));
  CHECK(l.owns_bytes());
  const auto x = strided_input(rows, k, 22);
  std::vector<float> y(rows * n);
  l.template forward<d::PlainFp32Numerics>(x.view, d::View2<float>(y.data(), rows, n));

  // the reference: the activation quantised to the partner, both operands dequantised
  const std::size_t na = k / A::block_elems;
  std::vector<typename A::block_type> xa(rows * na);
  std::vector<float> xd(rows * k), wd(k);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t j = 0; j < na; ++j) {
      d::partner_quantize<A>(x.view.row(r) + j * A::block_elems, xa[r * na + j]);
      A::dequantize(xa[r * na + j], xd.data() + r * k + j * A::block_elems);
    }
  }
  const double budget = partner_budget<F>(l.row_blocks());
  Worst worst;
  for (std::size_t o = 0; o < n; ++o) {
    l.dequantize_row(o, wd.data());
    for (std::size_t r = 0; r < rows; ++r) {
      double exact = 0, s = 0;
      for (std::size_t c = 0; c < k; ++c) {
        const double p = static_cast<double>(wd[c]) * xd[r * k + c];
        exact += p;
        s += std::fabs(p);
      }
      exact += min_term_shift<F>(l, o, xa.data() + r * na);
      const double err = std::fabs(static_cast<double>(y[r * n + o]) - exact);
      worst.ratio = std::max(worst.ratio, err / (kU * s));
      CAPTURE(o);
      CAPTURE(r);
      REQUIRE(err <= budget * kU * s);
    }
  }
  MESSAGE(F::name << " partner-dot: worst |err| = " << worst.ratio << " u·S (budget " << budget
                  << ")");

  // A bf16 numerics policy rounds the same sums once more, and nothing else.
  std::vector<float> yb(rows * n);
  l.template forward<d::ReferenceNumerics>(x.view, d::View2<float>(yb.data(), rows, n));
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(bits(yb[i]) == bits(d::round_bf16(y[i])));
}
TEST_CASE_TEMPLATE_APPLY(partner_dot, d::LinearFormats::tuple);

TEST_CASE_TEMPLATE_DEFINE("Linear<F, DequantDot>: fp32 dot of x with the dequantised weight", F,
                          dequant_dot) {
  constexpr std::size_t n = 130, k = 512, rows = 3;
  INFO("format ", F::name);
  const auto w = test_weight(n, k, 31);
  const auto l = d::Linear<F, d::DequantDot>::quantize(d::ConstView2<float>(w.data(), n, k));
  const auto x = strided_input(rows, k, 32);
  std::vector<float> y(rows * n), wd(k);
  l.template forward<d::PlainFp32Numerics>(x.view, d::View2<float>(y.data(), rows, n));
  Worst worst;
  for (std::size_t o = 0; o < n; ++o) {
    l.dequantize_row(o, wd.data());
    for (std::size_t r = 0; r < rows; ++r) {
      double exact = 0, s = 0;
      float ascending = 0.f;  // DequantDot's own order, to the bit
      for (std::size_t c = 0; c < k; ++c) {
        const double p = static_cast<double>(wd[c]) * x.view(r, c);
        exact += p;
        s += std::fabs(p);
        ascending += x.view(r, c) * wd[c];
      }
      const double err = std::fabs(static_cast<double>(y[r * n + o]) - exact);
      worst.ratio = std::max(worst.ratio, err / (kU * s));
      CAPTURE(o);
      CAPTURE(r);
      REQUIRE(bits(y[r * n + o]) == bits(ascending));
      REQUIRE(err <= 2.0 * k * kU * s);
    }
  }
  MESSAGE(F::name << " dequant-dot: worst |err| = " << worst.ratio << " u·S (budget " << 2 * k
                  << ")");
}
TEST_CASE_TEMPLATE_APPLY(dequant_dot, d::LinearFormats::tuple);

// N = 300 rows: FP8_B128's last 128-row band is partial (rows 256..299).
TEST_CASE_TEMPLATE_DEFINE("Linear<F>::rows: a view of rows computes those rows of the product", F,
                          row_slices) {
  constexpr std::size_t n = 300, k = 512, rows = 3;
  INFO("format ", F::name);
  const auto w = test_weight(n, k, 41);
  const auto l = d::Linear<F>::quantize(d::ConstView2<float>(w.data(), n, k));
  const auto x = strided_input(rows, k, 42);
  std::vector<float> whole(rows * n);
  l.template forward<d::PlainFp32Numerics>(x.view, d::View2<float>(whole.data(), rows, n));
  constexpr bool tiles = std::is_same_v<F, d::Fp8B128>;  // 128-row scale tiles
  struct Cut {
    std::size_t first, count;
  };
  for (const Cut c : {Cut{0, 128}, Cut{128, 172}, Cut{256, 44}, Cut{5, 37}, Cut{299, 1}}) {
    CAPTURE(c.first);
    CAPTURE(c.count);
    if (tiles && (c.first % 128 != 0 || (c.count % 128 != 0 && c.first + c.count != n))) {
      CHECK_THROWS_AS((void)l.rows(c.first, c.count), d::ShapeError);
      continue;
    }
    const d::AnyLinear part = d::AnyLinear(l).rows(c.first, c.count);
    REQUIRE(part.out_features() == c.count);
    CHECK_FALSE(part.owns_bytes());
    std::vector<float> y(rows * c.count);
    part.forward<d::PlainFp32Numerics>(x.view, d::View2<float>(y.data(), rows, c.count));
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t o = 0; o < c.count; ++o)
        REQUIRE(bits(y[r * c.count + o]) == bits(whole[r * n + c.first + o]));
  }
  CHECK_THROWS_AS((void)l.rows(250, 51), d::ShapeError);
  // the slice keeps the bytes alive after the weight it came from is gone
  std::optional<d::Linear<F>> owner = l;
  const d::Linear<F> tail = owner->rows(tiles ? 256 : 255, tiles ? 44 : 45);
  owner.reset();
  std::vector<float> y(rows * tail.out_features());
  tail.template forward<d::PlainFp32Numerics>(x.view,
                                              d::View2<float>(y.data(), rows, tail.out_features()));
  CHECK(bits(y.back()) == bits(whole.back()));
}
TEST_CASE_TEMPLATE_APPLY(row_slices, d::LinearFormats::tuple);

TEST_CASE("DequantDot on F32 / BF16 weights equals DenseLinear<float> / DenseLinear<bf16>") {
  constexpr std::size_t n = 17, k = 40, rows = 2;
  const auto w = random_normal(n * k, 41);
  const auto x = random_normal(rows * k, 42);
  const d::ConstView2<float> xv(x.data(), rows, k);
  std::vector<float> want(rows * n), got(rows * n);

  d::DenseLinear<float> dense_f(w, n, k);
  dense_f.forward<d::ReferenceNumerics>(xv, d::View2<float>(want.data(), rows, n));
  d::Linear<d::F32, d::DequantDot>::quantize(d::ConstView2<float>(w.data(), n, k))
      .forward<d::ReferenceNumerics>(xv, d::View2<float>(got.data(), rows, n));
  CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);

  std::vector<bf16> wb;
  for (float v : w) wb.push_back(bf16(v));
  d::DenseLinear<bf16> dense_b(wb, n, k);
  dense_b.forward<d::ReferenceFp32Numerics>(xv, d::View2<float>(want.data(), rows, n));
  std::vector<d::BF16::block_type> blocks(wb.begin(), wb.end());
  d::Linear<d::BF16, d::DequantDot>(std::move(blocks), n, k)
      .forward<d::ReferenceFp32Numerics>(xv, d::View2<float>(got.data(), rows, n));
  CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
}

namespace {

const SafetensorsFile& kernels() {
  static const SafetensorsFile f(d::test::data_path("reference/kernels.safetensors"));
  return f;
}

const SafetensorsFile& tiny() {
  static const SafetensorsFile f(
      d::test::data_path("reference/tiny_fp8/linear_weights.safetensors"));
  return f;
}

std::size_t dim(const SafetensorsFile& f, const std::string& name, std::size_t i) {
  return static_cast<std::size_t>(f.info(name).shape.at(i));
}

/// Positions whose fp32 bits differ.
std::size_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) bad += bits(a[i]) != bits(b[i]) ? 1 : 0;
  return bad;
}

}  // namespace

TEST_CASE("native golden: the fp8_gemm / fp4_gemm kernel data through Linear, bit for bit") {
  // x is bf16-valued; Linear quantises it with act_quant and runs the native dot, and the bf16
  // numerics policy rounds once at the end, as the kernels do.
  const auto x = kernels().to_float("fp8_gemm.x");
  const std::size_t m = dim(kernels(), "fp8_gemm.x", 0), k = dim(kernels(), "fp8_gemm.x", 1);
  const d::ConstView2<float> xv(x.data(), m, k);

  SUBCASE("FP8_B128") {
    const std::size_t n = dim(kernels(), "fp8_gemm.w_q", 0);
    std::vector<fp8_e4m3> codes;
    for (float v : kernels().to_float("fp8_gemm.w_q")) codes.push_back(fp8_e4m3::from_float(v));
    std::vector<ue8m0> scales;
    for (float v : kernels().to_float("fp8_gemm.w_scale")) scales.push_back(ue8m0::ceil_pow2(v));
    const d::Linear<d::Fp8B128> l(codes, scales, n, k);
    std::vector<float> y(m * n);
    l.forward<d::ReferenceNumerics>(xv, d::View2<float>(y.data(), m, n));
    const std::size_t bad = mismatches(y, kernels().to_float("fp8_gemm.out_bf16"));
    MESSAGE("fp8_gemm through Linear<Fp8B128>: " << bad << "/" << y.size() << " differ");
    CHECK(bad == 0);
  }
  SUBCASE("FP4_G32") {
    const std::size_t n = dim(kernels(), "fp4_gemm.w_q", 0);
    const auto wq = kernels().to_float("fp4_gemm.w_q");
    std::vector<std::uint8_t> packed(n * k / 2, 0);
    for (std::size_t i = 0; i < wq.size(); ++i) {
      const std::uint8_t c = fp4_e2m1::from_float(wq[i]).bits;
      packed[i / 2] |= static_cast<std::uint8_t>(i % 2 == 0 ? c : c << 4);
    }
    std::vector<ue8m0> scales;
    for (float v : kernels().to_float("fp4_gemm.w_scale")) scales.push_back(ue8m0::ceil_pow2(v));
    const d::Linear<d::Fp4G32> l(packed, scales, n, k);
    std::vector<float> y(m * n);
    l.forward<d::ReferenceNumerics>(xv, d::View2<float>(y.data(), m, n));
    const std::size_t bad = mismatches(y, kernels().to_float("fp4_gemm.out_bf16"));
    MESSAGE("fp4_gemm through Linear<Fp4G32>: " << bad << "/" << y.size() << " differ");
    CHECK(bad == 0);
  }
}

TEST_CASE("tiny_fp8: zero-copy views of the checkpoint tensors") {
  const auto& f = tiny();
  constexpr std::size_t rows = 5;

  SUBCASE("FP8 wkv [192, 128]: a partial second band; the view equals ops::fp8_gemm") {
    const std::size_t n = dim(f, "layers.0.attn.wkv.weight", 0);
    const std::size_t k = dim(f, "layers.0.attn.wkv.weight", 1);
    const auto codes = f.span<fp8_e4m3>("layers.0.attn.wkv.weight");
    const auto scales = f.span<ue8m0>("layers.0.attn.wkv.scale");
    const auto l = d::Linear<d::Fp8B128>::view(codes, scales, n, k);
    CHECK_FALSE(l.owns_bytes());
    CHECK(l.codes().data() == codes.data());  // no copy
    // bf16-valued input, as the reference feeds it
    auto x = random_normal(rows * k, 51);
    for (float& v : x) v = d::round_bf16(v);
    std::vector<float> y(rows * n);
    l.forward<d::ReferenceNumerics>(d::ConstView2<float>(x.data(), rows, k),
                                    d::View2<float>(y.data(), rows, n));
    std::vector<fp8_e4m3> xq(rows * k);
    std::vector<float> xs(rows * k / 128);
    d::ops::act_quant(x.data(), rows, k, 128, d::ops::ScaleFmt::ue8m0, xq.data(), xs.data());
    std::vector<bf16> c(rows * n);
    d::ops::fp8_gemm(d::ConstView2<fp8_e4m3>(xq.data(), rows, k),
                     d::ConstView2<float>(xs.data(), rows, k / 128),
                     d::ConstView2<fp8_e4m3>(codes.data(), n, k),
                     d::ConstView2<ue8m0>(scales.data(), 2, 1), d::View2<bf16>(c.data(), rows, n));
    std::vector<float> want;
    for (bf16 v : c) want.push_back(v.to_float());
    CHECK(mismatches(y, want) == 0);
    // rows of the second (partial) band use its scale
    std::vector<float> row(k);
    l.dequantize_row(150, row.data());
    const auto all = f.to_float("layers.0.attn.wkv.weight");
    for (std::size_t c2 = 0; c2 < k; ++c2) {
      REQUIRE(row[c2] == all[150 * k + c2] * scales[1].to_float());
    }
  }
  SUBCASE("FP4 expert w1: views over the F4 (runtime) and I8 (release) bytes agree") {
    const std::string w = "layers.0.ffn.experts.0.w1";
    const std::size_t n = dim(f, w + ".weight", 0), k = dim(f, w + ".weight", 1);
    const auto a =
        d::Linear<d::Fp4G32>::view_bytes(f.bytes(w + ".weight"), f.bytes(w + ".scale"), n, k);
    const auto b = d::Linear<d::Fp4G32>::view_bytes(f.bytes("hf." + w + ".weight"),
                                                    f.bytes(w + ".scale"), n, k);
    const auto x = random_normal(rows * k, 52);
    std::vector<float> ya(rows * n), yb(rows * n);
    a.forward<d::ReferenceNumerics>(d::ConstView2<float>(x.data(), rows, k),
                                    d::View2<float>(ya.data(), rows, n));
    b.forward<d::ReferenceNumerics>(d::ConstView2<float>(x.data(), rows, k),
                                    d::View2<float>(yb.data(), rows, n));
    CHECK(mismatches(ya, yb) == 0);
    // against the double reference with its budget (K = 128: 4 groups)
    std::vector<float> yf(rows * n), wd(k), xd(k);
    a.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), rows, k),
                                    d::View2<float>(yf.data(), rows, n));
    double worst = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      d::Fp8Act128::block_type xa{};
      d::Fp8Act128::quantize(x.data() + r * k, xa);
      d::Fp8Act128::dequantize(xa, xd.data());
      for (std::size_t o = 0; o < n; ++o) {
        a.dequantize_row(o, wd.data());
        double exact = 0, s = 0;
        for (std::size_t c = 0; c < k; ++c) {
          exact += static_cast<double>(wd[c]) * xd[c];
          s += std::fabs(static_cast<double>(wd[c]) * xd[c]);
        }
        const double err = std::fabs(yf[r * n + o] - exact);
        worst = std::max(worst, err / (kU * s));
        REQUIRE(err <= 5 * kU * s);
      }
    }
    MESSAGE("tiny_fp8 expert w1 (FP4, K = 128): worst |err| = " << worst << " u·S (budget 5)");
  }
}

TEST_CASE("ownership: copies share the bytes, a view can keep its owner alive") {
  constexpr std::size_t n = 4, k = 64;
  const auto w = random_normal(n * k, 61);
  const auto x = random_normal(k, 62);
  const d::ConstView2<float> xv(x.data(), 1, k);
  const auto owned = d::Linear<d::Q8_0>::quantize(d::ConstView2<float>(w.data(), n, k));
  std::vector<float> want(n), got(n);
  owned.forward<d::PlainFp32Numerics>(xv, d::View2<float>(want.data(), 1, n));

  d::Linear<d::Q8_0> copy;
  {
    const auto tmp = owned;  // NOLINT(performance-unnecessary-copy-initialization)
    copy = tmp;
  }
  CHECK(copy.blocks().data() == owned.blocks().data());
  copy.forward<d::PlainFp32Numerics>(xv, d::View2<float>(got.data(), 1, n));
  CHECK(want == got);

  auto held = std::make_shared<std::vector<d::Q8_0::block_type>>(owned.blocks().begin(),
                                                                 owned.blocks().end());
  const auto view = d::Linear<d::Q8_0>::view(*held, n, k, held);
  held.reset();  // the view's keep-alive is now the only owner
  CHECK_FALSE(view.owns_bytes());
  view.forward<d::PlainFp32Numerics>(xv, d::View2<float>(got.data(), 1, n));
  CHECK(want == got);
}

TEST_CASE("AnyLinear: formats mixed per tensor, chosen at run time") {
  static_assert(d::LinearOp<d::AnyLinear>);
  constexpr std::size_t k = 256, rows = 2;
  const auto x = random_normal(rows * k, 71);
  const d::ConstView2<float> xv(x.data(), rows, k);

  // the official checkpoint's mix (FP8 dense, FP4 experts, BF16 wo_a) and a Q4_K_M-like one
  const auto w8 = test_weight(130, k, 72);
  const auto w4 = test_weight(64, k, 73);
  const auto wb = test_weight(48, k, 74);
  const auto wk = test_weight(32, k, 75);
  const auto fp8 = d::Linear<d::Fp8B128>::quantize(d::ConstView2<float>(w8.data(), 130, k));
  const auto fp4 = d::Linear<d::Fp4G32>::quantize(d::ConstView2<float>(w4.data(), 64, k));
  const auto b16 =
      d::Linear<d::BF16, d::DequantDot>::quantize(d::ConstView2<float>(wb.data(), 48, k));
  const auto q4k = d::Linear<d::Q4_K>::quantize(d::ConstView2<float>(wk.data(), 32, k));
  const auto q6k = d::Linear<d::Q6_K>::quantize(d::ConstView2<float>(wk.data(), 32, k));
  const std::vector<d::AnyLinear> layers = {fp8, fp4, b16, q4k, q6k};

  auto run = [&](const auto& l) {
    std::vector<float> y(rows * l.out_features());
    l.template forward<d::ReferenceNumerics>(xv, d::View2<float>(y.data(), rows, l.out_features()));
    return y;
  };
  CHECK(run(layers[0]) == run(fp8));
  CHECK(run(layers[1]) == run(fp4));
  CHECK(run(layers[2]) == run(b16));
  CHECK(run(layers[3]) == run(q4k));
  CHECK(run(layers[4]) == run(q6k));
  CHECK(layers[0].format_id() == d::FormatId::fp8_b128);
  CHECK(layers[1].format_id() == d::FormatId::fp4_g32);
  CHECK(layers[2].semantics_name() == "dequant-dot");
  CHECK(layers[4].semantics_name() == "partner-dot");
  CHECK(layers[3].holds<d::Linear<d::Q4_K>>());
  CHECK(layers[0].out_features() == 130);
  CHECK(layers[1].in_features() == k);

  // by FormatId, as a GGUF / safetensors reader would build them (zero-copy)
  const auto q6_bytes = std::as_bytes(q6k.blocks());
  const auto by_id = d::any_linear_view(d::FormatId::q6_k, q6_bytes, 32, k);
  CHECK(by_id.holds<d::Linear<d::Q6_K>>());
  CHECK(by_id.get<d::Linear<d::Q6_K>>().blocks().data() == q6k.blocks().data());
  CHECK(run(by_id) == run(q6k));
  const auto by_id_dq = d::any_linear_view<d::DequantDot>(d::FormatId::q6_k, q6_bytes, 32, k);
  CHECK(by_id_dq.holds<d::Linear<d::Q6_K, d::DequantDot>>());
  const auto native_by_id = d::any_linear_view(d::FormatId::fp4_g32, std::as_bytes(fp4.codes()),
                                               std::as_bytes(fp4.scales()), 64, k);
  CHECK(run(native_by_id) == run(fp4));

  CHECK_THROWS_AS(d::any_linear_view(d::FormatId::fp8_b128, q6_bytes, 32, k), d::FormatError);
  CHECK_THROWS_AS(d::any_linear_view(d::FormatId::q8_k, q6_bytes, 32, k), d::FormatError);
  CHECK_THROWS_AS(d::any_linear_view(static_cast<d::FormatId>(77), q6_bytes, 32, k),
                  d::FormatError);
  CHECK_THROWS_AS(d::any_linear_view(d::FormatId::q6_k, std::as_bytes(fp4.codes()),
                                     std::as_bytes(fp4.scales()), 64, k),
                  d::FormatError);
  CHECK_THROWS_AS(d::any_linear_view(d::FormatId::q6_k, q6_bytes, 31, k), d::ShapeError);
}

TEST_CASE("bad shapes and bytes are refused with ShapeError / InputError") {
  const auto w = random_normal(4 * 512, 81);
  // in_features not a multiple of the block (or of the partner's block)
  CHECK_THROWS_AS(d::Linear<d::Q4_K>::quantize(d::ConstView2<float>(w.data(), 4, 128)),
                  d::ShapeError);
  CHECK_THROWS_AS(d::Linear<d::Fp4G32>::quantize(d::ConstView2<float>(w.data(), 4, 64)),
                  d::ShapeError);  // act_quant needs 128
  CHECK_NOTHROW(
      d::Linear<d::Fp4G32, d::DequantDot>::quantize(d::ConstView2<float>(w.data(), 4, 64)));
  CHECK_THROWS_AS(d::Linear<d::Q8_0>::quantize(d::ConstView2<float>(w.data(), 4, 48)),
                  d::ShapeError);

  const auto l = d::Linear<d::Q8_0>::quantize(d::ConstView2<float>(w.data(), 4, 512));
  std::vector<float> x(2 * 512), y(2 * 4);
  CHECK_THROWS_AS(l.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), 2, 256),
                                                  d::View2<float>(y.data(), 2, 4)),
                  d::ShapeError);
  CHECK_THROWS_AS(l.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), 2, 512),
                                                  d::View2<float>(y.data(), 1, 4)),
                  d::ShapeError);
  CHECK_THROWS_AS(l.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), 2, 512),
                                                  d::View2<float>(y.data(), 2, 3)),
                  d::ShapeError);

  // block counts and byte counts
  CHECK_THROWS_AS(d::Linear<d::Q8_0>::view(l.blocks().first(5), 4, 512), d::ShapeError);
  CHECK_THROWS_AS(d::Linear<d::Q8_0>(std::vector<d::Q8_0::block_type>(3), 4, 512), d::ShapeError);
  const auto bytes = std::as_bytes(l.blocks());
  CHECK_THROWS_AS(d::Linear<d::Q8_0>::view_bytes(bytes.first(bytes.size() - 1), 4, 512),
                  d::ShapeError);
  // misaligned Q4_K blocks (f16 fields: 2-byte alignment)
  std::vector<std::byte> raw(2 * sizeof(d::Q4_K::block_type) + 1);
  CHECK_THROWS_AS(
      d::Linear<d::Q4_K>::view_bytes(std::span<const std::byte>(raw).subspan(1), 2, 256),
      d::InputError);
  CHECK_NOTHROW(d::Linear<d::Q4_K>::view_bytes(
      std::span<const std::byte>(raw).first(raw.size() - 1), 2, 256));

  // native: codes / scales counts, the 128-row band count
  std::vector<fp8_e4m3> codes(130 * 256);
  std::vector<ue8m0> scales(2 * 2);
  CHECK_NOTHROW(d::Linear<d::Fp8B128>(codes, scales, 130, 256));
  CHECK_THROWS_AS(d::Linear<d::Fp8B128>(codes, std::vector<ue8m0>(1 * 2), 130, 256), d::ShapeError);
  CHECK_THROWS_AS(d::Linear<d::Fp8B128>(codes, scales, 129, 256), d::ShapeError);
  CHECK_THROWS_AS(d::Linear<d::Fp4G32>::view_bytes(std::as_bytes(std::span(codes)).first(100),
                                                   std::as_bytes(std::span(scales)), 2, 128),
                  d::ShapeError);
}

// ---- llama.cpp's repacked weights (GgmlRepack, F::dot_repacked) ----
// tests/data/ggml-repack: ggml_mul_mat / ggml_mul_mat_id run by ggml itself with the weight in
// its CPU_REPACK buffer (an x86 AVX-512 build, see tests/data/README.md). mul_mat: 13 activation
// rows, so rows 0-11 ran the repacked GEMM and row 12 the GEMV; mul_mat_id: 5 tokens choosing 2
// of 4 experts, every row the GEMV.
namespace {

struct RepackCase {
  std::int32_t kind = 0;  // 0 mul_mat, 1 mul_mat_id
  std::int32_t K = 0, N = 0, M = 0, E = 0, n_used = 0;
  std::vector<std::byte> w;  // E·N rows of K, ggml's standard block layout
  std::vector<float> x;      // [M, K]
  std::vector<std::int32_t> ids;
  std::vector<float> out;  // ggml's repacked result: [M, N] or [M, n_used, N]
};

RepackCase read_repack_case(const std::string& file) {
  const auto raw = dsv4::test::read_raw<std::uint8_t>("ggml-repack/" + file);
  REQUIRE(raw.size() > 48);
  REQUIRE(std::memcmp(raw.data(), "RPKDUMP1", 8) == 0);
  std::int32_t h[8];
  std::memcpy(h, raw.data() + 8, sizeof h);
  std::int64_t wbytes = 0;
  std::memcpy(&wbytes, raw.data() + 40, sizeof wbytes);
  RepackCase c;
  c.kind = h[0];
  c.K = h[2];
  c.N = h[3];
  c.M = h[4];
  c.E = h[5];
  c.n_used = h[6];
  REQUIRE(h[7] == 1);  // ggml did repack the weight
  std::size_t at = 48;
  const auto take = [&](auto& v, std::size_t n) {
    using T = typename std::remove_reference_t<decltype(v)>::value_type;
    REQUIRE(at + n * sizeof(T) <= raw.size());
    v.resize(n);
    std::memcpy(v.data(), raw.data() + at, n * sizeof(T));
    at += n * sizeof(T);
  };
  take(c.w, static_cast<std::size_t>(wbytes));
  take(c.x, static_cast<std::size_t>(c.M) * c.K);
  if (c.kind == 1) take(c.ids, static_cast<std::size_t>(c.M) * c.n_used);
  take(c.out, static_cast<std::size_t>(c.M) * (c.kind == 1 ? c.n_used : 1) * c.N);
  return c;
}

template <class F>
std::string repack_stem() {
  std::string s(F::name);
  s[0] = 'q';
  return s;
}

}  // namespace

TEST_CASE_TEMPLATE(
    "Linear repacked as llama.cpp repacks it equals ggml's repacked mul_mat bit for bit", F,
    d::Q4_K, d::Q2_K, d::Q4_0) {
  static_assert(d::RepackedDotFormat<F>);
  using L = d::Linear<F, d::PartnerDot>;
  const int k = std::same_as<F, d::Q4_0> ? 64 : 512;
  const RepackCase c =
      read_repack_case("mm_" + repack_stem<F>() + "_K" + std::to_string(k) + "_N16_M13_d0.bin");
  REQUIRE(c.kind == 0);
  const auto n = static_cast<std::size_t>(c.N);
  const auto kk = static_cast<std::size_t>(c.K);
  const auto m = static_cast<std::size_t>(c.M);
  const L plain = L::view_bytes(c.w, n, kk);
  const L w = plain.repacked(d::GgmlRepack::mul_mat);
  CHECK(w.repack() == d::GgmlRepack::mul_mat);
  std::vector<float> y(m * n);
  w.template forward<d::PlainFp32Numerics>(d::ConstView2<float>(c.x.data(), m, kk),
                                           d::View2<float>(y.data(), m, n));
  int mismatches = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    mismatches += std::bit_cast<std::uint32_t>(y[i]) != std::bit_cast<std::uint32_t>(c.out[i]);
  CHECK(mismatches == 0);
  // every row alone is a GEMV row: row 12 again, rows 0-11 differ (k-quants: the data tells the
  // GEMM's order from the GEMV's)
  int gemv_alone_differs = 0;
  for (std::size_t r = 0; r < m; ++r) {
    std::vector<float> y1(n);
    w.template forward<d::PlainFp32Numerics>(d::ConstView2<float>(c.x.data() + r * kk, 1, kk),
                                             d::View2<float>(y1.data(), 1, n));
    for (std::size_t o = 0; o < n; ++o) {
      const bool same =
          std::bit_cast<std::uint32_t>(y1[o]) == std::bit_cast<std::uint32_t>(y[r * n + o]);
      if (r == m - 1) CHECK(same);
      gemv_alone_differs += !same;
    }
  }
  if constexpr (!std::same_as<F, d::Q4_0>) CHECK(gemv_alone_differs > 0);
  // vec_dot (not repacked) differs from the repacked kernels on this data
  std::vector<float> yv(m * n);
  plain.template forward<d::PlainFp32Numerics>(d::ConstView2<float>(c.x.data(), m, kk),
                                               d::View2<float>(yv.data(), m, n));
  int vec_dot_differs = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    vec_dot_differs += std::bit_cast<std::uint32_t>(yv[i]) != std::bit_cast<std::uint32_t>(y[i]);
  CHECK(vec_dot_differs > 0);
  // rows(): a slice keeps the repacking; a weight of 12 rows is refused
  CHECK(w.rows(8, 8).repack() == d::GgmlRepack::mul_mat);
  CHECK_THROWS_AS(plain.rows(0, 12).repacked(d::GgmlRepack::mul_mat), d::ShapeError);
  CHECK_NOTHROW(plain.rows(0, 12).repacked(d::GgmlRepack::none));
}

TEST_CASE_TEMPLATE("Linear repacked as llama.cpp's experts equals ggml's repacked mul_mat_id", F,
                   d::Q4_K, d::Q2_K, d::Q4_0) {
  using L = d::Linear<F, d::PartnerDot>;
  const int k = std::same_as<F, d::Q4_0> ? 64 : 256;
  const RepackCase c =
      read_repack_case("mmid_" + repack_stem<F>() + "_K" + std::to_string(k) + "_N16_T5.bin");
  REQUIRE(c.kind == 1);
  const auto n = static_cast<std::size_t>(c.N);
  const auto kk = static_cast<std::size_t>(c.K);
  const L all = L::view_bytes(c.w, static_cast<std::size_t>(c.E) * n, kk);
  int mismatches = 0;
  int checked = 0;
  for (int e = 0; e < c.E; ++e) {
    // the tokens that chose expert e, as a MoE gathers them
    std::vector<float> xs;
    std::vector<std::pair<int, int>> slots;  // (token, slot)
    for (int t = 0; t < c.M; ++t)
      for (int u = 0; u < c.n_used; ++u)
        if (c.ids[static_cast<std::size_t>(t * c.n_used + u)] == e) {
          xs.insert(xs.end(), c.x.begin() + static_cast<std::ptrdiff_t>(t * kk),
                    c.x.begin() + static_cast<std::ptrdiff_t>((t + 1) * kk));
          slots.emplace_back(t, u);
        }
    if (slots.empty()) continue;
    const L expert =
        all.rows(static_cast<std::size_t>(e) * n, n).repacked(d::GgmlRepack::mul_mat_id);
    std::vector<float> y(slots.size() * n);
    expert.template forward<d::PlainFp32Numerics>(d::ConstView2<float>(xs.data(), slots.size(), kk),
                                                  d::View2<float>(y.data(), slots.size(), n));
    for (std::size_t j = 0; j < slots.size(); ++j)
      for (std::size_t o = 0; o < n; ++o) {
        const auto [t, u] = slots[j];
        const float want = c.out[(static_cast<std::size_t>(t * c.n_used + u)) * n + o];
        mismatches +=
            std::bit_cast<std::uint32_t>(y[j * n + o]) != std::bit_cast<std::uint32_t>(want);
        ++checked;
      }
  }
  CHECK(checked == c.M * c.n_used * c.N);
  CHECK(mismatches == 0);
}

// F32 and F16 under PartnerDot sum in llama.cpp's x86 float GEMM order (F::dot_x86, K a multiple
// of 16): layer 0's router gate (F32 [16, 256]) of the tiny model on llama.cpp's own input rows
// gives llama.cpp's ffn_moe_logits-0 bit for bit (tests/data/llamacpp/ops/router_gate_layer0.*).
TEST_CASE("Linear<F32, PartnerDot>: llama.cpp's router logits bit for bit") {
  const auto w = dsv4::test::read_raw<float>("llamacpp/ops/router_gate_layer0.weight.f32");
  const auto x = dsv4::test::read_raw<float>("llamacpp/ops/router_gate_layer0.in.f32");
  const auto want = dsv4::test::read_raw<float>("llamacpp/ops/router_gate_layer0.out.f32");
  REQUIRE(w.size() == 16 * 256);
  const std::size_t rows = x.size() / 256;
  REQUIRE(want.size() == rows * 16);
  std::vector<d::F32::block_type> blocks(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) blocks[i].v = w[i];
  const d::Linear<d::F32, d::PartnerDot> gate(std::move(blocks), 16, 256);
  std::vector<float> y(rows * 16);
  gate.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), rows, 256),
                                     d::View2<float>(y.data(), rows, 16));
  CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
  // the ascending fp32 sum (DequantDot) does not give them
  const d::Linear<d::F32, d::DequantDot> plain = d::f32_linear(w, 16, 256);
  std::vector<float> yp(rows * 16);
  plain.forward<d::PlainFp32Numerics>(d::ConstView2<float>(x.data(), rows, 256),
                                      d::View2<float>(yp.data(), rows, 16));
  CHECK(std::memcmp(yp.data(), want.data(), yp.size() * sizeof(float)) != 0);
}
