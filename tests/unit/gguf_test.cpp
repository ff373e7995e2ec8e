// The GGUF container (include/dsv4/io/gguf.hpp) and the atomic output file
// (include/dsv4/io/output_file.hpp): typed key/values of every type round-trip through the writer
// and the reader bit for bit; a gguf-py file is rewritten byte for byte; malformed files
// (truncated at every byte, bad magic and version, huge counts and lengths, unknown or nested
// value types, bad dims, unknown types, rows that do not fill blocks, misaligned, out-of-file
// and overlapping offsets, random corruption) fail with a FormatError naming the problem.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/output_file.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
using dsv4::FormatId;
using dsv4::io::GgufFile;
using dsv4::io::GgufMetadata;
using dsv4::io::GgufTensorInfo;
using dsv4::io::GgufType;
using dsv4::io::GgufValue;
using dsv4::io::GgufWriter;

/// Writes a whole file image with GgufWriter, handing the data over in pieces of varying size.
std::vector<std::byte> write_image(const GgufMetadata& meta, std::vector<GgufTensorInfo> tensors,
                                   const std::vector<std::vector<std::byte>>& data,
                                   std::uint64_t* file_size = nullptr) {
  std::vector<std::byte> out;
  GgufWriter w(meta, std::move(tensors),
               [&](std::span<const std::byte> s) { out.insert(out.end(), s.begin(), s.end()); });
  std::size_t piece = 1;
  for (const auto& d : data) {
    for (std::size_t at = 0; at < d.size(); at += piece, piece = piece % 7 + 1) {
      w.write(std::span<const std::byte>(d).subspan(at, std::min(piece, d.size() - at)));
    }
  }
  w.finish();
  if (file_size != nullptr) *file_size = w.file_size();
  return out;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng() & 0xFF);
  return v;
}

/// A metadata set with one key of every value type, scalar and array.
GgufMetadata every_type() {
  GgufMetadata m;
  m.add("general.architecture", GgufValue("deepseek4"));
  m.add("t.u8", GgufValue(std::uint8_t{200}));
  m.add("t.i8", GgufValue(std::int8_t{-100}));
  m.add("t.u16", GgufValue(std::uint16_t{60000}));
  m.add("t.i16", GgufValue(std::int16_t{-30000}));
  m.add("t.u32", GgufValue(std::uint32_t{4000000000u}));
  m.add("t.i32", GgufValue(std::int32_t{-2000000000}));
  m.add("t.f32", GgufValue(1.0e-6f));
  m.add("t.f32.nan", GgufValue(std::bit_cast<float>(0x7fc01234u)));  // NaN payload kept
  m.add("t.bool", GgufValue(true));
  m.add("t.str", GgufValue("DeepSeek-V4 ｜begin▁of▁sentence｜"));
  m.add("t.str.empty", GgufValue(""));
  m.add("t.u64", GgufValue(std::uint64_t{18000000000000000000ull}));
  m.add("t.i64", GgufValue(std::int64_t{-9000000000000000000ll}));
  m.add("t.f64", GgufValue(3.141592653589793));
  m.add("t.a.u8", GgufValue::array(std::vector<std::uint8_t>{1, 2, 255}));
  m.add("t.a.i8", GgufValue::array(std::vector<std::int8_t>{-1, 2}));
  m.add("t.a.u16", GgufValue::array(std::vector<std::uint16_t>{1, 65535}));
  m.add("t.a.i16", GgufValue::array(std::vector<std::int16_t>{-32768}));
  m.add("t.a.u32", GgufValue::array(std::vector<std::uint32_t>{7, 8, 9}));
  m.add("t.a.i32", GgufValue::array(std::vector<std::int32_t>{0, 4, 128, 4, 128}));
  m.add("t.a.f32", GgufValue::array(std::vector<float>{10.f, 10.f, -0.f}));
  m.add("t.a.bool", GgufValue::array(std::vector<bool>{true, false, true}));
  m.add("t.a.str", GgufValue::array(std::vector<std::string>{"Ġ Ġ", "", "<｜▁pad▁｜>"}));
  m.add("t.a.u64", GgufValue::array(std::vector<std::uint64_t>{1ull << 40}));
  m.add("t.a.i64", GgufValue::array(std::vector<std::int64_t>{-1}));
  m.add("t.a.f64", GgufValue::array(std::vector<double>{0.5, -2.25}));
  m.add("t.a.empty", GgufValue::array(std::vector<std::int32_t>{}));
  m.add("t.a.str.empty", GgufValue::array(std::vector<std::string>{}));
  return m;
}

struct Model {
  GgufMetadata meta;
  std::vector<GgufTensorInfo> tensors;
  std::vector<std::vector<std::byte>> data;
};

/// A few tensors of different types, shapes and sizes with random bytes.
Model small_model(GgufMetadata meta) {
  Model m;
  m.meta = std::move(meta);
  const std::vector<GgufTensorInfo> infos = {
      {"token_embd.weight", {64, 3}, FormatId::f32, 0, 0},
      {"blk.0.attn_norm.weight", {5}, FormatId::f32, 0, 0},  // 20 bytes: padded
      {"blk.0.attn_q_a.weight", {64, 3}, FormatId::q8_0, 0, 0},
      {"blk.0.ffn_gate_exps.weight", {256, 2, 2}, FormatId::q4_k, 0, 0},
      {"blk.0.x4d.weight", {32, 1, 2, 1}, FormatId::mxfp4, 0, 0},
      {"blk.0.empty.weight", {0, 4}, FormatId::f16, 0, 0},
      {"blk.0.ffn_gate_tid2eid.weight", {4, 3}, dsv4::gguf::ggml_id::i32, 0, 0},
      {"output.weight", {32, 3}, FormatId::bf16, 0, 0},
  };
  std::uint32_t seed = 1;
  for (auto t : infos) {
    t.n_bytes = static_cast<std::uint64_t>(dsv4::gguf::tensor_bytes(t.type, t.ne));
    m.data.push_back(random_bytes(t.n_bytes, seed++));
    m.tensors.push_back(std::move(t));
  }
  return m;
}

std::vector<std::byte> image_of(const Model& m) { return write_image(m.meta, m.tensors, m.data); }

/// The FormatError message parsing `bytes` raises ("" when it parses).
std::string parse_error(std::vector<std::byte> bytes) {
  try {
    GgufFile f(std::move(bytes), "mem.gguf");
  } catch (const dsv4::FormatError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Builds malformed headers by hand.
struct Bytes {
  std::vector<std::byte> b;
  template <class T>
  Bytes& put(T v) {
    dsv4::io::detail::gguf::put(b, v);
    return *this;
  }
  Bytes& str(std::string_view s) {
    dsv4::io::detail::gguf::put_string(b, s);
    return *this;
  }
  Bytes& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    return put<std::uint32_t>(0x46554747).put<std::uint32_t>(version).put(n_tensors).put(n_kv);
  }
  Bytes& kv_u32(std::string_view key, std::uint32_t v) {
    return str(key).put<std::uint32_t>(4).put<std::uint32_t>(v);
  }
  Bytes& tensor(std::string_view name, std::vector<std::int64_t> ne, std::uint32_t type,
                std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
    for (auto d : ne) put<std::int64_t>(d);
    return put<std::uint32_t>(type).put<std::uint64_t>(offset);
  }
  Bytes& pad_to(std::size_t a) {
    b.resize((b.size() + a - 1) / a * a, std::byte{0});
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    b.resize(b.size() + n, std::byte{0});
    return *this;
  }
};

}  // namespace

TEST_CASE("gguf round trip: every value type, tensor types and shapes, alignment 64") {
  for (const std::uint32_t alignment : {0u, 1u, 64u, 4096u}) {
    CAPTURE(alignment);
    GgufMetadata meta = every_type();
    if (alignment != 0) meta.add("general.alignment", GgufValue(alignment));
    const Model m = small_model(meta);
    std::uint64_t announced = 0;
    const auto image = write_image(m.meta, m.tensors, m.data, &announced);
    CHECK(image.size() == announced);
    const GgufFile f(image, "round-trip.gguf");
    const std::uint64_t a = alignment == 0 ? 32 : alignment;
    CHECK(f.version() == 3);
    CHECK(f.alignment() == a);
    CHECK(f.data_offset() % a == 0);
    CHECK(f.metadata() == m.meta);
    REQUIRE(f.tensors().size() == m.tensors.size());
    std::uint64_t expect_offset = 0;
    for (std::size_t i = 0; i < m.tensors.size(); ++i) {
      const auto& t = f.tensors()[i];
      CAPTURE(t.name);
      CHECK(t.name == m.tensors[i].name);
      CHECK(t.ne == m.tensors[i].ne);
      CHECK(t.type == m.tensors[i].type);
      CHECK(t.offset == expect_offset);
      CHECK(t.n_bytes == m.data[i].size());
      const auto d = f.tensor_data(t);
      CHECK(std::equal(d.begin(), d.end(), m.data[i].begin(), m.data[i].end()));
      expect_offset += (t.n_bytes + a - 1) / a * a;
      CHECK(f.find_tensor(t.name) == &t);
    }
    CHECK(f.data_offset() + expect_offset == image.size());  // the last tensor is padded too
    // the header re-encodes to the same bytes
    const auto header = dsv4::io::encode_gguf_header(f.metadata(), f.tensors());
    CHECK(header.size() == f.data_offset());
    CHECK(std::equal(header.begin(), header.end(), image.begin()));
  }
}

TEST_CASE("gguf values: typed access, errors name the key, integer widening") {
  const GgufMetadata m = every_type();
  CHECK(m.get<std::uint32_t>("t.u32") == 4000000000u);
  CHECK(m.get<float>("t.f32") == 1.0e-6f);
  CHECK(std::isnan(m.get<float>("t.f32.nan")));
  CHECK(std::bit_cast<std::uint32_t>(m.get<float>("t.f32.nan")) == 0x7fc01234u);
  CHECK(m.get<bool>("t.bool"));
  CHECK(m.get_string("general.architecture") == "deepseek4");
  CHECK(m.at("t.a.i32").get_array<std::int32_t>() == std::vector<std::int32_t>{0, 4, 128, 4, 128});
  CHECK(m.at("t.a.bool").get_array<bool>() == std::vector<bool>{true, false, true});
  CHECK(m.at("t.a.str").strings().size() == 3);
  CHECK(m.at("t.a.i32").type_string() == "ARRAY[INT32 x 5]");
  CHECK(m.get_int("t.u8") == 200);
  CHECK(m.get_int("t.i64") == -9000000000000000000ll);
  CHECK(m.get_int("t.a.u32") == 7);  // first element of a per-layer array
  CHECK_FALSE(m.get_int("absent").has_value());
  CHECK_FALSE(m.at("t.u64").as_int().has_value());  // above INT64_MAX
  try {
    (void)m.get<std::int32_t>("t.u32");
    FAIL("expected a FormatError");
  } catch (const dsv4::FormatError& e) {
    CHECK(contains(e.what(), "t.u32"));
    CHECK(contains(e.what(), "expected INT32, found UINT32"));
  }
  CHECK_THROWS_AS((void)m.get_int("t.str"), dsv4::FormatError);
  // an integer key without an int64 value says why (the fuzzer found the old message misleading)
  for (const char* key : {"t.u64", "t.a.empty"}) {
    CAPTURE(key);
    try {
      (void)m.get_int(key);
      FAIL("expected a FormatError");
    } catch (const dsv4::FormatError& e) {
      CHECK(contains(e.what(), key));
      CHECK(contains(e.what(), key == std::string("t.u64") ? "UINT64 above 2^63-1"
                                                           : "found ARRAY[INT32 x 0]"));
    }
  }
  CHECK_THROWS_AS((void)m.at("nope"), dsv4::FormatError);
  CHECK_THROWS_AS((void)m.at("t.a.u8").get<std::uint8_t>(), dsv4::FormatError);

  // set() moves an existing key to the end, as ggml's gguf_set_* does; add() refuses duplicates
  GgufMetadata s;
  s.add("a", GgufValue(std::uint32_t{1}));
  s.add("b", GgufValue(std::uint32_t{2}));
  s.set("a", GgufValue(std::uint32_t{3}));
  CHECK(s.entries()[0].first == "b");
  CHECK(s.entries()[1].first == "a");
  CHECK(s.get<std::uint32_t>("a") == 3);
  CHECK_THROWS_AS(s.add("b", GgufValue(std::uint32_t{4})), dsv4::FormatError);
  CHECK_THROWS_AS(s.add("", GgufValue(std::uint32_t{4})), dsv4::FormatError);
  CHECK(s.remove("b"));
  CHECK_FALSE(s.remove("b"));
}

TEST_CASE("gguf: dsv4-tiny-f32.gguf (gguf-py) is rewritten byte for byte by GgufWriter") {
  const GgufFile f(dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"));
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.data_offset() == 23040);
  CHECK(f.tensors().size() == 154);
  CHECK(f.metadata().size() == 51);
  CHECK(f.metadata().get<std::uint32_t>("deepseek4.block_count") == 5);
  CHECK(f.metadata().at("tokenizer.ggml.tokens").strings().size() == 512);
  CHECK(f.tensor("blk.0.ffn_gate_tid2eid.weight").type == dsv4::gguf::ggml_id::i32);
  std::vector<std::byte> out;
  GgufWriter w(f.metadata(), f.tensors(),
               [&](std::span<const std::byte> s) { out.insert(out.end(), s.begin(), s.end()); });
  for (const auto& t : f.tensors()) w.write_tensor(t.name, f.tensor_data(t));
  w.finish();
  CHECK(w.tensors() == f.tensors());  // same layout as gguf-py's
  REQUIRE(out.size() == f.bytes().size());
  CHECK(std::equal(out.begin(), out.end(), f.bytes().begin()));
}

TEST_CASE("gguf writer: misuse is an error, before or while writing") {
  const Model m = small_model(every_type());
  std::vector<std::byte> sink;
  auto to_sink = [&](std::span<const std::byte> s) { sink.insert(sink.end(), s.begin(), s.end()); };
  {
    GgufWriter w(m.meta, m.tensors, to_sink);
    const std::vector<std::byte> too_many(m.data[0].size() + 1);
    CHECK_THROWS_AS(w.write(too_many), dsv4::ShapeError);
    CHECK_THROWS_AS(w.write_tensor("blk.0.attn_norm.weight", m.data[1]), dsv4::ShapeError);
    CHECK_THROWS_AS(w.finish(), dsv4::ShapeError);  // nothing written yet
    w.write_tensor("token_embd.weight", m.data[0]);
    CHECK(w.current() == 1);
  }
  auto bad = m.tensors;
  bad[2].ne = {40, 3};  // Q8_0 rows of 40 values
  CHECK_THROWS_WITH_AS(GgufWriter(m.meta, bad, to_sink), doctest::Contains("multiple of the Q8_0"),
                       dsv4::FormatError);
  bad = m.tensors;
  bad[1].name = bad[0].name;
  CHECK_THROWS_WITH_AS(GgufWriter(m.meta, bad, to_sink), doctest::Contains("duplicate tensor"),
                       dsv4::FormatError);
  bad = m.tensors;
  bad[1].ne = {1, 1, 1, 1, 1};
  CHECK_THROWS_AS(GgufWriter(m.meta, bad, to_sink), dsv4::FormatError);
  bad = m.tensors;
  bad[1].type = FormatId{4};  // a removed ggml type
  CHECK_THROWS_WITH_AS(GgufWriter(m.meta, bad, to_sink), doctest::Contains("unknown"),
                       dsv4::FormatError);
  GgufMetadata meta = m.meta;
  meta.add("general.alignment", GgufValue(std::uint32_t{48}));
  CHECK_THROWS_WITH_AS(GgufWriter(meta, m.tensors, to_sink), doctest::Contains("power of two"),
                       dsv4::FormatError);
  meta.set("general.alignment", GgufValue(std::uint64_t{64}));
  CHECK_THROWS_WITH_AS(GgufWriter(meta, m.tensors, to_sink), doctest::Contains("expected UINT32"),
                       dsv4::FormatError);
}

TEST_CASE("gguf reader: a file truncated at any byte is a FormatError") {
  GgufMetadata meta;
  meta.add("general.architecture", GgufValue("deepseek4"));
  meta.add("t.a.str", GgufValue::array(std::vector<std::string>{"ab", "c"}));
  meta.add("t.a.i32", GgufValue::array(std::vector<std::int32_t>{1, 2}));
  meta.add("t.f32", GgufValue(0.5f));
  Model m = small_model(meta);
  const auto image = image_of(m);
  REQUIRE(parse_error(image).empty());
  int failures = 0;
  for (std::size_t n = 0; n < image.size(); ++n) {
    const std::string e = parse_error(std::vector<std::byte>(image.begin(), image.begin() + n));
    if (e.empty()) {
      // only the zero padding after the last tensor may go
      CHECK_MESSAGE(n >= image.size() - 31, "prefix of ", n, " bytes parsed");
    } else {
      ++failures;
      CHECK(contains(e, "mem.gguf"));
    }
  }
  CHECK(failures >= static_cast<int>(image.size()) - 31);
  CHECK(contains(parse_error({}), "truncated while reading the magic"));
  CHECK(contains(parse_error(std::vector<std::byte>(image.begin(), image.begin() + 30)),
                 "cannot fit in the"));
  // a cut inside the last tensor info's offset field names the tensor and the field
  const std::string_view text(reinterpret_cast<const char*>(image.data()), image.size());
  const std::size_t name_at = text.rfind("output.weight");
  REQUIRE(name_at != std::string_view::npos);
  const std::size_t infos_end = name_at + 13 + 4 + 2 * 8 + 4 + 8;
  CHECK(contains(parse_error(std::vector<std::byte>(image.begin(), image.begin() + infos_end - 3)),
                 "truncated while reading tensor 'output.weight' (offset)"));
  const auto past = parse_error(std::vector<std::byte>(image.begin(), image.end() - 200));
  CHECK(contains(past, "runs past its end"));
}

TEST_CASE("gguf reader: malformed headers name the problem") {
  auto err = [](const Bytes& b) { return parse_error(b.b); };
  // magic and version
  CHECK(contains(err(Bytes{}.put<std::uint32_t>(0x46554746).put<std::uint32_t>(3).zeros(16)),
                 "bad magic"));
  CHECK(contains(err(Bytes{}.header(0, 0, 1)), "version 1 is not supported"));
  CHECK(contains(err(Bytes{}.header(0, 0, 4)), "version 4"));
  CHECK(parse_error(Bytes{}.header(0, 0, 2).b).empty());  // v2: same layout
  CHECK(parse_error(Bytes{}.header(0, 0).b).empty());     // an empty GGUF file is valid
  // counts that cannot fit in the file
  CHECK(contains(err(Bytes{}.header(0, std::uint64_t{1} << 62)), "cannot fit"));
  CHECK(contains(err(Bytes{}.header(~std::uint64_t{0}, 1).kv_u32("a", 1)), "cannot fit"));
  CHECK(contains(err(Bytes{}.header(0, 2).kv_u32("a", 1)), "cannot fit"));
  // strings
  CHECK(contains(err(Bytes{}.header(0, 1).put<std::uint64_t>(~std::uint64_t{0}).zeros(16)),
                 "string length"));
  CHECK(contains(err(Bytes{}.header(0, 1).str("").put<std::uint32_t>(4).put<std::uint32_t>(1)),
                 "empty name"));
  // value types
  CHECK(contains(err(Bytes{}.header(0, 1).str("k").put<std::uint32_t>(13).zeros(8)),
                 "value type 13 is not a GGUF value type"));
  CHECK(contains(err(Bytes{}
                         .header(0, 1)
                         .str("k")
                         .put<std::uint32_t>(9)
                         .put<std::uint32_t>(9)
                         .put<std::uint64_t>(1)
                         .zeros(16)),
                 "arrays of arrays"));
  CHECK(contains(
      err(Bytes{}.header(0, 1).str("k").put<std::uint32_t>(9).put<std::uint32_t>(77).zeros(16)),
      "array element type 77"));
  CHECK(contains(err(Bytes{}
                         .header(0, 1)
                         .str("k")
                         .put<std::uint32_t>(9)
                         .put<std::uint32_t>(4)
                         .put<std::uint64_t>(std::uint64_t{1} << 61)
                         .zeros(16)),
                 "needs at least"));
  CHECK(contains(err(Bytes{}
                         .header(0, 1)
                         .str("k")
                         .put<std::uint32_t>(9)
                         .put<std::uint32_t>(8)
                         .put<std::uint64_t>(1000)
                         .zeros(64)),
                 "needs at least"));
  CHECK(contains(err(Bytes{}.header(0, 1).str("k").put<std::uint32_t>(7).put<std::uint8_t>(2)),
                 "bool element 0 is 2"));
  CHECK(contains(err(Bytes{}.header(0, 2).kv_u32("k", 1).kv_u32("k", 2)), "duplicate key 'k'"));
  CHECK(contains(err(Bytes{}.header(0, 1).str("k").put<std::uint32_t>(4).put<std::uint16_t>(1)),
                 "key 'k' (value)"));
  // alignment
  CHECK(contains(err(Bytes{}.header(0, 1).kv_u32("general.alignment", 0)), "power of two"));
  CHECK(contains(err(Bytes{}.header(0, 1).kv_u32("general.alignment", 48)), "power of two"));
  CHECK(contains(err(Bytes{}
                         .header(0, 1)
                         .str("general.alignment")
                         .put<std::uint32_t>(10)
                         .put<std::uint64_t>(32)),
                 "expected UINT32"));

  // tensor infos: one F32 tensor of 8 values after a 32-aligned header
  auto one = [](std::vector<std::int64_t> ne, std::uint32_t type, std::uint64_t offset,
                std::size_t data = 32) {
    Bytes b;
    b.header(1, 0).tensor("w", std::move(ne), type, offset).pad_to(32).zeros(data);
    return b;
  };
  CHECK(parse_error(one({8}, 0, 0).b).empty());
  CHECK(contains(err(one({}, 0, 0)), "n_dims is 0"));
  CHECK(contains(err(one({1, 1, 1, 1, 1}, 0, 0)), "n_dims is 5"));
  CHECK(contains(err(one({8, -1}, 0, 0)), "ne[1] = -1 is negative"));
  CHECK(contains(err(one({std::int64_t{1} << 32, std::int64_t{1} << 32}, 0, 0)), "more than 2^63"));
  // found by fuzzing: a zero dim hid the overflow of the others, and n_rows() overflowed
  CHECK(contains(err(one({0, std::int64_t{1} << 40, std::int64_t{1} << 40}, 0, 0)),
                 "more than 2^63 elements (counting its non-zero dimensions)"));
  CHECK(parse_error(one({0, std::int64_t{1} << 30, std::int64_t{1} << 30}, 0, 0).b).empty());
  CHECK(contains(err(one({8}, 4, 0)), "type id 4 is unknown"));
  CHECK(contains(err(one({8}, 1000, 0)), "type id 1000 is unknown"));
  CHECK(contains(err(one({40}, 8, 0, 64)), "not a multiple of the Q8_0 block size 32"));
  CHECK(contains(err(one({8}, 0, 16)), "not a multiple of the alignment 32"));
  CHECK(contains(err(one({8}, 0, 32)), "runs past its end"));
  CHECK(contains(err(one({8}, 0, 0, 16)), "runs past its end"));
  CHECK(contains(err(one({8}, 0, ~std::uint64_t{0} / 32 * 32)), "runs past its end"));
  {
    Bytes b;
    b.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32).zeros(64);
    CHECK(contains(err(b), "'a' (data [0, 64)) and 'b' (data [32, 64)) overlap"));
  }
  {
    Bytes b;
    b.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_to(32).zeros(64);
    CHECK(contains(err(b), "duplicate tensor name 'a'"));
  }
  {  // tensors in any order, sharing no bytes, are fine; so are empty ones
    Bytes b;
    b.header(3, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).tensor("c", {0, 4}, 0, 64);
    b.pad_to(32).zeros(64);
    CHECK(parse_error(b.b).empty());
  }
}

TEST_CASE("gguf reader: many keys are checked for duplicates in linear time") {
  // Found by fuzzing review: the duplicate-key check was a linear search per key, so this 2 MB
  // file of 100,000 keys took half a minute to open (quadratic in an attacker-chosen count).
  constexpr std::uint32_t n = 100000;
  Bytes b;
  b.header(0, n + 1);
  for (std::uint32_t i = 0; i < n; ++i) b.kv_u32(fmt::format("k{}", i), i);
  const auto unique = GgufFile(Bytes{b}.kv_u32("last", 7).b, "many.gguf");
  CHECK(unique.metadata().size() == n + 1);
  CHECK(unique.metadata().get<std::uint32_t>("k99999") == 99999);
  CHECK(contains(parse_error(b.kv_u32("k123", 7).b), "duplicate key 'k123' (key #100000)"));
}

TEST_CASE("gguf reader: randomly corrupted files parse or fail cleanly") {
  GgufMetadata meta;
  meta.add("general.architecture", GgufValue("deepseek4"));
  meta.add("t.a.str", GgufValue::array(std::vector<std::string>{"ab", "c"}));
  meta.add("t.u32", GgufValue(std::uint32_t{5}));
  const auto image = image_of(small_model(meta));
  std::mt19937 rng(20260807);
  int parsed = 0;
  for (int it = 0; it < 3000; ++it) {
    auto bytes = image;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // mostly the header, where the structure is
      const std::size_t at = rng() % 4 == 0 ? rng() % bytes.size() : rng() % 700;
      bytes[at] = static_cast<std::byte>(rng() & 0xFF);
    }
    try {
      const GgufFile f(std::move(bytes), "fuzz.gguf");
      for (const auto& t : f.tensors()) CHECK(f.tensor_data(t).size() == t.n_bytes);
      ++parsed;
    } catch (const dsv4::FormatError&) {
    }
  }
  MESSAGE(parsed, " of 3000 corrupted files still parsed");
}

TEST_CASE("atomic output file: the target appears only on commit") {
  const fs::path dir = fs::temp_directory_path() / ("dsv4_gguf_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path target = dir / "out.bin";
  const std::vector<std::byte> payload = random_bytes(10000, 3);
  {
    dsv4::io::AtomicOutputFile f(target, 64);  // a small buffer: several flushes
    CHECK(fs::exists(f.temp_path()));
    CHECK(fs::path(f.temp_path()).parent_path() == dir);
    f.write(payload);
    CHECK(f.size() == payload.size());
    CHECK_FALSE(fs::exists(target));
  }  // destroyed without commit
  CHECK(fs::is_empty(dir));
  {
    dsv4::io::AtomicOutputFile f(target, 64);
    f.write(std::span(payload).first(100));
    f.write(std::span(payload).subspan(100));
    f.commit();
    CHECK(f.temp_path().empty());
  }
  REQUIRE(fs::file_size(target) == payload.size());
  std::ifstream in(target, std::ios::binary);
  std::vector<char> back(payload.size());
  in.read(back.data(), static_cast<std::streamsize>(back.size()));
  CHECK(std::memcmp(back.data(), payload.data(), payload.size()) == 0);
  // a missing directory: an Error naming it, nothing created
  CHECK_THROWS_WITH_AS(dsv4::io::AtomicOutputFile(dir / "missing" / "x.gguf"),
                       doctest::Contains("missing"), dsv4::Error);
  // the target is a directory: the rename fails and the temporary file goes
  fs::create_directories(dir / "adir" / "inner");
  {
    dsv4::io::AtomicOutputFile f(dir / "adir");
    f.write(payload);
    CHECK_THROWS_AS(f.commit(), dsv4::Error);
  }
  CHECK(fs::is_directory(dir / "adir" / "inner"));
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 2);  // out.bin and adir
  fs::remove_all(dir);
}
