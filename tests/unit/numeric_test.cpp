// Exhaustive checks of the storage number types (core/numeric.hpp) against tables written by
// tools/gen_numeric_tables.py with ml_dtypes/numpy: every code decoded, ~524k fp32 inputs encoded.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <limits>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

// Must match LOWS in tools/gen_numeric_tables.py.
constexpr std::uint32_t kLows[] = {0x0000, 0x0FFF, 0x1000, 0x1001, 0x3000, 0x7FFF, 0x8000, 0x8001};

std::vector<float> probes() {
  std::vector<float> x;
  x.reserve(65536 * std::size(kLows));
  for (std::uint32_t h = 0; h < 65536; ++h) {
    for (std::uint32_t l : kLows) x.push_back(std::bit_cast<float>(h << 16 | l));
  }
  return x;
}

bool same_value(float got, float want) {
  if (std::isnan(want)) return std::isnan(got);
  return std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(want);
}

template <class T>
void check_decode(const std::string& table) {
  const auto want = dsv4::test::read_raw<float>("numeric/decode_" + table + ".f32");
  int mismatches = 0;
  for (std::size_t c = 0; c < want.size(); ++c) {
    const float got = T::from_bits(static_cast<decltype(T{}.bits)>(c)).to_float();
    if (!same_value(got, want[c]) && ++mismatches <= 5) {
      INFO("code ", c, ": got ", got, ", want ", want[c]);
      CHECK(false);
    }
  }
  CHECK(mismatches == 0);
}

/// Compares encodings; a NaN result must be a NaN of the same sign (payloads are not specified).
template <class Code, class Encode, class IsNan>
void check_encode(const std::string& table, Encode encode, IsNan is_nan) {
  const auto want = dsv4::test::read_raw<Code>("numeric/" + table);
  const auto x = probes();
  REQUIRE(want.size() == x.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Code got = encode(x[i]);
    const bool ok = is_nan(want[i])
                        ? is_nan(got) && ((got ^ want[i]) >> (8 * sizeof(Code) - 1)) == 0
                        : got == want[i];
    if (!ok && ++mismatches <= 5) {
      INFO(table, ": input bits 0x", std::hex, std::bit_cast<std::uint32_t>(x[i]), " (", x[i],
           "): got 0x", +got, ", want 0x", +want[i]);
      CHECK(false);
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("every code of every small type decodes as ml_dtypes/numpy decode it") {
  check_decode<dsv4::bf16>("bf16");
  check_decode<dsv4::f16>("f16");
  check_decode<dsv4::fp8_e4m3>("e4m3");
  check_decode<dsv4::fp8_e5m2>("e5m2");
  check_decode<dsv4::fp4_e2m1>("e2m1");
  check_decode<dsv4::ue8m0>("e8m0");
}

TEST_CASE("bf16 and f16 round like ml_dtypes and numpy on every probe") {
  const auto bf16_nan = [](std::uint16_t c) { return (c & 0x7fff) > 0x7f80; };
  const auto f16_nan = [](std::uint16_t c) { return (c & 0x7fff) > 0x7c00; };
  check_encode<std::uint16_t>(
      "encode_bf16.u16", [](float f) { return dsv4::bf16(f).bits; }, bf16_nan);
  // the add-and-truncate fast path and the generic encoder agree with the table alike
  check_encode<std::uint16_t>(
      "encode_bf16.u16",
      [](float f) {
        return static_cast<std::uint16_t>(
            dsv4::detail::encode_minifloat<dsv4::detail::Bf16Spec, dsv4::Overflow::ieee>(
                std::bit_cast<std::uint32_t>(f)));
      },
      bf16_nan);
  check_encode<std::uint16_t>(
      "encode_f16.u16", [](float f) { return dsv4::f16(f).bits; }, f16_nan);
}

TEST_CASE("fp8 e4m3fn encodes like ml_dtypes, saturating and not") {
  const auto is_nan = [](std::uint8_t c) { return (c & 0x7f) == 0x7f; };
  check_encode<std::uint8_t>(
      "encode_e4m3.u8",
      [](float f) { return dsv4::fp8_e4m3::from_float<dsv4::Overflow::ieee>(f).bits; }, is_nan);
  check_encode<std::uint8_t>(
      "encode_e4m3_sat.u8", [](float f) { return dsv4::fp8_e4m3::from_float(f).bits; }, is_nan);
}

TEST_CASE("fp8 e5m2 encodes like ml_dtypes, saturating and not") {
  const auto is_nan = [](std::uint8_t c) { return (c & 0x7f) > 0x7c; };
  check_encode<std::uint8_t>(
      "encode_e5m2.u8",
      [](float f) { return dsv4::fp8_e5m2::from_float<dsv4::Overflow::ieee>(f).bits; }, is_nan);
  check_encode<std::uint8_t>(
      "encode_e5m2_sat.u8", [](float f) { return dsv4::fp8_e5m2::from_float(f).bits; }, is_nan);
}

TEST_CASE("fp4 e2m1 and e8m0 encode like ml_dtypes") {
  check_encode<std::uint8_t>(
      "encode_e2m1.u8", [](float f) { return dsv4::fp4_e2m1::from_float(f).bits; },
      [](std::uint8_t) { return false; });
  check_encode<std::uint8_t>(
      "encode_e8m0.u8", [](float f) { return dsv4::ue8m0::from_float(f).bits; },
      [](std::uint8_t c) { return c == 0xff; });
}

TEST_CASE("ue8m0::ceil_pow2 is 2^ceil(log2 v), the activation quantisers' scale rounding") {
  CHECK(dsv4::ue8m0::ceil_pow2(1.0f).to_float() == 1.0f);
  CHECK(dsv4::ue8m0::ceil_pow2(1.0000001f).to_float() == 2.0f);
  CHECK(dsv4::ue8m0::ceil_pow2(0.75f).to_float() == 1.0f);
  CHECK(dsv4::ue8m0::ceil_pow2(1e-4f / 448.0f).to_float() == std::ldexp(1.0f, -22));
  for (int k = -100; k <= 100; ++k) {
    const float p = std::ldexp(1.0f, k);
    CHECK(dsv4::ue8m0::ceil_pow2(p).to_float() == p);
    CHECK(dsv4::ue8m0::ceil_pow2(std::nextafter(p, std::numeric_limits<float>::infinity()))
              .to_float() == 2 * p);
  }
}
