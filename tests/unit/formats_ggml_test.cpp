// GGUF block formats F32, F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, MXFP4
// and the format registry, checked against blocks, values and dots made by ggml itself.
//
// Spec: spec/formats.md §10.3; STYLE.md §2.9 (GGUF blocks byte for byte). Data:
// tests/data/ggml-quants (see tests/data/README.md): 8 rows × 512 inputs quantized by ggml's
// reference quantizers, their dequantization, the activation vector quantized to each format's
// partner, and ggml's CPU vec_dot of every row with it.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/registry.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
using d::test::read_raw;

constexpr std::size_t kRows = 8;
constexpr std::size_t kCols = 512;

/// ggml's file-name spelling of a format: the GGUF name in lower case ("IQ4_NL" → "iq4_nl").
template <class F>
std::string stem() {
  std::string s(F::name);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return "ggml-quants/" + s;
}

/// Reads a file of blocks of format F; checks the size is `n_blocks` blocks.
template <class F>
std::vector<typename F::block_type> read_blocks(const std::string& file, std::size_t n_blocks) {
  const auto bytes = read_raw<std::uint8_t>(file);
  REQUIRE(bytes.size() == n_blocks * sizeof(typename F::block_type));
  std::vector<typename F::block_type> blocks(n_blocks);
  std::memcpy(blocks.data(), bytes.data(), bytes.size());
  return blocks;
}

/// Quantizes n values (a multiple of F::block_elems) with Quant(in, block).
template <class F, class Quant>
std::vector<typename F::block_type> quantize_row(const float* x, std::size_t n, Quant quant) {
  std::vector<typename F::block_type> out(n / F::block_elems);
  for (std::size_t b = 0; b < out.size(); ++b) quant(x + b * F::block_elems, out[b]);
  return out;
}

/// Dequantizes n_blocks blocks.
template <class F>
std::vector<float> dequantize_row(const typename F::block_type* blocks, std::size_t n_blocks) {
  std::vector<float> out(n_blocks * F::block_elems);
  for (std::size_t b = 0; b < n_blocks; ++b)
    F::dequantize(blocks[b], out.data() + b * F::block_elems);
  return out;
}

/// Index of the first block whose bytes differ, or -1.
template <class B>
long first_block_mismatch(const B* got, const B* want, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(B)) != 0) return static_cast<long>(i);
  }
  return -1;
}

template <class B>
std::string hex(const B& b) {
  std::string s;
  const auto* p = reinterpret_cast<const unsigned char*>(&b);
  static const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < sizeof(B); ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

/// Checks that quantizing input.f32 row by row with `quant` gives exactly the blocks in `file`.
///
/// stale_zero_codes: the IQ4_NL reference quantizer of the ggml that made the data leaves the
/// codes of an all-zero block (d = 0) unset, so they repeat the previous block's codes (at a row
/// start: the previous call's, i.e. stack garbage). dsv4 writes codes 0 there (as newer ggml
/// does); the values are zero either way. For such blocks the check is: same d, dsv4's codes 0,
/// and ggml's codes equal to those of the block before (confirming the explanation).
/// A row-major float32 input file of the golden sets.
struct Inputs {
  std::string file;
  std::size_t rows;
  std::size_t cols;
};
const Inputs kGolden{"ggml-quants/input.f32", kRows, kCols};
const Inputs kStress{"ggml-quants/stress32_input.f32", 8, 1024};

template <class F, class Quant>
void check_quantizer(const Inputs& in, const std::string& file, Quant quant,
                     bool stale_zero_codes = false) {
  const std::size_t rows = in.rows;
  const std::size_t cols = in.cols;
  const auto input = read_raw<float>(in.file);  // [rows, cols]
  REQUIRE(input.size() == rows * cols);
  const std::size_t per_row = cols / F::block_elems;
  const auto want = read_blocks<F>(file, rows * per_row);  // [rows, per_row]
  int stale_blocks = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    auto got = quantize_row<F>(input.data() + r * cols, cols, quant);
    if constexpr (std::is_same_v<F, d::IQ4_NL>) {
      for (std::size_t b = 0; stale_zero_codes && b < per_row; ++b) {
        const float* x = input.data() + r * cols + b * F::block_elems;
        if (d::detail::ggml::abs_max(x, F::block_elems) >= 1e-15f) continue;
        const std::size_t i = r * per_row + b;
        CAPTURE(r);
        CAPTURE(b);
        CHECK(got[b].d.bits == want[i].d.bits);
        CHECK(std::all_of(got[b].qs, got[b].qs + 16, [](std::uint8_t q) { return q == 0; }));
        REQUIRE(i > 0);
        CHECK(std::memcmp(want[i].qs, want[i - 1].qs, 16) == 0);
        got[b] = want[i];  // accepted: compare the remaining blocks below
        ++stale_blocks;
      }
    }
    const long bad = first_block_mismatch(got.data(), want.data() + r * per_row, per_row);
    CAPTURE(r);
    CAPTURE(bad);
    if (bad >= 0) {
      const auto i = static_cast<std::size_t>(bad);
      INFO("got  ", hex(got[i]));
      INFO("want ", hex(want[r * per_row + i]));
      CHECK(bad == -1);
    }
  }
  if (stale_zero_codes) CHECK(stale_blocks > 0);  // both inputs have all-zero blocks
}

/// Checks that dequantizing `qfile` gives exactly the floats of `deqfile` (bit patterns).
template <class F>
void check_dequantizer(const std::string& qfile, const std::string& deqfile) {
  const std::size_t n_blocks = kRows * kCols / F::block_elems;
  const auto blocks = read_blocks<F>(qfile, n_blocks);
  const auto want = read_raw<std::uint32_t>(deqfile);  // [8, 512] fp32 bit patterns
  REQUIRE(want.size() == kRows * kCols);
  const auto got = dequantize_row<F>(blocks.data(), n_blocks);
  std::size_t mismatches = 0;
  std::size_t first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::uint32_t g;
    std::memcpy(&g, &got[i], 4);
    if (g != want[i] && mismatches++ == 0) first = i;
  }
  CAPTURE(first);
  CHECK(mismatches == 0);
}

}  // namespace

// Formats with a reference quantizer and golden blocks from ggml.
#define DSV4_GGML_GOLDEN_FORMATS                                                               \
  d::F16, d::BF16, d::Q8_0, d::Q8_1, d::Q4_0, d::Q4_1, d::Q5_0, d::Q5_1, d::IQ4_NL, d::IQ4_XS, \
      d::MXFP4
// Weight formats with a golden dot product against their activation partner.
#define DSV4_GGML_DOT_FORMATS \
  d::F16, d::BF16, d::Q8_0, d::Q4_0, d::Q4_1, d::Q5_0, d::Q5_1, d::IQ4_NL, d::IQ4_XS, d::MXFP4

TEST_CASE_TEMPLATE("ggml golden: quantize reproduces ggml's reference quantizer byte for byte", F,
                   DSV4_GGML_GOLDEN_FORMATS) {
  INFO("format ", F::name);
  check_quantizer<F>(
      kGolden, stem<F>() + ".q",
      [](const float* in, typename F::block_type& b) { F::quantize(in, b); },
      /*stale_zero_codes=*/std::is_same_v<F, d::IQ4_NL>);
}

TEST_CASE_TEMPLATE("ggml golden: dequantize reproduces ggml's values bit for bit", F,
                   DSV4_GGML_GOLDEN_FORMATS) {
  INFO("format ", F::name);
  check_dequantizer<F>(stem<F>() + ".q", stem<F>() + ".deq.f32");
}

TEST_CASE("ggml golden: IQ4_NL chunk quantizer (llama-quantize without imatrix)") {
  check_quantizer<d::IQ4_NL>(
      kGolden, "ggml-quants/iq4_nl.chunk.q",
      [](const float* in, d::IQ4_NL::block_type& b) { d::IQ4_NL::quantize_chunk(in, b); });
  check_dequantizer<d::IQ4_NL>("ggml-quants/iq4_nl.chunk.q", "ggml-quants/iq4_nl.chunk.deq.f32");
  // The two quantizers really differ on this data (else the test above proves nothing new).
  const auto ref = read_raw<std::uint8_t>("ggml-quants/iq4_nl.q");
  const auto chunk = read_raw<std::uint8_t>("ggml-quants/iq4_nl.chunk.q");
  CHECK(ref != chunk);
}

TEST_CASE_TEMPLATE("ggml golden: activation quantization matches ggml's vec_dot_type blocks", F,
                   DSV4_GGML_DOT_FORMATS) {
  using A = typename F::activation;
  INFO("format ", F::name, ", activation ", A::name);
  const auto act = read_raw<float>("ggml-quants/act.f32");  // [512]
  REQUIRE(act.size() == kCols);
  const std::size_t n_blocks = kCols / A::block_elems;
  const auto want = read_blocks<A>(stem<F>() + ".act_q", n_blocks);
  const auto got = quantize_row<A>(
      act.data(), kCols, [](const float* in, typename A::block_type& b) { A::quantize(in, b); });
  const long bad = first_block_mismatch(got.data(), want.data(), n_blocks);
  CAPTURE(bad);
  CHECK(bad == -1);
}

// Dot products. ggml's numbers come from its x86 AVX-512 kernels, which sum the same exact
// per-block integer dots with the same fp32 scale products as dsv4 but in another order (8-/16-lane
// accumulators, FMA); the exact reference is ggml's double dot of the dequantized operands. Let
// S = Σ_i |w_i·a_i| over the dequantized values and u = 2^-24. The budget is
//   |dsv4 - ggml| ≤ 4·u·S   and   |dsv4 - exact| ≤ 2·u·S   (about 2.4e-7·S and 1.2e-7·S).
// Why so small: every term is one exact integer dot times one or two rounded fp32 scale products,
// and the fp32 sums have n ≤ 32 terms (512 for F16/BF16, whose products are exact and whose sum
// runs in double); rounding errors of independent sign grow like √n·u, and on this data the
// largest observed deviations are 0.9·u·S from ggml and 0.5·u·S from exact. The worst-case
// bound (n + 3)·u·S per side would be looser still, but even it is ~50× smaller than any one
// block's share of S, so a wrong scale, code or block is never inside the budget.
// For Q4_1/Q5_1 the dot's min term uses the activation block's f16 `s` instead of Σ of its
// dequantized values (ggml's design; ≤ 0.013 absolute here); the test adds that known shift,
// Σ_b m_b·(s_b - d_b·Σq_b), to the exact reference, so the budget stays a pure rounding budget.
namespace {

/// Σ_b m_b·(s_b - d_b·Σq_b): how much the Q8_1 `s` shortcut moves a Q4_1/Q5_1 dot.
template <class F>
double min_term_shift(const typename F::block_type* w, const typename F::activation::block_type* a,
                      std::size_t n_blocks) {
  if constexpr (std::is_same_v<typename F::activation, d::Q8_1>) {
    double shift = 0;
    for (std::size_t b = 0; b < n_blocks; ++b) {
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += a[b].qs[j];
      const double exact_s = static_cast<double>(a[b].d.to_float()) * sum;
      shift += static_cast<double>(w[b].m.to_float()) *
               (static_cast<double>(a[b].s.to_float()) - exact_s);
    }
    return shift;
  } else {
    (void)w;
    (void)a;
    (void)n_blocks;
    return 0.0;
  }
}

}  // namespace

TEST_CASE_TEMPLATE("ggml golden: dot matches ggml's CPU vec_dot within the rounding budget", F,
                   DSV4_GGML_DOT_FORMATS) {
  using A = typename F::activation;
  INFO("format ", F::name);
  const std::size_t nw = kCols / F::block_elems;
  const std::size_t na = kCols / A::block_elems;
  const auto w = read_blocks<F>(stem<F>() + ".q", kRows * nw);           // [8, nw]
  const auto a = read_blocks<A>(stem<F>() + ".act_q", na);               // [na]
  const auto want = read_raw<float>(stem<F>() + ".vecdot.f32");          // [8]
  const auto exact = read_raw<double>(stem<F>() + ".vecdot_exact.f64");  // [8]
  REQUIRE(want.size() == kRows);
  REQUIRE(exact.size() == kRows);
  const auto act = dequantize_row<A>(a.data(), na);
  const double u = std::ldexp(1.0, -24);
  for (std::size_t r = 0; r < kRows; ++r) {
    const auto* wr = w.data() + r * nw;
    const float got = F::dot(wr, a.data(), nw);
    const auto wv = dequantize_row<F>(wr, nw);
    double s = 0;
    for (std::size_t i = 0; i < kCols; ++i) s += std::fabs(static_cast<double>(wv[i]) * act[i]);
    const double exact_r = exact[r] + min_term_shift<F>(wr, a.data(), nw);
    CAPTURE(r);
    CAPTURE(got);
    CAPTURE(want[r]);
    CAPTURE(exact_r);
    CAPTURE(s);
    CHECK(std::fabs(static_cast<double>(got) - want[r]) <= 4 * u * s);
    CHECK(std::fabs(static_cast<double>(got) - exact_r) <= 2 * u * s);
  }
}

// The golden dots come from ggml's x86 kernels, and its CPU backend quantized the activation: the
// formats' x86 variants (what Linear<F, PartnerDot> and the CPU backend compute) reproduce both
// bit for bit.
TEST_CASE_TEMPLATE("ggml golden: dot_x86 and quantize_x86 are ggml's x86 CPU kernels bit for bit",
                   F, d::Q8_0, d::Q4_0, d::Q4_1, d::Q5_0, d::Q5_1, d::IQ4_NL, d::MXFP4) {
  using A = typename F::activation;
  static_assert(d::X86DotFormat<F> && d::X86QuantizableFormat<A>);
  INFO("format ", F::name);
  const std::size_t nw = kCols / F::block_elems;
  const std::size_t na = kCols / A::block_elems;
  const auto w = read_blocks<F>(stem<F>() + ".q", kRows * nw);
  const auto a = read_blocks<A>(stem<F>() + ".act_q", na);
  const auto want = read_raw<std::uint32_t>(stem<F>() + ".vecdot.f32");  // fp32 bit patterns
  REQUIRE(want.size() == kRows);
  const auto act = read_raw<float>("ggml-quants/act.f32");
  const auto got_a =
      quantize_row<A>(act.data(), kCols, [](const float* in, auto& b) { A::quantize_x86(in, b); });
  CHECK(first_block_mismatch(got_a.data(), a.data(), na) == -1);
  for (std::size_t r = 0; r < kRows; ++r) {
    CAPTURE(r);
    CHECK(std::bit_cast<std::uint32_t>(F::dot_x86(w.data() + r * nw, a.data(), nw)) == want[r]);
  }
}

TEST_CASE("Q8_0::quantize_x86 rounds halves to even, Q8_0::quantize away from zero") {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 8) - 3.5f;  // ±0.5, ±1.5, ...
  x[31] = 127.f;                                                         // the scale is exactly 1
  d::Q8_0::block_type even{}, away{};
  d::Q8_0::quantize_x86(x, even);
  d::Q8_0::quantize(x, away);
  CHECK(even.d.to_float() == 1.0f);
  for (int j = 0; j < 31; ++j) {
    CAPTURE(j);
    CHECK(even.qs[j] == static_cast<int>(std::nearbyint(x[j])));
    CHECK(away.qs[j] == static_cast<int>(std::round(x[j])));
  }
  CHECK(std::memcmp(even.qs, away.qs, 31) != 0);
}

TEST_CASE("F32: identity blocks and a double-accumulated dot") {
  const auto input = read_raw<float>("ggml-quants/input.f32");
  const auto act = read_raw<float>("ggml-quants/act.f32");
  REQUIRE(act.size() == kCols);
  const auto q = quantize_row<d::F32>(input.data(), kCols,
                                      [](const float* in, auto& b) { d::F32::quantize(in, b); });
  const auto back = dequantize_row<d::F32>(q.data(), q.size());
  CHECK(std::memcmp(back.data(), input.data(), kCols * sizeof(float)) == 0);
  const auto qa = quantize_row<d::F32>(act.data(), kCols,
                                       [](const float* in, auto& b) { d::F32::quantize(in, b); });
  double want = 0;
  for (std::size_t i = 0; i < kCols; ++i) want += static_cast<double>(input[i] * act[i]);
  CHECK(d::F32::dot(q.data(), qa.data(), kCols) == static_cast<float>(want));
}

TEST_CASE("IQ4_XS: a dot equals the dot of its dequantized operands up to fp32 rounding") {
  // Independent of ggml's files: quantize fresh data with dsv4 itself.
  const auto input = read_raw<float>("ggml-quants/input.f32");
  const auto act = read_raw<float>("ggml-quants/act.f32");
  const auto w =
      quantize_row<d::IQ4_XS>(input.data() + 3 * kCols, kCols,
                              [](const float* in, auto& b) { d::IQ4_XS::quantize(in, b); });
  const auto a = quantize_row<d::Q8_K>(act.data(), kCols,
                                       [](const float* in, auto& b) { d::Q8_K::quantize(in, b); });
  const auto wv = dequantize_row<d::IQ4_XS>(w.data(), w.size());
  const auto av = dequantize_row<d::Q8_K>(a.data(), a.size());
  double exact = 0;
  double s = 0;
  for (std::size_t i = 0; i < kCols; ++i) {
    exact += static_cast<double>(wv[i]) * av[i];
    s += std::fabs(static_cast<double>(wv[i]) * av[i]);
  }
  const double got = d::IQ4_XS::dot(w.data(), a.data(), w.size());
  CHECK(std::fabs(got - exact) <= (16 + 3) * std::ldexp(1.0, -24) * s);
}

TEST_CASE("MXFP4: the scale halving matches E8M0 and the edge exponents") {
  // value = kvalues·2^(e-127)/2 must equal the OCP reading: E2M1 code value · 2^(e-127).
  for (int e = 2; e < 255; ++e) {
    const auto ue = static_cast<std::uint8_t>(e);
    CHECK(d::detail::ggml::e8m0_to_fp32_half(ue) * 2.f == d::ue8m0::from_bits(ue).to_float());
  }
  CHECK(d::detail::ggml::e8m0_to_fp32_half(1) == std::ldexp(1.f, -127));
  CHECK(d::detail::ggml::e8m0_to_fp32_half(0) == std::ldexp(1.f, -128));
  for (std::uint8_t c = 0; c < 16; ++c) {
    CHECK(static_cast<float>(d::detail::ggml::kMxfp4Values[c]) ==
          2.f * d::fp4_e2m1::from_bits(c).to_float());
  }
}

TEST_CASE("registry: visit_format reaches every format by its id, and only those") {
  int visited = 0;
  d::for_each_type<d::AllFormats>([&]<class F>() {
    static_assert(d::QuantFormat<F>);
    const auto name = d::visit_format(F::id, []<class G>() { return G::name; });
    CHECK(name == F::name);
    ++visited;
  });
  CHECK(visited == static_cast<int>(d::AllFormats::size));
  CHECK_THROWS_AS(d::visit_format(static_cast<d::FormatId>(4), []<class G>() { return 0; }),
                  d::FormatError);  // ggml's removed Q4_2
  CHECK_THROWS_AS(d::format_info(static_cast<d::FormatId>(12345)), d::FormatError);
  CHECK(d::row_bytes(d::FormatId::q4_0, 64) == 36);
  CHECK_THROWS_AS(d::row_bytes(d::FormatId::q4_k, 100), d::ShapeError);
}

TEST_CASE("registry: block sizes and ids agree with ggml's type table (manifest.tsv)") {
  std::ifstream in(d::test::data_path("ggml-quants/manifest.tsv"));
  REQUIRE(in);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string type;
    std::uint32_t id = 0;
    std::size_t blck = 0;
    std::size_t bytes = 0;
    fields >> type >> id >> blck >> bytes;
    CAPTURE(type);
    const auto info = d::format_info(static_cast<d::FormatId>(id));
    std::string lower(info.name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string want_lower = type;
    std::transform(want_lower.begin(), want_lower.end(), want_lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    CHECK(lower == want_lower);
    CHECK(info.block_elems == blck);
    CHECK(info.block_bytes == bytes);
    CHECK(d::row_bytes(info.id, kCols) == kCols / blck * bytes);
    ++rows;
  }
  CHECK(rows == 17);
}

// ---- stress data: corner-case blocks and ggml's generic (portable) CPU path -------------------
// tests/data/ggml-quants/stress32_* (tools/gen_ggml_stress.c): 8 rows × 1024 values whose 32-value
// blocks cycle through 16 corner-case distributions, quantized by ggml's reference quantizers,
// and dots from ggml built without SIMD. dsv4's dots follow the generic order, so they must
// agree bit for bit here.
namespace {

std::string stress_stem(std::string_view golden_stem) {
  return "ggml-quants/stress32_" + std::string(golden_stem.substr(golden_stem.find('/') + 1));
}

std::uint64_t fnv1a64(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST_CASE_TEMPLATE("ggml stress: corner-case blocks quantize and dequantize exactly as ggml's", F,
                   DSV4_GGML_GOLDEN_FORMATS) {
  INFO("format ", F::name);
  const std::string st = stress_stem(stem<F>());
  check_quantizer<F>(
      kStress, st + ".q", [](const float* in, typename F::block_type& b) { F::quantize(in, b); },
      /*stale_zero_codes=*/std::is_same_v<F, d::IQ4_NL>);
  if constexpr (!std::is_same_v<F, d::Q8_1>) {  // ggml has no Q8_1 dequantizer
    const std::size_t n_blocks = kStress.rows * kStress.cols / F::block_elems;
    const auto blocks = read_blocks<F>(st + ".q", n_blocks);
    const auto deq = dequantize_row<F>(blocks.data(), n_blocks);
    const auto want = read_raw<std::uint64_t>(st + ".deq.fnv");
    REQUIRE(want.size() == 1);
    CHECK(fnv1a64(deq.data(), deq.size() * sizeof(float)) == want[0]);
  }
}

TEST_CASE("ggml stress: IQ4_NL chunk quantizer on corner-case blocks") {
  check_quantizer<d::IQ4_NL>(
      kStress, "ggml-quants/stress32_iq4_nl.chunk.q",
      [](const float* in, d::IQ4_NL::block_type& b) { d::IQ4_NL::quantize_chunk(in, b); });
}

TEST_CASE_TEMPLATE("ggml stress: activation blocks and dots bit for bit with ggml's generic path",
                   F, DSV4_GGML_DOT_FORMATS) {
  using A = typename F::activation;
  INFO("format ", F::name, ", activation ", A::name);
  const std::string st = stress_stem(stem<F>());
  const std::size_t cols = kStress.cols;
  const auto act = read_raw<float>("ggml-quants/stress32_act.f32");  // [cols]
  REQUIRE(act.size() == cols);
  const std::size_t na = cols / A::block_elems;
  const auto a = read_blocks<A>(st + ".act_q", na);  // [na]
  const auto got_a = quantize_row<A>(
      act.data(), cols, [](const float* in, typename A::block_type& b) { A::quantize(in, b); });
  CHECK(first_block_mismatch(got_a.data(), a.data(), na) == -1);

  const std::size_t nw = cols / F::block_elems;
  const auto w = read_blocks<F>(st + ".q", kStress.rows * nw);    // [rows, nw]
  const auto want = read_raw<std::uint32_t>(st + ".vecdot.f32");  // [rows] fp32 bit patterns
  REQUIRE(want.size() == kStress.rows);
  for (std::size_t r = 0; r < kStress.rows; ++r) {
    const float got = F::dot(w.data() + r * nw, a.data(), nw);
    float want_f;
    std::memcpy(&want_f, &want[r], 4);
    CAPTURE(r);
    CAPTURE(got);
    CAPTURE(want_f);
    CHECK(std::bit_cast<std::uint32_t>(got) == want[r]);
  }
}
