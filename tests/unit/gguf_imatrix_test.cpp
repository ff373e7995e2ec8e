// `dsv4 quantize --imatrix` (io/imatrix.hpp, formats/weighted_quants.hpp) against llama-quantize:
// the tiny model quantized with importance matrices made by llama-imatrix (GGUF and legacy .dat
// forms, tests/data/llamacpp/imatrix/) to Q4_K_M, Q5_K_M, Q4_0, Q4_1, Q5_1, Q2_K, Q3_K_M, IQ4_NL
// and IQ4_XS (every weighted quantizer: Q4_0/1, Q5_0/1, Q2_K..Q6_K, IQ4_NL/XS), with
// --exclude-weights and --include-weights, must give llama-quantize's files byte for byte
// (tests/data/llamacpp/manifests/imatrix.json). Also: the grouped output projection's imatrix
// (o_groups times the row length) refused as llama-quantize refuses it, and malformed imatrix
// files as one error naming the file.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/io/imatrix.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "sha256.hpp"
#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
namespace g = dsv4::gguf;
using dsv4::io::GgufFile;
using dsv4::io::Imatrix;
using dsv4::io::QuantizeOptions;
using nlohmann::json;

const GgufFile& tiny_f32() {
  static const GgufFile f(dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"));
  return f;
}

fs::path imatrix_path(const std::string& name) {
  return dsv4::test::data_path("llamacpp/imatrix/" + name);
}

std::vector<std::byte> quantize_to_memory(const GgufFile& in, const QuantizeOptions& opt) {
  const auto plan = dsv4::io::plan_quantization(in, opt);
  std::vector<std::byte> out;
  dsv4::io::quantize_gguf(
      in, plan, [&out](std::span<const std::byte> s) { out.insert(out.end(), s.begin(), s.end()); },
      opt);
  return out;
}

/// The imatrix of a manifest case, filtered by its arguments.
Imatrix case_imatrix(const json& c) {
  Imatrix im = dsv4::io::load_imatrix(imatrix_path(c["imatrix"].get<std::string>()));
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  const auto args = c["args"].get<std::vector<std::string>>();
  for (std::size_t i = 0; i + 1 < args.size(); i += 2) {
    (args[i] == "--include-weights" ? include : exclude).push_back(args[i + 1]);
  }
  dsv4::io::filter_imatrix(im, include, exclude);
  return im;
}

void write_file(const fs::path& p, std::span<const std::byte> b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST_CASE("llama-quantize --imatrix: the same bytes with the same importance matrix") {
  std::ifstream f(dsv4::test::data_path("llamacpp/manifests/imatrix.json"));
  REQUIRE(f.good());
  const json cases = json::parse(f)["cases"];
  REQUIRE(cases.size() == 11);
  for (const json& c : cases) {
    CAPTURE(c["name"].get<std::string>());
    const Imatrix im = case_imatrix(c);
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c["type"].get<std::string>());
    opt.imatrix = &im;
    opt.imatrix_file = c["imatrix"].get<std::string>();
    opt.threads = 2;
    const auto bytes = quantize_to_memory(tiny_f32(), opt);
    CHECK(bytes.size() == c["size"].get<std::uint64_t>());
    CHECK(dsv4::test::sha256_hex(bytes) == c["sha256"].get<std::string>());
    // the importance changed the bytes: without it the file differs
    QuantizeOptions plain = opt;
    plain.imatrix = nullptr;
    CHECK(dsv4::test::sha256_hex(quantize_to_memory(tiny_f32(), plain)) !=
          c["sha256"].get<std::string>());
  }
}

TEST_CASE("imatrix: entries that do not fit their tensor are refused, as llama-quantize does") {
  // llama-imatrix records attn_output_a (grouped: o_groups x 512 columns) as 1024 values
  Imatrix im = dsv4::io::load_imatrix(imatrix_path("tiny.imatrix.gguf"));
  REQUIRE(im.entries.count("blk.0.attn_output_a.weight") == 1);
  CHECK(im.entries.at("blk.0.attn_output_a.weight").size() == 1024);
  QuantizeOptions opt;
  opt.file_type = g::FileType::q4_k_m;
  opt.imatrix = &im;
  opt.imatrix_file = "tiny.imatrix.gguf";
  CHECK_THROWS_WITH_AS(dsv4::io::plan_quantization(tiny_f32(), opt),
                       doctest::Contains("entry 'blk.0.attn_output_a.weight' has 1024 values, but "
                                         "the tensor has 512 columns"),
                       dsv4::InputError);
  // the imatrix keys, written after the user's overrides
  dsv4::io::filter_imatrix(im, {}, {"attn_output_a"});
  opt.file_type = g::FileType::q8_0;
  opt.kv_overrides.emplace_back("general.note", dsv4::io::GgufValue(std::string("x")));
  const auto plan = dsv4::io::plan_quantization(tiny_f32(), opt);
  std::vector<std::string> keys;
  for (const auto& kv : plan.metadata) keys.push_back(kv.first);
  REQUIRE(keys.size() >= 5);
  CHECK(std::vector<std::string>(keys.end() - 5, keys.end()) ==
        std::vector<std::string>{"general.note", "quantize.imatrix.file",
                                 "quantize.imatrix.dataset", "quantize.imatrix.entries_count",
                                 "quantize.imatrix.chunks_count"});
  CHECK(plan.metadata.get_string("quantize.imatrix.file") == "tiny.imatrix.gguf");
  CHECK(plan.metadata.get_int("quantize.imatrix.entries_count") ==
        static_cast<std::int64_t>(im.entries.size()));
  CHECK(plan.metadata.get_int("quantize.imatrix.chunks_count") == 16);
}

TEST_CASE("imatrix files: both forms, filters and malformed files") {
  const Imatrix a = dsv4::io::load_imatrix(imatrix_path("tiny.imatrix.gguf"));
  const Imatrix b = dsv4::io::load_imatrix(imatrix_path("tiny.imatrix.dat"));
  CHECK_FALSE(a.legacy);
  CHECK(b.legacy);
  CHECK(a.chunk_count == 16);
  CHECK(b.chunk_count == 16);
  REQUIRE(a.entries.size() == b.entries.size());
  for (const auto& [name, v] : a.entries) {
    CAPTURE(name);
    REQUIRE(b.entries.count(name) == 1);
    const auto& w = b.entries.at(name);
    REQUIRE(w.size() == v.size());
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(w[i] == doctest::Approx(v[i]).epsilon(1e-5));
  }
  Imatrix f = a;
  dsv4::io::filter_imatrix(f, {"ffn_"}, {});
  CHECK(!f.entries.empty());
  for (const auto& e : f.entries) CHECK(e.first.find("ffn_") != std::string::npos);
  CHECK_THROWS_AS(dsv4::io::filter_imatrix(f, {"a"}, {"b"}), dsv4::InputError);

  // malformed legacy files: each a FormatError naming the file, without a large allocation
  const fs::path dir =
      fs::temp_directory_path() / ("dsv4_imatrix_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto dat = [&](std::vector<std::int32_t> words) {
    std::vector<std::byte> bytes(words.size() * 4);
    std::memcpy(bytes.data(), words.data(), bytes.size());
    const fs::path p = dir / "bad.dat";
    write_file(p, bytes);
    return p;
  };
  for (const auto& words : std::vector<std::vector<std::int32_t>>{
           {0},                                      // no entry
           {1, -5},                                  // negative name length
           {1, 0x7fffffff},                          // name longer than the file
           {1, 4, 0x41414141, 1, 0x7fffffff},        // two billion values
           {2, 4, 0x41414141, 1, 1, 0x3f800000}}) {  // a second entry missing
    CAPTURE(words.size());
    CHECK_THROWS_WITH_AS(dsv4::io::load_imatrix(dat(words)), doctest::Contains("bad.dat"),
                         dsv4::FormatError);
  }
  // llama-imatrix's GGUF with a float chunk count: the error names the file, not only the key
  {
    const GgufFile src(imatrix_path("tiny.imatrix.gguf"), false);
    dsv4::io::GgufMetadata meta = src.metadata();
    meta.set("imatrix.chunk_count", dsv4::io::GgufValue(1.5f));
    auto bytes = dsv4::io::encode_gguf_header(meta, src.tensors());
    const auto data = src.bytes().subspan(src.data_offset());
    bytes.insert(bytes.end(), data.begin(), data.end());
    CHECK_THROWS_WITH_AS(dsv4::io::imatrix_from_bytes(bytes, "float_count.gguf"),
                         doctest::Contains("imatrix float_count.gguf: gguf: key "
                                           "'imatrix.chunk_count'"),
                         dsv4::FormatError);
  }
  // a GGUF without llama-imatrix's metadata
  CHECK_THROWS_WITH_AS(
      dsv4::io::load_imatrix(dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf")),
      doctest::Contains("imatrix.datasets"), dsv4::FormatError);
  fs::remove_all(dir);
}
