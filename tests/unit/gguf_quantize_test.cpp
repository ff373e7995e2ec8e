// `dsv4 quantize` (include/dsv4/io/gguf_quantize.hpp) against llama.cpp's llama-quantize: the
// tiny DeepSeek-V4 model (tests/data/llamacpp/models/dsv4-tiny-f32.gguf) quantized to F16, Q8_0,
// Q4_K_M, Q2_K and MXFP4_MOE must give llama-quantize's files: the same key/values in the same
// order, the same tensors (name, type, shape, offset, size) and the same bytes, checked against
// manifests of llama.cpp's files (tests/data/llamacpp/manifests, tools/gguf_manifest.py). Also:
// MTP tensors through every recipe (the MTP sample's listing and manifest), rows that are
// multiples of 32 but not of 256 (fallback types), rows that fit no block (F16, as llama-quantize
// writes them), and failed runs that must leave no output.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/core/presets.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/formats/registry.hpp>
#include <dsv4/io/checkpoint_layout.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/io/quantize_options.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sha256.hpp"
#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
namespace g = dsv4::gguf;
using dsv4::FormatId;
using dsv4::io::GgufFile;
using dsv4::io::GgufMetadata;
using dsv4::io::GgufTensorInfo;
using dsv4::io::GgufValue;
using dsv4::io::QuantizeOptions;
using nlohmann::json;

json read_manifest(const std::string& name) {
  const auto path = dsv4::test::data_path("llamacpp/manifests/" + name + ".json");
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path.string());
  return json::parse(in);
}

std::string value_sha(const GgufValue& v) {
  std::vector<std::byte> enc;
  dsv4::io::encode_gguf_value(enc, v);
  return dsv4::test::sha256_hex(enc);
}

std::string value_type_name(const GgufValue& v) {
  return std::string(v.is_array() ? "ARRAY" : dsv4::io::gguf_type_name(v.type()));
}

/// Every difference between a parsed file and a manifest, one line each (empty: identical).
/// `skip_data` names tensors whose bytes are not compared.
std::vector<std::string> compare(const GgufFile& f, const json& m,
                                 const std::set<std::string>& skip_data = {}) {
  std::vector<std::string> d;
  auto diff = [&](const std::string& s) { d.push_back(s); };
  if (f.version() != m["version"].get<std::uint32_t>()) diff("version");
  if (f.alignment() != m["alignment"].get<std::uint64_t>()) diff("alignment");
  if (f.data_offset() != m["data_offset"].get<std::uint64_t>()) {
    diff(fmt::format("data offset {} vs {}", f.data_offset(),
                     m["data_offset"].get<std::uint64_t>()));
  }
  const auto& kv = m["kv"];
  const auto& entries = f.metadata().entries();
  if (entries.size() != kv.size()) diff(fmt::format("{} keys vs {}", entries.size(), kv.size()));
  for (std::size_t i = 0; i < std::min(entries.size(), kv.size()); ++i) {
    const auto& [key, value] = entries[i];
    const auto& e = kv[i];
    if (key != e["key"].get<std::string>()) {
      diff(fmt::format("key #{}: '{}' vs '{}'", i, key, e["key"].get<std::string>()));
      continue;
    }
    if (value_type_name(value) != e["type"].get<std::string>()) diff("type of key " + key);
    if (value.is_array() &&
        (std::string(dsv4::io::gguf_type_name(value.type())) != e["element_type"] ||
         value.size() != e["count"].get<std::uint64_t>())) {
      diff("array type or length of key " + key);
    }
    if (value_sha(value) != e["sha256"].get<std::string>()) diff("value of key " + key);
  }
  const auto& ts = m["tensors"];
  if (f.tensors().size() != ts.size()) {
    diff(fmt::format("{} tensors vs {}", f.tensors().size(), ts.size()));
  }
  for (std::size_t i = 0; i < std::min(f.tensors().size(), ts.size()); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    const auto& e = ts[i];
    const std::string name = e["name"].get<std::string>();
    if (t.name != name) {
      diff(fmt::format("tensor #{}: '{}' vs '{}'", i, t.name, name));
      continue;
    }
    if (std::string(g::type_name(t.type)) != e["type"].get<std::string>()) {
      diff(fmt::format("tensor {}: type {} vs {}", name, g::type_name(t.type),
                       e["type"].get<std::string>()));
    }
    if (t.ne != e["ne"].get<std::vector<std::int64_t>>()) diff("tensor " + name + ": shape");
    if (t.offset != e["offset"].get<std::uint64_t>()) diff("tensor " + name + ": offset");
    if (t.n_bytes != e["nbytes"].get<std::uint64_t>()) diff("tensor " + name + ": byte size");
    if (skip_data.count(name) == 0 &&
        dsv4::test::sha256_hex(f.tensor_data(t)) != e["sha256"].get<std::string>()) {
      diff(fmt::format("tensor {} ({}): bytes differ", name, g::type_name(t.type)));
    }
  }
  return d;
}

const GgufFile& tiny_f32() {
  static const GgufFile f(dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"));
  return f;
}

/// Quantizes `in` in memory; returns the output file's bytes.
std::vector<std::byte> quantize_to_memory(const GgufFile& in, const QuantizeOptions& opt) {
  const auto plan = dsv4::io::plan_quantization(in, opt);
  std::vector<std::byte> out;
  out.reserve(plan.file_size);
  dsv4::io::quantize_gguf(
      in, plan, [&](std::span<const std::byte> s) { out.insert(out.end(), s.begin(), s.end()); },
      opt);
  CHECK(out.size() == plan.file_size);
  return out;
}

}  // namespace

TEST_CASE("reader: dsv4-tiny-f32.gguf (written by gguf-py) matches its manifest") {
  const GgufFile& f = tiny_f32();
  const json m = read_manifest("dsv4-tiny-f32");
  CHECK(f.bytes().size() == m["size"].get<std::uint64_t>());
  const auto d = compare(f, m);
  for (const auto& s : d) INFO(s);
  CHECK(d.empty());
  CHECK(dsv4::test::sha256_hex(f.bytes().first(f.data_offset())) ==
        m["header_sha256"].get<std::string>());
}

TEST_CASE("quantize dsv4-tiny-f32 like llama-quantize: same key/values, tensors and bytes") {
  const GgufFile& in = tiny_f32();
  struct Case {
    const char* type;
    const char* manifest;
  };
  const Case cases[] = {{"F16", "dsv4-tiny-f16"},
                        {"Q8_0", "dsv4-tiny-q8_0"},
                        {"Q4_K_M", "dsv4-tiny-q4_k_m"},
                        {"Q2_K", "dsv4-tiny-q2_k"},
                        {"MXFP4_MOE", "dsv4-tiny-mxfp4_moe"}};
  for (const Case& c : cases) {
    const std::string type = c.type;
    CAPTURE(type);
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c.type);
    const auto t0 = std::chrono::steady_clock::now();
    auto bytes = quantize_to_memory(in, opt);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(type, ": ", bytes.size(), " bytes in ", ms, " ms");
    const json m = read_manifest(c.manifest);
    const std::string sha = dsv4::test::sha256_hex(bytes);
    const GgufFile out(std::move(bytes), std::string(c.type) + " output");
    const auto d = compare(out, m);
    for (const auto& s : d) MESSAGE(s);
    CHECK(d.empty());
    CHECK(out.bytes().size() == m["size"].get<std::uint64_t>());
    CHECK(sha == m["sha256"].get<std::string>());
  }
}

TEST_CASE("llama-quantize's per-tensor options: same tensor types, key/values and bytes") {
  // tests/data/llamacpp/manifests/quantize_options.json: llama-quantize runs with
  // --output-tensor-type, --token-embedding-type, --tensor-type (a regular expression among
  // them), --override-kv of each type, --leave-output-tensor and --pure; their sizes, sha256 and
  // tensor types.
  const GgufFile& in = tiny_f32();
  std::ifstream f(dsv4::test::data_path("llamacpp/manifests/quantize_options.json"));
  REQUIRE(f.good());
  const json cases = json::parse(f)["cases"];
  REQUIRE(cases.size() == 2);
  for (const json& c : cases) {
    const auto args = c["args"].get<std::vector<std::string>>();
    CAPTURE(c["args"].dump());
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c["type"].get<std::string>());
    std::vector<std::string> patterns;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--leave-output-tensor") {
        opt.overrides.quantize_output = false;
      } else if (a == "--pure") {
        opt.pure = true;
      } else if (a == "--output-tensor-type") {
        opt.overrides.output_type = dsv4::io::ggml_type_option(args.at(++i), a);
      } else if (a == "--token-embedding-type") {
        opt.overrides.token_embedding_type = dsv4::io::ggml_type_option(args.at(++i), a);
      } else if (a == "--tensor-type") {
        patterns.push_back(args.at(++i));
      } else if (a == "--override-kv") {
        opt.kv_overrides.push_back(dsv4::io::kv_override(args.at(++i)));
      } else {
        FAIL("unexpected argument " << a);
      }
    }
    opt.overrides.tensor_type = dsv4::io::tensor_type_matcher(patterns);
    auto bytes = quantize_to_memory(in, opt);
    const std::string sha = dsv4::test::sha256_hex(bytes);
    const GgufFile out(std::move(bytes), "options output");
    // Types first (the clearest difference), then key order and the bytes.
    std::size_t differ = 0;
    for (const GgufTensorInfo& t : out.tensors()) {
      const std::string want = c["tensor_types"].value(t.name, std::string("(absent)"));
      if (std::string(g::type_name(t.type)) != want) {
        MESSAGE(t.name, ": ", g::type_name(t.type), ", llama-quantize ", want);
        ++differ;
      }
    }
    CHECK(differ == 0);
    CHECK(out.tensors().size() == c["tensor_types"].size());
    CHECK(out.bytes().size() == c["size"].get<std::uint64_t>());
    CHECK(sha == c["sha256"].get<std::string>());
  }
}

TEST_CASE("llama-quantize's option syntax: bad types, patterns and key/values are named") {
  using dsv4::io::kv_override;
  CHECK_THROWS_WITH_AS(dsv4::io::ggml_type_option("q9_k", "--output-tensor-type q9_k"),
                       doctest::Contains("--output-tensor-type q9_k: unknown ggml type 'q9_k'"),
                       dsv4::InputError);
  CHECK(dsv4::io::ggml_type_option("Q4_k", "x") == FormatId::q4_k);
  CHECK_THROWS_WITH_AS(dsv4::io::tensor_type_matcher({"attn_q"}),
                       doctest::Contains("expected NAME=TYPE"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(dsv4::io::tensor_type_matcher({"attn_q="}),
                       doctest::Contains("expected NAME=TYPE"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(dsv4::io::tensor_type_matcher({"ffn=q9"}),
                       doctest::Contains("--tensor-type ffn=q9: unknown ggml type 'q9'"),
                       dsv4::InputError);
  CHECK_THROWS_WITH_AS(dsv4::io::tensor_type_matcher({"blk.(=q8_0"}),
                       doctest::Contains("not a regular expression"), dsv4::InputError);
  const auto m = dsv4::io::tensor_type_matcher({"FFN_(UP|GATE)=q5_k", "ffn=q8_0"});
  CHECK(m("blk.1.ffn_up_exps.weight") == FormatId::q5_k);  // the name is lower-cased
  CHECK(m("blk.1.ffn_down_exps.weight") == FormatId::q8_0);
  CHECK(m("output.weight") == std::nullopt);
  CHECK_FALSE(dsv4::io::tensor_type_matcher({}));
  CHECK(kv_override("a.b=int:-7").second.get<std::uint32_t>() == 7u);
  CHECK(kv_override("a=float:0.25").second.get<float>() == 0.25f);
  CHECK(kv_override("a=bool:false").second.get<bool>() == false);
  CHECK(kv_override("a=str:x=y:z").second.str() == "x=y:z");
  for (const char* bad : {"a", "=int:1", "a=int:", "a=int:1.5", "a=int:4294967296", "a=float:nan",
                          "a=bool:yes", "a=list:1"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(kv_override(bad), doctest::Contains("--override-kv"), dsv4::InputError);
  }
  CHECK_THROWS_AS(kv_override("a=str:" + std::string(128, 'x')), dsv4::InputError);
  CHECK_THROWS_AS(kv_override(std::string(128, 'k') + "=int:1"), dsv4::InputError);
}

namespace {

/// A model held in memory: metadata, tensor infos and f32 values (or raw bytes for I32).
struct Synth {
  GgufMetadata meta;
  std::vector<GgufTensorInfo> tensors;
  std::vector<std::vector<std::byte>> data;

  void add(std::string name, std::vector<std::int64_t> ne, const std::vector<float>& v) {
    GgufTensorInfo t{std::move(name), std::move(ne), FormatId::f32, 0, v.size() * 4};
    std::vector<std::byte> d(v.size() * 4);
    std::memcpy(d.data(), v.data(), d.size());
    tensors.push_back(std::move(t));
    data.push_back(std::move(d));
  }
  std::vector<std::byte> image() const {
    std::vector<std::byte> out;
    dsv4::io::GgufWriter w(meta, tensors, [&](std::span<const std::byte> s) {
      out.insert(out.end(), s.begin(), s.end());
    });
    for (std::size_t i = 0; i < tensors.size(); ++i) w.write_tensor(tensors[i].name, data[i]);
    w.finish();
    return out;
  }
};

std::vector<float> normal_values(std::int64_t n, float scale, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

std::int64_t elements(const std::vector<std::int64_t>& ne) {
  std::int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

/// A deepseek4 model from a config, every tensor of llama.cpp's layout (checkpoint_layout.hpp,
/// MTP blocks included), random F32 values (norms near 1), I32 hash tables.
Synth synth_from_config(const dsv4::ModelConfig& c, std::uint32_t seed) {
  Synth s;
  s.meta.add("general.architecture", GgufValue("deepseek4"));
  s.meta.add("general.name", GgufValue("synthetic"));
  s.meta.add("deepseek4.block_count", GgufValue(static_cast<std::uint32_t>(c.n_blocks())));
  s.meta.add("deepseek4.embedding_length", GgufValue(static_cast<std::uint32_t>(c.dim)));
  s.meta.add("deepseek4.attention.head_count", GgufValue(static_cast<std::uint32_t>(c.n_heads)));
  s.meta.add("deepseek4.attention.head_count_kv", GgufValue(std::uint32_t{1}));
  s.meta.add("deepseek4.expert_count", GgufValue(static_cast<std::uint32_t>(c.n_routed_experts)));
  s.meta.add("deepseek4.nextn_predict_layers",
             GgufValue(static_cast<std::uint32_t>(c.n_mtp_layers)));
  s.meta.add("general.file_type", GgufValue(std::uint32_t{0}));
  for (const auto& t : dsv4::gguf_tensors(c, /*include_mtp=*/true)) {
    const std::int64_t n = elements(t.ne);
    if (t.integer) {
      GgufTensorInfo info{t.name, t.ne, dsv4::gguf::ggml_id::i32, 0,
                          static_cast<std::uint64_t>(n) * 4};
      std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
      for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = static_cast<std::int32_t>(i % c.n_routed_experts);
      std::vector<std::byte> d(ids.size() * 4);
      std::memcpy(d.data(), ids.data(), d.size());
      s.tensors.push_back(std::move(info));
      s.data.push_back(std::move(d));
      continue;
    }
    auto v = normal_values(n, 1.f / std::sqrt(static_cast<float>(t.ne[0])), seed++);
    if (t.name.find("norm") != std::string::npos) {
      for (auto& x : v) x = 1.f + x;
    }
    s.add(t.name, t.ne, v);
  }
  return s;
}

/// A small config with the whole V4 structure and one MTP block: rows of 256 (k-quants fit),
/// of 64 and 128 (fallbacks), 3-D experts.
dsv4::ModelConfig small_config() {
  dsv4::ModelConfig c = dsv4::presets::tiny();
  c.vocab_size = 64;
  c.dim = 256;
  c.moe_inter_dim = 64;
  c.n_layers = 2;
  c.n_hash_layers = 1;
  c.n_mtp_layers = 1;
  c.n_heads = 2;
  c.n_routed_experts = 2;
  c.n_activated_experts = 1;
  c.q_lora_rank = 64;
  c.head_dim = 128;
  c.o_lora_rank = 32;
  c.index_n_heads = 2;
  c.index_head_dim = 64;
  c.compress_ratios = {0, 4, 0};
  return c;
}

/// Relative RMS error of `t` (in `f`) against the f32 values `ref`.
double rel_rms_error(const GgufFile& f, const GgufTensorInfo& t, std::span<const std::byte> ref) {
  const auto n = t.n_elements();
  std::vector<float> got(static_cast<std::size_t>(n));
  dsv4::io::detail::quant::dequantize_values(t.type, f.tensor_data(t).data(), n, got.data());
  double err = 0, norm = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    float r;
    std::memcpy(&r, ref.data() + 4 * i, 4);
    err += (double(got[i]) - r) * (double(got[i]) - r);
    norm += double(r) * r;
  }
  return norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
}

/// Worst relative RMS error expected of random normal rows stored as `t` (measured values are
/// about half of these: F16 4e-4, Q8_0 4e-3, Q6_K 0.01, Q5_x 0.03, Q4_x/IQ4 0.06-0.1,
/// MXFP4 0.12, Q3_K 0.17, Q2_K 0.3).
double tolerance(FormatId t) {
  switch (t) {
    case FormatId::f32:
      return 0;
    case FormatId::f16:
      return 1e-3;
    case FormatId::bf16:
      return 5e-3;
    case FormatId::q8_0:
      return 1e-2;
    case FormatId::q6_k:
      return 0.03;
    case FormatId::q5_0:
    case FormatId::q5_1:
    case FormatId::q5_k:
      return 0.06;
    case FormatId::q4_0:
    case FormatId::q4_1:
    case FormatId::q4_k:
    case FormatId::iq4_nl:
    case FormatId::iq4_xs:
      return 0.15;
    case FormatId::mxfp4:
      return 0.25;
    case FormatId::q3_k:
      return 0.3;
    default:
      return 0.5;
  }
}

fs::path scratch_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("dsv4_quantize_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, std::span<const std::byte> bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<std::string> dir_entries(const fs::path& d) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("MTP tensors survive every recipe, with the recipe's types and sane values") {
  const dsv4::ModelConfig c = small_config();
  const Synth s = synth_from_config(c, 7);
  const GgufFile in(s.image(), "synthetic-mtp.gguf");
  const std::string mtp = "blk." + std::to_string(c.n_layers) + ".";
  std::vector<g::TensorInfo> recipe_in;
  for (const auto& t : in.tensors()) recipe_in.push_back({t.name, t.ne, t.type});
  const auto facts = dsv4::io::gguf_model_facts(in.metadata());
  CHECK(facts.n_layers == 3);
  CHECK(facts.n_expert == c.n_routed_experts);
  int n_mtp_in = 0;
  for (const auto& t : in.tensors()) n_mtp_in += t.name.rfind(mtp, 0) == 0 ? 1 : 0;
  CHECK(n_mtp_in > 20);
  double total_ms = 0;
  for (const auto& ft : g::kFileTypes) {
    for (const bool pure : {false, true}) {
      // --pure only where the recipe mixes types (the others give the same file either way)
      if (pure && ft.type != g::FileType::q4_k_m && ft.type != g::FileType::q2_k &&
          ft.type != g::FileType::q3_k_m && ft.type != g::FileType::mxfp4_moe)
        continue;
      const std::string label = std::string(ft.name) + (pure ? " pure" : "");
      CAPTURE(label);
      QuantizeOptions opt;
      opt.file_type = ft.type;
      opt.pure = pure;
      const auto t0 = std::chrono::steady_clock::now();
      const GgufFile out(quantize_to_memory(in, opt), label);
      total_ms +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const auto want = g::plan_types(ft.type, facts, recipe_in, pure);
      REQUIRE(out.tensors().size() == in.tensors().size());
      CHECK(out.metadata().get<std::uint32_t>("general.file_type") ==
            static_cast<std::uint32_t>(ft.type));
      CHECK(out.metadata().get<std::uint32_t>("deepseek4.nextn_predict_layers") == 1);
      int n_mtp = 0;
      for (std::size_t i = 0; i < in.tensors().size(); ++i) {
        const auto& src = in.tensors()[i];
        CAPTURE(src.name);
        const GgufTensorInfo* t = out.find_tensor(src.name);
        REQUIRE(t != nullptr);
        CHECK(t->ne == src.ne);
        CHECK(t->type == want[i]);
        if (src.name.rfind(mtp, 0) == 0) ++n_mtp;
        if (t->type == src.type) {
          const auto a = out.tensor_data(*t);
          const auto b = in.tensor_data(src);
          CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
        } else {
          const double e = rel_rms_error(out, *t, s.data[i]);
          CHECK_MESSAGE(e <= tolerance(t->type), g::type_name(t->type), " error ", e);
        }
      }
      CHECK(n_mtp == n_mtp_in);  // a full block plus eh_proj, enorm, hnorm, shared_head_norm
      const GgufTensorInfo& eh = out.tensor(mtp + "nextn.eh_proj.weight");
      if (g::traits_of(ft.base).quantized) CHECK(g::traits_of(eh.type).quantized);
      CHECK(out.tensor(mtp + "nextn.enorm.weight").type == FormatId::f32);
    }
  }
  MESSAGE("all recipes on the synthetic MTP model: ", total_ms, " ms");
}

TEST_CASE("MTP sample: trunk + MTP block quantized to Q8_0 as llama-quantize did") {
  // The F32 original of dsv4-tiny-mtp-q8_0.gguf is the tiny model's trunk plus block 5; it is
  // rebuilt here from dsv4-tiny-f32.gguf, its listing (key order, tensor order and shapes) and
  // random values for block 5, whose original weights are not stored. Key/values, tensor
  // infos, offsets and every trunk tensor's bytes must then equal llama-quantize's output.
  const GgufFile& tiny = tiny_f32();
  const auto listing = dsv4::test::data_path("llamacpp/listings/dsv4-tiny-mtp-f32.txt");
  std::ifstream lin(listing);
  REQUIRE(lin.good());
  Synth s;
  std::string line;
  bool in_tensors = false;
  std::uint32_t seed = 100;
  std::set<std::string> block5;
  while (std::getline(lin, line)) {
    if (line.rfind("## tensors", 0) == 0) {
      in_tensors = true;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const std::string key = line.substr(0, line.find('\t'));
    if (!in_tensors) {
      if (key == "deepseek4.block_count") {
        s.meta.add(key, GgufValue(std::uint32_t{6}));
      } else if (key == "deepseek4.nextn_predict_layers") {
        s.meta.add(key, GgufValue(std::uint32_t{1}));
      } else if (key == "deepseek4.swiglu_clamp_exp" || key == "deepseek4.swiglu_clamp_shexp") {
        s.meta.add(key, GgufValue::array(std::vector<float>(6, 10.f)));
      } else if (key == "deepseek4.attention.compress_ratios") {
        s.meta.add(key, GgufValue::array(std::vector<std::int32_t>{0, 4, 128, 4, 128, 0}));
      } else {
        s.meta.add(key, tiny.metadata().at(key));
      }
      continue;
    }
    if (const GgufTensorInfo* t = tiny.find_tensor(key)) {
      const auto d = tiny.tensor_data(*t);
      s.tensors.push_back(*t);
      s.data.emplace_back(d.begin(), d.end());
    } else {
      // "name<TAB>[ne0, ne1]<TAB>F32<TAB>offset<TAB>nbytes"
      std::istringstream f(line.substr(line.find('[') + 1));
      std::vector<std::int64_t> ne;
      std::int64_t d;
      char sep = ',';
      while (sep == ',' && f >> d >> sep) ne.push_back(d);
      s.add(key, ne, normal_values(elements(ne), 0.05f, seed++));
      block5.insert(key);
    }
  }
  CHECK(s.tensors.size() == 182);
  CHECK(block5.size() == 28);
  const GgufFile in(s.image(), "tiny-mtp-f32");
  CHECK(in.data_offset() == 24832);  // as in the listing of llama.cpp's F32 MTP file
  QuantizeOptions opt;
  opt.file_type = g::FileType::q8_0;
  const GgufFile out(quantize_to_memory(in, opt), "tiny-mtp-q8_0");
  const json m = read_manifest("dsv4-tiny-mtp-q8_0");
  const auto d = compare(out, m, block5);
  for (const auto& line_diff : d) MESSAGE(line_diff);
  CHECK(d.empty());
  CHECK(dsv4::test::sha256_hex(out.bytes().first(out.data_offset())) ==
        m["header_sha256"].get<std::string>());
}

TEST_CASE("rows that are multiples of 32 but not of 256 fall back, rows of 40 need F16") {
  Synth s;
  s.meta.add("general.architecture", GgufValue("deepseek4"));
  s.meta.add("deepseek4.block_count", GgufValue(std::uint32_t{1}));
  const std::int64_t rows[] = {32, 96, 160, 288, 800, 256};
  for (const auto n : rows) {
    s.add(fmt::format("blk.0.w{}.weight", n), {n, 6}, normal_values(n * 6, 1.f, std::uint32_t(n)));
  }
  const GgufFile in(s.image(), "rows.gguf");
  for (const auto& ft : g::kFileTypes) {
    if (!g::traits_of(ft.base).quantized) continue;
    CAPTURE(std::string(ft.name));
    QuantizeOptions opt;
    opt.file_type = ft.type;
    opt.pure = true;
    const GgufFile out(quantize_to_memory(in, opt), "rows-out");
    for (std::size_t i = 0; i < in.tensors().size(); ++i) {
      const auto& t = out.tensor(in.tensors()[i].name);
      CAPTURE(t.name);
      CHECK(t.type == g::fallback_type(ft.base, t.ne[0]));
      if (ft.base == FormatId::q4_k || ft.base == FormatId::q2_k) {
        CHECK(t.type == (t.ne[0] % 256 == 0          ? ft.base
                         : ft.base == FormatId::q4_k ? FormatId::q5_0
                                                     : FormatId::q4_0));
      }
      const double e = rel_rms_error(out, t, s.data[i]);
      CHECK_MESSAGE(e <= tolerance(t.type), g::type_name(t.type), " error ", e);
    }
  }
  // a row of 40 values fits no block: F16 for 256- and 32-element types alike
  Synth odd = s;
  odd.add("blk.0.w40.weight", {40, 2}, normal_values(80, 1.f, 40));
  const GgufFile odd_in(odd.image(), "rows40.gguf");
  for (const auto ft : {g::FileType::q4_k_m, g::FileType::q8_0, g::FileType::mxfp4_moe}) {
    QuantizeOptions opt;
    opt.file_type = ft;
    const GgufFile out(quantize_to_memory(odd_in, opt), "rows40-out");
    CHECK(out.tensor("blk.0.w40.weight").type == FormatId::f16);
  }
}

TEST_CASE("rows that fit no block: llama-quantize's F16 fallback, byte for byte") {
  // tests/data/llamacpp/manifests/fallback.json: the tiny model with one tensor cut to rows of
  // 40 values, quantized by llama-quantize to six types
  const json m = read_manifest("fallback");
  const GgufFile& in = tiny_f32();
  const std::string cut = m["tensor"].get<std::string>();
  const std::int64_t ncols = m["ncols"].get<std::int64_t>();
  std::vector<GgufTensorInfo> tensors = in.tensors();
  for (auto& t : tensors)
    if (t.name == cut) t.ne[0] = ncols;
  std::vector<std::byte> image;
  dsv4::io::GgufWriter w(in.metadata(), tensors, [&image](std::span<const std::byte> b) {
    image.insert(image.end(), b.begin(), b.end());
  });
  for (const auto& t : w.tensors()) w.write_tensor(t.name, in.tensor_data(t.name).first(t.n_bytes));
  w.finish();
  const GgufFile odd(std::move(image), "rows40.gguf");
  for (const json& c : m["cases"]) {
    CAPTURE(c["type"].get<std::string>());
    QuantizeOptions opt;
    opt.file_type = *g::file_type_from_name(c["type"].get<std::string>());
    const auto bytes = quantize_to_memory(odd, opt);
    CHECK(bytes.size() == c["size"].get<std::uint64_t>());
    CHECK(dsv4::test::sha256_hex(bytes) == c["sha256"].get<std::string>());
    CHECK(GgufFile(bytes, "out").tensor(cut).type == FormatId::f16);
  }
}

TEST_CASE("quantize to a file: same bytes, any thread count, in place, progress to the end") {
  const fs::path dir = scratch_dir("file");
  const fs::path in_path = dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf");
  const json m = read_manifest("dsv4-tiny-q8_0");
  std::uint64_t last_done = 0;
  std::uint64_t total = 0;
  int calls = 0;
  bool monotonic = true;
  for (const unsigned threads : {1u, 3u}) {
    CAPTURE(threads);
    QuantizeOptions opt;
    opt.file_type = g::FileType::q8_0;
    opt.threads = threads;
    last_done = 0;
    const fs::path out_path = dir / fmt::format("q8_0_{}.gguf", threads);
    const auto plan = dsv4::io::quantize_gguf_file(
        in_path, out_path, opt, [&](const dsv4::io::QuantizeProgress& p) {
          monotonic = monotonic && p.done >= last_done && p.done <= p.total;
          last_done = p.done;
          total = p.total;
          ++calls;
        });
    CHECK(fs::file_size(out_path) == plan.file_size);
    const GgufFile out(out_path);
    CHECK(dsv4::test::sha256_hex(out.bytes()) == m["sha256"].get<std::string>());
  }
  CHECK(monotonic);
  CHECK(calls >= 2 * 154);
  CHECK(last_done == total);
  CHECK(dir_entries(dir) == std::vector<std::string>{"q8_0_1.gguf", "q8_0_3.gguf"});

  // in place (found on main: `quantize m.gguf m.gguf` replaced the F32 model): refused before
  // any work, under any spelling of the same file, and the input stays as it was
  const fs::path inplace = dir / "model.gguf";
  fs::copy_file(in_path, inplace);
  fs::create_symlink("model.gguf", dir / "link.gguf");
  const std::string before = dsv4::test::sha256_hex(GgufFile(inplace).bytes());
  QuantizeOptions opt;
  opt.file_type = g::FileType::q2_k;
  for (const fs::path& out : {inplace, dir / "." / "model.gguf", dir / "link.gguf"}) {
    CAPTURE(out);
    CHECK_THROWS_WITH_AS(dsv4::io::quantize_gguf_file(inplace, out, opt),
                         doctest::Contains("the output is the input"), dsv4::InputError);
  }
  CHECK(dsv4::test::sha256_hex(GgufFile(inplace).bytes()) == before);
  fs::remove_all(dir);
}

TEST_CASE("output checks: inside an input directory, unwritable directory, stale temp files") {
  const fs::path dir = scratch_dir("checks");
  fs::create_directories(dir / "ckpt");
  write_file(dir / "ckpt" / "config.json", std::vector<std::byte>(3, std::byte{1}));
  using dsv4::io::check_output_path;
  // `convert DIR DIR/config.json` overwrote the checkpoint's config on main
  CHECK_THROWS_WITH_AS(check_output_path(dir / "ckpt" / "config.json", {dir / "ckpt"}),
                       doctest::Contains("lies inside the input directory"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(check_output_path(dir / "ckpt" / "new.gguf", {dir / "ckpt" / "."}),
                       doctest::Contains("lies inside the input directory"), dsv4::InputError);
  CHECK_NOTHROW(check_output_path(dir / "ckpt.gguf", {dir / "ckpt"}));  // a sibling, not inside
  CHECK_THROWS_WITH_AS(check_output_path(dir / "no" / "o.gguf", {}),
                       doctest::Contains("does not exist"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(check_output_path(dir / "ckpt", {}), doctest::Contains("is a directory"),
                       dsv4::InputError);
  if (::geteuid() != 0) {  // root writes anywhere
    fs::permissions(dir / "ckpt", fs::perms::owner_write, fs::perm_options::remove);
    CHECK_THROWS_WITH_AS(check_output_path(dir / "ckpt" / "o.gguf", {}),
                         doctest::Contains("cannot write in the output directory"),
                         dsv4::InputError);
    fs::permissions(dir / "ckpt", fs::perms::owner_write, fs::perm_options::add);
  }

  // a killed run's temporary files (its process gone; the older name form without an id) are
  // removed by the next run for that output; a live writer's file and other files are kept
  const std::vector<std::byte> junk(5, std::byte{7});
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string live = fmt::format(".out.gguf.tmp-{}-abcdef", ::getpid());
  for (const std::string& f :
       {fmt::format(".out.gguf.tmp-{}-abcdef", dead), std::string(".out.gguf.tmp-XyZ123"), live,
        std::string(".other.gguf.tmp-XyZ123")}) {
    write_file(dir / f, junk);
  }
  const fs::path in_path = dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf");
  QuantizeOptions opt;
  opt.file_type = g::FileType::q8_0;
  dsv4::io::quantize_gguf_file(in_path, dir / "out.gguf", opt);
  CHECK(dir_entries(dir) ==
        std::vector<std::string>{".other.gguf.tmp-XyZ123", live, "ckpt", "out.gguf"});
  fs::remove_all(dir);
}

TEST_CASE("a failed or cancelled run leaves no output file (and an existing one untouched)") {
  const fs::path dir = scratch_dir("fail");
  // a model whose last tensor (in llama.cpp's order) has a NaN in row 3: the run fails after
  // the other tensors have been written
  Synth s;
  s.meta.add("general.architecture", GgufValue("deepseek4"));
  s.meta.add("deepseek4.block_count", GgufValue(std::uint32_t{2}));
  s.add("blk.0.attn_q_a.weight", {256, 64}, normal_values(256 * 64, 1.f, 1));
  auto bad = normal_values(256 * 8, 1.f, 2);
  bad[3 * 256 + 17] = std::nanf("");
  s.add("blk.1.attn_q_a.weight", {256, 8}, bad);
  s.add("token_embd.weight", {256, 64}, normal_values(256 * 64, 1.f, 3));
  const fs::path in_path = dir / "in.gguf";
  write_file(in_path, s.image());
  const fs::path out_path = dir / "out.gguf";
  QuantizeOptions opt;
  opt.file_type = g::FileType::q4_0;
  CHECK_THROWS_WITH_AS(dsv4::io::quantize_gguf_file(in_path, out_path, opt),
                       doctest::Contains("'blk.1.attn_q_a.weight' (F32 [256, 8]): row 3 holds a "
                                         "non-finite value (nan) at column 17"),
                       dsv4::FormatError);
  CHECK(dir_entries(dir) == std::vector<std::string>{"in.gguf"});

  // an existing output stays as it was
  const std::vector<std::byte> old{std::byte{1}, std::byte{2}, std::byte{3}};
  write_file(out_path, old);
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(in_path, out_path, opt), dsv4::FormatError);
  CHECK(fs::file_size(out_path) == 3);
  fs::remove(out_path);

  // values too large for the type's f16 scale
  Synth big = s;
  big.data[1].assign(big.data[1].size(), std::byte{0});
  const float huge = 3.0e38f;
  std::memcpy(big.data[1].data() + 4 * 300, &huge, 4);
  write_file(in_path, big.image());
  CHECK_THROWS_WITH_AS(dsv4::io::quantize_gguf_file(in_path, out_path, opt),
                       doctest::Contains("row 1 does not fit Q4_0"), dsv4::FormatError);
  CHECK(dir_entries(dir) == std::vector<std::string>{"in.gguf"});

  // cancelled through the progress callback (what dsv4 quantize does on Ctrl-C)
  write_file(in_path, s.image());
  int calls = 0;
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(in_path, out_path, opt,
                                               [&](const dsv4::io::QuantizeProgress&) {
                                                 if (++calls == 2) throw dsv4::InputError("stop");
                                               }),
                  dsv4::InputError);
  CHECK(dir_entries(dir) == std::vector<std::string>{"in.gguf"});

  // an output directory that does not exist; an output path that is a directory
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(in_path, dir / "no" / "out.gguf", opt), dsv4::Error);
  fs::create_directories(dir / "sub");
  opt.file_type = g::FileType::q8_0;
  s.data[1] = s.data[0];  // no NaN: the run gets as far as the rename
  s.tensors[1].ne = s.tensors[0].ne;
  s.tensors[1].n_bytes = s.tensors[0].n_bytes;
  write_file(in_path, s.image());
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(in_path, dir / "sub", opt), dsv4::Error);
  CHECK(fs::is_directory(dir / "sub"));
  CHECK(dir_entries(dir) == std::vector<std::string>{"in.gguf", "sub"});
  // a truncated input: nothing is created
  const auto image = s.image();
  write_file(in_path, std::span(image).first(image.size() - 100));
  CHECK_THROWS_AS(dsv4::io::quantize_gguf_file(in_path, out_path, opt), dsv4::FormatError);
  CHECK(dir_entries(dir) == std::vector<std::string>{"in.gguf", "sub"});
  fs::remove_all(dir);
}

TEST_CASE("re-quantizing a quantized file needs allow_requantize") {
  QuantizeOptions q8;
  q8.file_type = g::FileType::q8_0;
  const GgufFile mid(quantize_to_memory(tiny_f32(), q8), "tiny-q8_0");
  QuantizeOptions opt;
  opt.file_type = g::FileType::q4_0;
  CHECK_THROWS_WITH_AS(quantize_to_memory(mid, opt),
                       doctest::Contains("is already Q8_0; re-quantizing it to"),
                       dsv4::ConfigError);
  opt.allow_requantize = true;
  const GgufFile out(quantize_to_memory(mid, opt), "tiny-q4_0");
  // Q8_0 -> Q4_0 dequantizes the Q8_0 values first; the result is close to a direct Q4_0
  const GgufFile direct(quantize_to_memory(tiny_f32(), opt), "tiny-q4_0-direct");
  REQUIRE(out.tensors() == direct.tensors());
  const auto& t = out.tensor("blk.0.attn_q_a.weight");
  CHECK(t.type == FormatId::q4_0);
  const auto& src = tiny_f32().tensor("blk.0.attn_q_a.weight");
  CHECK(rel_rms_error(out, t, tiny_f32().tensor_data(src)) < 0.15);
  // F16 input is not "quantized": F16 -> Q8_0 needs no flag
  QuantizeOptions f16;
  f16.file_type = g::FileType::f16;
  const GgufFile half(quantize_to_memory(tiny_f32(), f16), "tiny-f16");
  const GgufFile from_half(quantize_to_memory(half, q8), "tiny-f16-q8_0");
  CHECK(from_half.tensor("blk.0.attn_q_a.weight").type == FormatId::q8_0);
  // an unknown file type
  QuantizeOptions bad;
  bad.file_type = static_cast<g::FileType>(99);
  CHECK_THROWS_AS(dsv4::io::plan_quantization(tiny_f32(), bad), dsv4::ConfigError);
}
