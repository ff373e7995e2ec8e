// Split GGUF models (io/gguf.hpp reads them, io/gguf_split.hpp writes them) against llama.cpp's
// tools: dsv4's shards must be the files llama-gguf-split and llama-quantize --keep-split write
// from the tiny model (tests/data/llamacpp/manifests/splits.json: size and sha256 of every
// shard), a split model must read as the one file it was split from, and every broken split (a
// shard opened out of order, missing, renamed, from another model, a tensor twice, a wrong
// tensor count) must be one error naming the file.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/io/gguf_split.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sha256.hpp"
#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
namespace g = dsv4::gguf;
using dsv4::io::GgufFile;
using dsv4::io::GgufSplitLimits;
using dsv4::io::QuantizeOptions;
using nlohmann::json;

fs::path tiny_path() { return dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"); }

/// A fresh directory for one test case, removed at the end.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("dsv4_split_test_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::vector<std::byte> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

json split_cases() {
  std::ifstream f(dsv4::test::data_path("llamacpp/manifests/splits.json"));
  REQUIRE(f.good());
  return json::parse(f)["cases"];
}

json split_case(const std::string& name) {
  for (const json& c : split_cases())
    if (c["name"] == name) return c;
  FAIL("no case " << name);
  return {};
}

/// Checks the files `prefix`-0000k-of-0000n.gguf against a manifest case's files.
void check_files(const fs::path& dir, const std::string& prefix, const json& c) {
  const json& want = c["files"];
  for (std::size_t k = 0; k < want.size(); ++k) {
    const fs::path p = dir / dsv4::io::gguf_split_path(prefix, k, want.size());
    CAPTURE(p.string());
    REQUIRE(fs::exists(p));
    const auto bytes = read_all(p);
    CHECK(bytes.size() == want[k]["size"].get<std::uint64_t>());
    CHECK(dsv4::test::sha256_hex(bytes) == want[k]["sha256"].get<std::string>());
  }
  // nothing else: no extra shard, no temporary file
  CHECK(!fs::exists(dir / dsv4::io::gguf_split_path(prefix, want.size(), want.size() + 1)));
}

}  // namespace

TEST_CASE("split writing: dsv4's shards are llama-gguf-split's and llama-quantize's files") {
  ScratchDir dir("write");
  SUBCASE("quantize --split-max-tensors 40 = llama-quantize then llama-gguf-split") {
    const json c = split_case("q8_0_max_tensors");
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c["type"].get<std::string>());
    opt.split.max_tensors = c["split_max_tensors"].get<std::uint64_t>();
    const auto plan = dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "q8t.gguf", opt);
    CHECK(plan.shards.size() == c["files"].size());
    check_files(dir.path, "q8t", c);
    CHECK(dir.files().size() == c["files"].size());
  }
  SUBCASE("quantize --split-max-size 2M = llama-quantize then llama-gguf-split") {
    const json c = split_case("q8_0_max_size");
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c["type"].get<std::string>());
    opt.split.max_bytes =
        dsv4::io::parse_split_size(c["split_max_size"].get<std::string>(), "--split-max-size");
    dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "q8s.gguf", opt);
    check_files(dir.path, "q8s", c);
    CHECK(dir.files().size() == c["files"].size());
  }
  SUBCASE("split_gguf_file = llama-gguf-split; quantize --keep-split = llama-quantize's") {
    const json c = split_case("f32_max_tensors");
    GgufSplitLimits l;
    l.max_tensors = c["split_max_tensors"].get<std::uint64_t>();
    const auto paths = dsv4::io::split_gguf_file(GgufFile(tiny_path()), dir.path / "f32t", l);
    CHECK(paths.size() == c["files"].size());
    check_files(dir.path, "f32t", c);

    const json k = split_case("q8_0_keep_split");
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(k["type"].get<std::string>());
    opt.keep_split = true;
    dsv4::io::quantize_gguf_file(paths.front(), dir.path / "q8keep.gguf", opt);
    check_files(dir.path, "q8keep", k);
    CHECK(!fs::exists(dir.path / "q8keep.gguf"));
  }
}

TEST_CASE("a split model reads as the file it was split from") {
  ScratchDir dir("read");
  const GgufFile whole(tiny_path());
  GgufSplitLimits l;
  l.max_bytes = 3'000'000;  // the tiny model's 20 MB of F32 tensors: 8 files
  const auto paths = dsv4::io::split_gguf_file(whole, dir.path / "tiny.gguf", l);
  REQUIRE(paths.size() == 8);
  CHECK(paths.front().filename() == "tiny-00001-of-00008.gguf");

  const GgufFile split(paths.front());
  CHECK(split.shard_count() == 8);
  CHECK(split.tensors().size() == whole.tensors().size());
  std::uint64_t bytes = 0;
  for (const auto& p : paths) bytes += fs::file_size(p);
  CHECK(split.total_bytes() == bytes);
  for (const auto& t : whole.tensors()) {
    const auto* s = split.find_tensor(t.name);
    REQUIRE(s != nullptr);
    CHECK(s->ne == t.ne);
    CHECK(s->type == t.type);
    const auto a = whole.tensor_data(t);
    const auto b = split.tensor_data(*s);
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);
  }
  // every key/value of the model, then the split keys
  for (const auto& [key, value] : whole.metadata()) {
    CAPTURE(key);
    REQUIRE(split.metadata().find(key) != nullptr);
    CHECK(*split.metadata().find(key) == value);
  }
  CHECK(split.metadata().get_int("split.count") == 8);

  // the model loads from the split and from the file alike
  const dsv4::io::GgufModel a(std::make_shared<const GgufFile>(tiny_path()));
  const dsv4::io::GgufModel b(std::make_shared<const GgufFile>(paths.front()));
  CHECK(a.config().dim == b.config().dim);
  CHECK(a.config().n_layers == b.config().n_layers);

  // quantizing the split model gives the bytes of quantizing the file
  QuantizeOptions opt;
  opt.file_type = g::FileType::q4_k_m;
  dsv4::io::quantize_gguf_file(paths.front(), dir.path / "from_split.gguf", opt);
  dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "from_file.gguf", opt);
  CHECK(read_all(dir.path / "from_split.gguf") == read_all(dir.path / "from_file.gguf"));
}

TEST_CASE("broken split models are one error naming the file") {
  ScratchDir dir("broken");
  GgufSplitLimits l;
  l.max_tensors = 60;  // 3 files
  const auto paths = dsv4::io::split_gguf_file(GgufFile(tiny_path()), dir.path / "m", l);
  REQUIRE(paths.size() == 3);
  CHECK_THROWS_WITH_AS(GgufFile{paths[1]},
                       doctest::Contains("this is shard 2 of 3 of a split model; open the model "
                                         "by its first shard (m-00001-of-00003.gguf)"),
                       dsv4::FormatError);
  SUBCASE("a missing shard") {
    fs::remove(paths[2]);
    const std::string want = "shard 3 of 3 (" + paths[2].string() + ") is missing";
    CHECK_THROWS_WITH_AS(GgufFile{paths[0]}, doctest::Contains(want.c_str()), dsv4::FormatError);
  }
  SUBCASE("a first shard not named as llama.cpp names it") {
    fs::rename(paths[0], dir.path / "m.gguf");
    CHECK_THROWS_WITH_AS(GgufFile{dir.path / "m.gguf"},
                         doctest::Contains("is named PREFIX-00001-of-00003.gguf"),
                         dsv4::FormatError);
  }
  SUBCASE("a shard of another split") {
    l.max_tensors = 40;  // 4 files: its shard 2 says split.count 4
    const auto other = dsv4::io::split_gguf_file(GgufFile(tiny_path()), dir.path / "o", l);
    fs::copy_file(other[1], paths[1], fs::copy_options::overwrite_existing);
    CHECK_THROWS_WITH_AS(GgufFile{paths[0]},
                         doctest::Contains("holds split.no 1 and split.count 4 (expected 1 and 3"),
                         dsv4::FormatError);
  }
  SUBCASE("a tensor in two shards, a wrong tensor count") {
    // shard 2 of the 3 replaced by a copy of shard 3 renumbered: its tensors appear twice
    const GgufFile third(paths[2], false);
    dsv4::io::GgufMetadata m = third.metadata();
    m.set("split.no", dsv4::io::GgufValue(std::uint16_t{1}));
    auto shards = dsv4::io::gguf_single_shard(m, third.tensors());
    {
      dsv4::io::AtomicOutputFile f(paths[1]);
      dsv4::io::GgufSplitWriter w(shards, [&f](std::size_t) -> dsv4::io::GgufWriter::Sink {
        return [&f](std::span<const std::byte> s) { f.write(s); };
      });
      for (const auto& t : third.tensors()) w.write(third.tensor_data(t));
      w.finish();
      f.commit();
    }
    CHECK_THROWS_WITH_AS(GgufFile{paths[0]}, doctest::Contains("is in two shards"),
                         dsv4::FormatError);
  }
}

TEST_CASE("split options: sizes, limits and failed runs") {
  using dsv4::io::parse_split_size;
  CHECK(parse_split_size("500M", "--split-max-size") == 500'000'000u);
  CHECK(parse_split_size("50G", "--split-max-size") == 50'000'000'000u);
  for (const char* bad : {"5K", "0M", "M", "-1M", "1.5G", "12", "99999999999999999999G"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse_split_size(bad, "--split-max-size"),
                         doctest::Contains("--split-max-size"), dsv4::InputError);
  }
  ScratchDir dir("options");
  QuantizeOptions opt;
  opt.file_type = g::FileType::q8_0;
  opt.split.max_bytes = 1000;  // less than the first tensor
  CHECK_THROWS_WITH_AS(dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "o.gguf", opt),
                       doctest::Contains("alone takes"), dsv4::InputError);
  opt.split.max_bytes = 0;
  opt.split.max_tensors = 10;
  opt.keep_split = true;
  CHECK_THROWS_WITH_AS(dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "o.gguf", opt),
                       doctest::Contains("--keep-split"), dsv4::InputError);
  // a run cancelled in its third file leaves no file at all (the first two were complete)
  opt.keep_split = false;
  opt.split.max_tensors = 40;
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "o.gguf", opt,
                                               [](const dsv4::io::QuantizeProgress& p) {
                                                 if (p.tensor >= 100)
                                                   throw std::runtime_error("cancelled");
                                               }),
                  std::runtime_error);
  CHECK(dir.files().empty());
  // --keep-split of one file: one file named as shard 1 of 1, without split keys
  opt.split.max_tensors = 0;
  opt.keep_split = true;
  dsv4::io::quantize_gguf_file(tiny_path(), dir.path / "one.gguf", opt);
  CHECK(dir.files() == std::vector<std::string>{"one-00001-of-00001.gguf"});
  const GgufFile one(dir.path / "one-00001-of-00001.gguf");
  CHECK(one.metadata().find("split.count") == nullptr);
  CHECK(one.tensors().size() == GgufFile(tiny_path()).tensors().size());
}
