// safetensors reader (include/dsv4/io/safetensors.hpp) and the memory map / byte reader under it:
// the reference kernel file parses with the expected keys, dtypes and values; hand-made malformed
// files each fail with a FormatError that names the problem.
#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <dsv4/io/byte_reader.hpp>
#include <dsv4/io/mmap.hpp>
#include <dsv4/io/safetensors.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using dsv4::DType;
using dsv4::io::SafetensorsFile;

/// A file image: 8-byte length, `header` verbatim, then `data`.
std::vector<std::byte> image(
    const std::string& header, const std::vector<std::uint8_t>& data,
    std::uint64_t declared_len = std::numeric_limits<std::uint64_t>::max()) {
  const std::uint64_t len =
      declared_len == std::numeric_limits<std::uint64_t>::max() ? header.size() : declared_len;
  std::vector<std::byte> out(8 + header.size() + data.size());
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

/// The FormatError message parsing `bytes` raises ("" when it parses).
std::string parse_error(std::vector<std::byte> bytes) {
  try {
    SafetensorsFile f(std::move(bytes), "mem.safetensors");
  } catch (const dsv4::FormatError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("kernels.safetensors: header, dtypes, shapes, metadata and values") {
  SafetensorsFile f(dsv4::test::data_path("reference/kernels.safetensors"));
  CHECK(f.size() == 38);
  CHECK(f.names().size() == 38);
  CHECK(f.has("sparse_attn.topk_idxs"));
  CHECK_FALSE(f.has("__metadata__"));
  CHECK_FALSE(f.has("nope"));
  REQUIRE(f.metadata().count("config") == 1);
  CHECK(f.metadata().at("config") == "tiny_a");

  const auto& q = f.info("act_quant.in");
  CHECK(q.dtype == DType::F32);
  CHECK(q.shape == std::vector<std::uint64_t>{16, 256});
  CHECK(q.elements == 16 * 256);
  CHECK(q.bytes.size() == 16 * 256 * 4);

  const auto& idx = f.info("sparse_attn.topk_idxs");
  CHECK(idx.dtype == DType::I32);
  const auto ids = f.span<std::int32_t>("sparse_attn.topk_idxs");
  CHECK(ids.size() == 5 * 150);
  for (auto i : ids) CHECK((i >= -1 && i < 200));

  // to_float of F32 equals the typed span; a typed span of the wrong type is refused.
  const auto v = f.to_float("sparse_attn.softmax_scale");
  REQUIRE(v.size() == 1);
  CHECK(v[0] == f.span<float>("sparse_attn.softmax_scale")[0]);
  CHECK(v[0] == doctest::Approx(0.125));  // 64^-1/2
  CHECK_THROWS_AS(f.span<std::int32_t>("act_quant.in"), dsv4::FormatError);
  CHECK_THROWS_AS(f.to_float("sparse_attn.topk_idxs"), dsv4::FormatError);
  CHECK_THROWS_AS(f.info("missing"), dsv4::FormatError);

  // Moving keeps the views valid.
  SafetensorsFile g = std::move(f);
  CHECK(g.to_float("sparse_attn.softmax_scale")[0] == v[0]);
}

TEST_CASE("narrow dtypes widen exactly: BF16, F16, F8_E4M3, F8_E5M2, F8_E8M0, F4, F64") {
  // BF16 1.5 = 0x3FC0; F16 -2 = 0xC000; E4M3 0x7E = 448; E5M2 0x3C = 1; E8M0 0x80 = 2;
  // F4 byte 0x2F = codes [0xF (-6), 0x2 (1)]; F64 0.25.
  const std::string header = R"({"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},)"
                             R"("b":{"dtype":"F16","shape":[1],"data_offsets":[2,4]},)"
                             R"("c":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[4,5]},)"
                             R"("d":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[5,6]},)"
                             R"("e":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[6,7]},)"
                             R"("f":{"dtype":"F4","shape":[2],"data_offsets":[7,8]},)"
                             R"("g":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
                             R"("h":{"dtype":"U8","shape":[0],"data_offsets":[16,16]}})";
  std::vector<std::uint8_t> data = {0xC0, 0x3F, 0x00, 0xC0, 0x7E, 0x3C, 0x80, 0x2F};
  const double quarter = 0.25;
  const auto qb = std::bit_cast<std::array<std::uint8_t, 8>>(quarter);
  data.insert(data.end(), qb.begin(), qb.end());
  const SafetensorsFile f(image(header, data), "mem");
  CHECK(f.to_float("a") == std::vector<float>{1.5f});
  CHECK(f.to_float("b") == std::vector<float>{-2.0f});
  CHECK(f.to_float("c") == std::vector<float>{448.0f});
  CHECK(f.to_float("d") == std::vector<float>{1.0f});
  CHECK(f.to_float("e") == std::vector<float>{2.0f});
  CHECK(f.to_float("f") == std::vector<float>{-6.0f, 1.0f});
  CHECK(f.info("f").elements == 2);
  CHECK(f.info("f").bytes.size() == 1);
  CHECK(f.to_float("g") == std::vector<float>{0.25f});
  CHECK(f.info("g").shape.empty());
  CHECK(f.info("h").elements == 0);
  CHECK(f.span<std::uint8_t>("h").empty());
  CHECK(f.span<dsv4::ue8m0>("e")[0].bits == 0x80);
  CHECK(f.span<dsv4::fp8_e4m3>("c")[0].bits == 0x7E);
  CHECK(f.metadata().empty());
}

TEST_CASE("malformed files give FormatErrors that say what is wrong") {
  const std::string ok_tensor = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<std::uint8_t> eight(8, 0);
  REQUIRE(parse_error(image("{" + ok_tensor + "}", eight)).empty());

  SUBCASE("shorter than the 8-byte length") {
    const auto e = parse_error(std::vector<std::byte>(5));
    CHECK(contains(e, "truncated"));
    CHECK(contains(e, "mem.safetensors"));
  }
  SUBCASE("header length past the end of the file") {
    const auto e = parse_error(image("{" + ok_tensor + "}", eight, 1000));
    CHECK(contains(e, "header length 1000"));
  }
  SUBCASE("huge header length (no overflow)") {
    const auto e = parse_error(image("{}", {}, std::numeric_limits<std::uint64_t>::max() - 3));
    CHECK(contains(e, "header length"));
  }
  SUBCASE("not JSON") { CHECK(contains(parse_error(image("{\"t\": [1,", {})), "not valid JSON")); }
  SUBCASE("number too large for a double (found by fuzzing: an escaped nlohmann exception)") {
    const auto e =
        parse_error(image(R"({"t":{"dtype":"F32","shape":[4e435],"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "not valid JSON"));
    CHECK(contains(e, "mem.safetensors"));
  }
  SUBCASE("deep nesting (printing it in a message would overflow the stack)") {
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    const auto e = parse_error(
        image(R"({"t":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "nested deeper than 64 levels"));
    CHECK(contains(e, "mem.safetensors"));
  }
  SUBCASE("JSON but not an object") {
    CHECK(contains(parse_error(image("[1,2]", {})), "expected a JSON object"));
  }
  SUBCASE("unknown dtype") {
    const auto e =
        parse_error(image(R"({"t":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "'t'"));
    CHECK(contains(e, "dtype"));
    CHECK(contains(e, "'F12'"));
  }
  SUBCASE("negative or non-integer shape") {
    CHECK(contains(
        parse_error(image(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight)),
        "shape[0]"));
    CHECK(contains(
        parse_error(image(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight)),
        "non-negative integer"));
  }
  SUBCASE("element count overflow") {
    const auto e = parse_error(image(
        R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "overflows"));
  }
  SUBCASE("byte size overflow") {
    const auto e = parse_error(image(
        R"({"t":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "overflows"));
  }
  SUBCASE("offsets out of range") {
    const auto e =
        parse_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", eight));
    CHECK(contains(e, "data_offsets"));
    CHECK(contains(e, "[0, 12]"));
  }
  SUBCASE("begin after end") {
    CHECK(contains(
        parse_error(image(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight)),
        "begin <= end"));
  }
  SUBCASE("malformed data_offsets") {
    CHECK(contains(
        parse_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight)),
        "data_offsets"));
  }
  SUBCASE("size mismatch") {
    const auto e =
        parse_error(image(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight));
    CHECK(contains(e, "need 12 bytes, found 8"));
  }
  SUBCASE("odd F4 element count") {
    CHECK(contains(
        parse_error(image(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", eight)),
        "even"));
  }
  SUBCASE("overlapping tensors") {
    const auto e = parse_error(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                     eight));
    CHECK(contains(e, "non-overlapping"));
  }
  SUBCASE("missing fields and bad metadata") {
    CHECK(contains(parse_error(image(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", eight)),
                   "field dtype"));
    CHECK(contains(parse_error(image(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", eight)),
                   "field shape"));
    CHECK(contains(parse_error(image(R"({"t":3})", eight)), "expected an object"));
    CHECK(contains(parse_error(image(R"({"__metadata__":{"k":1}})", {})), "__metadata__['k']"));
  }
}

TEST_CASE("files on disk: memory map, missing file, round trip") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dsv4_safetensors_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "t.safetensors";
  {
    const auto img = image(
        R"({"__metadata__":{"format":"pt"},"w":{"dtype":"I16","shape":[2,1],"data_offsets":[0,4]}})",
        {0x01, 0x00, 0xFF, 0xFF});
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  }
  {
    const SafetensorsFile f(path);
    CHECK(f.metadata().at("format") == "pt");
    const auto w = f.bytes("w");
    CHECK(w.size() == 4);
    CHECK(f.info("w").shape == std::vector<std::uint64_t>{2, 1});
    // Offset 8 + header length is odd here, so a typed I16 view may be misaligned: then refused.
    std::string msg;
    try {
      const auto s = f.span<std::int16_t>("w");
      CHECK(s[0] == 1);
      CHECK(s[1] == -1);
    } catch (const dsv4::FormatError& e) {
      msg = e.what();
    }
    if (!msg.empty()) CHECK(contains(msg, "aligned"));
  }
  CHECK_THROWS_AS(SafetensorsFile(dir / "absent.safetensors"), dsv4::Error);
  {
    std::ofstream(dir / "empty.safetensors").close();
    dsv4::io::MappedFile empty(dir / "empty.safetensors");
    CHECK(empty.size() == 0);
    CHECK_THROWS_AS(SafetensorsFile(dir / "empty.safetensors"), dsv4::FormatError);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("MappedFile: a file of 2 MiB or more at a 2 MiB boundary, every byte in place") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("dsv4_mmap_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  // 2 MiB + 4097 bytes: the last page is partial; the pattern tells each position apart
  const std::size_t n = (std::size_t{2} << 20) + 4097;
  {
    std::ofstream f(dir / "big.bin", std::ios::binary);
    for (std::size_t i = 0; i < n; ++i) f.put(static_cast<char>((i * 131 + i / 251) & 0xFF));
  }
  for (int round = 0; round < 2; ++round) {  // a second mapping of the same (now cached) file
    dsv4::io::MappedFile m(dir / "big.bin");
    REQUIRE(m.size() == n);
    CHECK(reinterpret_cast<std::uintptr_t>(m.data()) % (std::size_t{2} << 20) == 0);
    bool same = true;
    for (std::size_t i = 0; i < n; ++i)
      same = same && m.data()[i] == static_cast<std::byte>((i * 131 + i / 251) & 0xFF);
    CHECK(same);
    dsv4::io::MappedFile moved = std::move(m);
    CHECK(moved.size() == n);
    CHECK(m.size() == 0);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("checked arithmetic and byte reader") {
  using dsv4::io::checked_add;
  using dsv4::io::checked_mul;
  constexpr auto big = std::numeric_limits<std::uint64_t>::max();
  CHECK(checked_mul(0, big) == 0u);
  CHECK(checked_mul(3, 5) == 15u);
  CHECK_FALSE(checked_mul(big / 2 + 1, 2).has_value());
  CHECK(checked_add(big - 1, 1) == big);
  CHECK_FALSE(checked_add(big, 1).has_value());

  const std::vector<std::byte> b = {std::byte{1}, std::byte{2}, std::byte{3}};
  dsv4::io::ByteReader r(b, "buf");
  CHECK(r.read<std::uint16_t>("u16") == 0x0201);
  CHECK(r.remaining() == 1);
  CHECK_THROWS_WITH_AS(
      r.read<std::uint16_t>("next field"),
      doctest::Contains("buf: truncated while reading next field at byte offset 2"),
      dsv4::FormatError);
  CHECK(r.take(1, "last").size() == 1);
}
