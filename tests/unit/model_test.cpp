// The assembled model (include/dsv4/model/model.hpp) against the golden logits of the tiny
// reference checkpoints tiny_a / tiny_b (golden reference README "Run protocol"):
//   prefill.logits_all               prefill of all N tokens, logits of every position
//   decode_from_P.{prefill_logits, logits}   prefill of P tokens, then one token per call
//   mtp.prefill.logits_all           the MTP block on the recorded trunk output (pairs (h_i,
//   x_i+1)) mtp.decode_from_Pm.logits        MTP prefill of Pm positions, then one position per
//   call
// fp32 numerics against golden_fp32 and the reference's bf16 numerics against golden_bf16, with
// bounds a few times the measured error (bit-exact where it is; Fp32Run, Bf16Run). Also: loading a
// checkpoint directory (one file, or shards with an index) and the errors for a checkpoint that
// does not match its config.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/core/numerics.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/model.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace fs = std::filesystem;
using dsv4::FormatId;
using dsv4::test::compare;
using dsv4::test::ErrorStats;
using dsv4::test::read_i32;
using dsv4::test::reference_case;
using dsv4::test::ReferenceCase;

/// Bounds on |got - golden| over a set of logits.
struct Bound {
  double max_abs;
  double mean_abs;
};

// Measured figures: this test's own MESSAGE lines (the ci build, x86-64, GCC 12).
struct Fp32Run {
  using numerics = dsv4::ReferenceFp32Numerics;
  static constexpr const char* stem = "fp32";
  // fp32 differs from the golden fp32 run only in summation order. Measured worst over every
  // path of both models: max 5.7e-6 (tiny_b prefill), mean 8.3e-7 (tiny_b, the prefill of
  // decode_from_70).
  static Bound bound(const std::string&, const std::string&) { return {2e-5, 2e-6}; }
  static constexpr bool same_top1 = true;
};
struct Bf16Run {
  using numerics = dsv4::ReferenceTorch1Numerics;  // golden bf16 runs: PyTorch 1.13
  static constexpr const char* stem = "bf16";
  // tiny_a's prefill of all tokens is bit-exact. Elsewhere the bound is the scale of the
  // reference's own bf16 decode-vs-prefill differences (golden README, max ~0.11), which are
  // oracle noise, not ours: measured trunk max 0.112 / mean 0.0125 (decode, and the prefill of
  // the decode runs' prefixes), tiny_b prefill 0.056 / 0.0097 (head_dim 96, bit-exact per-head q
  // normalisation only with the bf16 mean's two roundings); the MTP block on the recorded trunk
  // output max 0.032, mean 0.00051 (prefill) and 0.0034 (decode).
  static Bound bound(const std::string& name, const std::string& what) {
    if (name == "tiny_a" && what == "prefill.logits_all") return {0.0, 0.0};
    if (what.rfind("mtp.prefill", 0) == 0) return {0.1, 0.002};
    if (what.rfind("mtp.", 0) == 0) return {0.1, 0.01};
    return {0.15, 0.015};
  }
  static constexpr bool same_top1 = false;  // near-tied top logits may flip
};

template <class N>
using TinyModel = dsv4::ReferenceModel<dsv4::WithNumerics<N>>;

dsv4::io::Checkpoint checkpoint(const std::string& name) {
  const auto dir = dsv4::test::data_path("reference/" + name);
  return {dir / "config.json", {dir / "weights.safetensors"}};
}

template <class N>
const TinyModel<N>& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<TinyModel<N>>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache.emplace(name, std::make_unique<TinyModel<N>>(TinyModel<N>::load(checkpoint(name))))
             .first;
  }
  return *it->second;
}

std::size_t argmax(const float* v, std::size_t n) {
  return static_cast<std::size_t>(std::max_element(v, v + n) - v);
}

/// Fraction of rows whose argmax agree.
double top1_agreement(const std::vector<float>& got, const std::vector<float>& want,
                      std::size_t v) {
  const std::size_t rows = want.size() / v;
  std::size_t same = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    same += argmax(got.data() + r * v, v) == argmax(want.data() + r * v, v) ? 1 : 0;
  }
  return rows ? static_cast<double>(same) / static_cast<double>(rows) : 1.0;
}

template <class Run>
void check_logits(const std::string& name, const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& want, std::size_t v) {
  const ErrorStats s = compare(got, want);
  const double top1 = top1_agreement(got, want, v);
  MESSAGE(
      fmt::format("{} {} {}: {}, top-1 agreement {:.3f}", name, Run::stem, what, s.str(), top1));
  const Bound b = Run::bound(name, what);
  CHECK(s.max_abs <= b.max_abs);
  CHECK(s.mean_abs <= b.mean_abs);
  if (Run::same_top1) CHECK(top1 == 1.0);
}

/// Decode prefixes P present in a golden file (keys "decode_from_P.logits" / "mtp.decode_from_…").
std::vector<int> prefixes(const dsv4::io::SafetensorsFile& golden, const std::string& lead) {
  std::vector<int> out;
  for (const std::string& n : golden.names()) {
    if (n.rfind(lead, 0) == 0 && n.size() > 7 && n.substr(n.size() - 7) == ".logits") {
      out.push_back(std::stoi(n.substr(lead.size(), n.size() - 7 - lead.size())));
    }
  }
  return out;
}

std::vector<float> rows(const std::vector<float>& v, std::size_t first, std::size_t n,
                        std::size_t w) {
  return {v.begin() + static_cast<std::ptrdiff_t>(first * w),
          v.begin() + static_cast<std::ptrdiff_t>((first + n) * w)};
}

template <class Run>
void check_case(const std::string& name) {
  using N = typename Run::numerics;
  const ReferenceCase& rc = reference_case(name);
  const auto* golden = rc.file(std::string("golden_") + Run::stem);
  REQUIRE(golden != nullptr);
  const auto& m = model<N>(name);
  const std::size_t v = m.vocab_size();
  const auto tokens = read_i32(*golden, "tokens");

  {  // prefill of the whole sequence
    auto st = m.new_state();
    const auto out = m.prefill(tokens, st);
    check_logits<Run>(name, "prefill.logits_all", out.logits,
                      golden->to_float("prefill.logits_all"), v);
  }
  for (const int p : prefixes(*golden, "decode_from_")) {  // prefill of P, then decode
    CAPTURE(p);
    auto st = m.new_state();
    const auto pre = m.prefill(
        std::span<const std::int32_t>(tokens.data(), static_cast<std::size_t>(p)), st, false);
    const std::string key = fmt::format("decode_from_{}", p);
    check_logits<Run>(name, "prefill of " + key, pre.logits,
                      golden->to_float(key + ".prefill_logits"), v);
    std::vector<float> got;
    for (auto i = static_cast<std::size_t>(p); i < tokens.size(); ++i) {
      const auto out = m.decode(tokens[i], st);
      got.insert(got.end(), out.logits.begin(), out.logits.end());
    }
    check_logits<Run>(name, key + ".logits", got, golden->to_float(key + ".logits"), v);
  }

  // MTP on the recorded trunk output, paired with the next tokens.
  const auto hidden = golden->to_float("mtp.hidden_in");
  const auto mtp_tokens = read_i32(*golden, "mtp.tokens");
  const std::size_t hw = hidden.size() / mtp_tokens.size();
  {
    auto st = m.new_state();
    const auto out = m.mtp_forward(hidden, mtp_tokens, 0, st);
    check_logits<Run>(name, "mtp.prefill.logits_all", out.logits,
                      golden->to_float("mtp.prefill.logits_all"), v);
  }
  for (const int p : prefixes(*golden, "mtp.decode_from_")) {
    CAPTURE(p);
    const auto pu = static_cast<std::size_t>(p);
    auto st = m.new_state();
    m.mtp_forward(rows(hidden, 0, pu, hw), std::span<const std::int32_t>(mtp_tokens.data(), pu), 0,
                  st, 0, false);
    std::vector<float> got;
    for (std::size_t i = pu; i < mtp_tokens.size(); ++i) {
      const auto out =
          m.mtp_forward(rows(hidden, i, 1, hw), std::span<const std::int32_t>(&mtp_tokens[i], 1),
                        static_cast<std::int64_t>(i), st);
      got.insert(got.end(), out.logits.begin(), out.logits.end());
    }
    const std::string key = fmt::format("mtp.decode_from_{}", p);
    check_logits<Run>(name, key + ".logits", got, golden->to_float(key + ".logits"), v);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("the model reproduces the reference's golden logits", Run, Fp32Run, Bf16Run) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    check_case<Run>(name);
  }
}

TEST_CASE("prefill then decode equals one longer prefill (fp32)") {
  const auto& m = model<dsv4::ReferenceFp32Numerics>("tiny_b");
  const ReferenceCase& rc = reference_case("tiny_b");
  const auto tokens = read_i32(*rc.file("golden_fp32"), "tokens");
  const std::span<const std::int32_t> all(tokens.data(), 40);
  auto st = m.new_state();
  const auto full = m.prefill(all, st);
  auto st2 = m.new_state();
  m.prefill(all.first(30), st2);
  const auto chunk = m.forward(all.subspan(30), 30, st2);  // a multi-token continuation
  const ErrorStats s = compare(chunk.logits, rows(full.logits, 30, 10, m.vocab_size()));
  MESSAGE(fmt::format("tiny_b fp32 chunked prefill (30 + 10) vs one prefill: {}", s.str()));
  // every row is computed the same way whatever the chunking: bit-exact (measured max 0)
  CHECK(chunk.logits == rows(full.logits, 30, 10, m.vocab_size()));
  // A new sequence at start_pos 0 reuses the state.
  const auto again = m.prefill(all, st2);
  CHECK(again.logits == full.logits);
}

// ---- checkpoints on disk and bad input ---------------------------------------------------------

namespace {

/// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() /
             fmt::format("dsv4_model_test_{}_{}", tag, static_cast<long>(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// Writes the tensors `names` of `src` into a safetensors file.
void write_safetensors(const dsv4::io::SafetensorsFile& src, const std::vector<std::string>& names,
                       const fs::path& out) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t off = 0;
  for (const auto& n : names) {
    const auto& ti = src.info(n);
    header[n] = {{"dtype", std::string(dsv4::dtype_name(ti.dtype))},
                 {"shape", ti.shape},
                 {"data_offsets", {off, off + ti.bytes.size()}}};
    off += ti.bytes.size();
  }
  const std::string h = header.dump();
  std::ofstream f(out, std::ios::binary);
  const std::uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& n : names) {
    const auto& ti = src.info(n);
    f.write(reinterpret_cast<const char*>(ti.bytes.data()),
            static_cast<std::streamsize>(ti.bytes.size()));
  }
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_json(const nlohmann::json& j, const fs::path& p) { std::ofstream(p) << j.dump(2); }

}  // namespace

TEST_CASE("checkpoint directories: one file, shards with an index, blocks split across shards") {
  const ReferenceCase& rc = reference_case("tiny_a");
  const auto src_dir = dsv4::test::data_path("reference/tiny_a");
  const auto tokens = read_i32(*rc.file("golden_fp32"), "tokens");
  const std::span<const std::int32_t> few(tokens.data(), 12);
  using M = dsv4::ReferenceModel<dsv4::WithNumerics<dsv4::ReferenceFp32Numerics>>;
  const auto& ref = model<dsv4::ReferenceFp32Numerics>("tiny_a");
  auto st = ref.new_state();
  const auto want = ref.prefill(few, st).logits;

  SUBCASE("one file") {
    TempDir dir("single");
    fs::copy_file(src_dir / "config.json", dir.path / "config.json");
    fs::copy_file(src_dir / "weights.safetensors", dir.path / "model.safetensors");
    const M m = M::load(dir.path);
    auto s = m.new_state();
    CHECK(m.prefill(few, s).logits == want);
  }
  SUBCASE("three shards named by an index; layer 1 split between two of them") {
    TempDir dir("shards");
    fs::copy_file(src_dir / "config.json", dir.path / "config.json");
    std::vector<std::string> parts[3];
    nlohmann::json index = {{"metadata", nlohmann::json::object()},
                            {"weight_map", nlohmann::json::object()}};
    std::size_t i = 0;
    for (const std::string& n : rc.weights.names()) {
      const std::size_t shard = n.rfind("mtp.", 0) == 0                       ? 2
                                : n.rfind("layers.1.ffn", 0) == 0             ? 1
                                : n.rfind("layers.1.", 0) == 0                ? 0
                                : (n.rfind("layers.", 0) == 0 && n[7] >= '2') ? 1
                                                                              : 0;
      parts[shard].push_back(n);
      index["weight_map"][n] = fmt::format("model-0000{}-of-00003.safetensors", shard + 1);
      ++i;
    }
    for (std::size_t s = 0; s < 3; ++s) {
      write_safetensors(rc.weights, parts[s],
                        dir.path / fmt::format("model-0000{}-of-00003.safetensors", s + 1));
    }
    write_json(index, dir.path / "model.safetensors.index.json");
    const auto ckpt = dsv4::io::Checkpoint::open(dir.path);
    CHECK(ckpt.size() == rc.weights.size());
    const M m = M::load(ckpt);
    auto s = m.new_state();
    CHECK(m.prefill(few, s).logits == want);
  }
  SUBCASE("a config that does not match the weights") {
    TempDir dir("mismatch");
    fs::copy_file(src_dir / "weights.safetensors", dir.path / "weights.safetensors");
    auto cfg = read_json(src_dir / "config.json");
    cfg["n_layers"] = 3;  // the file holds layers.3.*
    cfg["compress_ratios"] = {0, 4, 16, 0};
    write_json(cfg, dir.path / "config.json");
    CHECK_THROWS_WITH_AS(M::load(dir.path), doctest::Contains("tensor 'layers.3."),
                         dsv4::FormatError);
    cfg = read_json(src_dir / "config.json");
    cfg["moe_inter_dim"] = 48;
    write_json(cfg, dir.path / "config.json");
    CHECK_THROWS_WITH_AS(M::load(dir.path),
                         doctest::Contains("expected shape [48, 64], found [32, 64]"),
                         dsv4::FormatError);
    cfg = read_json(src_dir / "config.json");
    cfg["hc_mult"] = 2;
    write_json(cfg, dir.path / "config.json");
    CHECK_THROWS_AS(M::load(dir.path), dsv4::ConfigError);
  }
  SUBCASE("a missing tensor") {
    TempDir dir("missing");
    fs::copy_file(src_dir / "config.json", dir.path / "config.json");
    std::vector<std::string> names;
    for (const auto& n : rc.weights.names()) {
      if (n != "layers.2.ffn.experts.5.w3.weight") names.push_back(n);
    }
    write_safetensors(rc.weights, names, dir.path / "model.safetensors");
    CHECK_THROWS_WITH_AS(M::load(dir.path),
                         doctest::Contains("tensor 'layers.2.ffn.experts.5.w3.weight' is missing"),
                         dsv4::FormatError);
  }
  SUBCASE("not a checkpoint") {
    TempDir dir("empty");
    CHECK_THROWS_WITH_AS(M::load(dir.path), doctest::Contains("no config.json"), dsv4::FormatError);
    fs::copy_file(src_dir / "config.json", dir.path / "config.json");
    CHECK_THROWS_WITH_AS(M::load(dir.path), doctest::Contains("no *.safetensors"),
                         dsv4::FormatError);
  }
}

TEST_CASE("weights with float32 products are views of the checkpoint in its stored format") {
  // tiny_a stores the head and the compressors as F32, wo_a, the indexer's weights_proj and the
  // gates as BF16: each is applied in that format (no float copy is made), its bytes those of
  // the mapped file.
  const dsv4::io::Checkpoint ckpt = checkpoint("tiny_a");
  const auto m = TinyModel<dsv4::ReferenceNumerics>::load(ckpt);
  const auto view_of = [&](const dsv4::AnyLinear& w, const std::string& name, FormatId f,
                           std::size_t first_row = 0) {
    CAPTURE(name);
    CHECK(w.format_id() == f);
    CHECK(w.semantics_name() == "dequant-dot");
    CHECK_FALSE(w.owns_bytes());
    const std::byte* data =
        f == FormatId::f32
            ? reinterpret_cast<const std::byte*>(
                  w.get<dsv4::Linear<dsv4::F32, dsv4::DequantDot>>().blocks().data())
            : reinterpret_cast<const std::byte*>(
                  w.get<dsv4::Linear<dsv4::BF16, dsv4::DequantDot>>().blocks().data());
    const std::size_t elem = f == FormatId::f32 ? 4 : 2;
    CHECK(data == ckpt.bytes(name).data() + first_row * w.in_features() * elem);
  };
  view_of(m.head(), "head.weight", FormatId::f32);
  bool csa = false;
  for (std::size_t l = 0; l < static_cast<std::size_t>(m.config().n_layers); ++l) {
    const auto& w = m.block(l).attention().weights();
    const std::string p = "layers." + std::to_string(l) + ".attn.";
    REQUIRE(w.wo_a.size() == static_cast<std::size_t>(m.config().o_groups));
    for (std::size_t g = 0; g < w.wo_a.size(); ++g)
      view_of(w.wo_a[g], p + "wo_a.weight", FormatId::bf16,
              g * static_cast<std::size_t>(m.config().o_lora_rank));
    if (w.compressor) {
      view_of(w.compressor->wkv, p + "compressor.wkv.weight", FormatId::f32);
      view_of(w.compressor->wgate, p + "compressor.wgate.weight", FormatId::f32);
    }
    if (w.indexer) {
      csa = true;
      view_of(w.indexer->weights_proj, p + "indexer.weights_proj.weight", FormatId::bf16);
      view_of(w.indexer->compressor.wkv, p + "indexer.compressor.wkv.weight", FormatId::f32);
    }
  }
  CHECK(csa);
  const auto moe =
      dsv4::load_moe<dsv4::TopKRouter<dsv4::SqrtSoftplus>>(ckpt, "layers.3.ffn", ckpt.config());
  view_of(moe.router().weight(), "layers.3.ffn.gate.weight", FormatId::bf16);
}

TEST_CASE("the model rejects bad calls") {
  const auto& m = model<dsv4::ReferenceNumerics>("tiny_a");
  auto st = m.new_state();
  CHECK_THROWS_AS(m.prefill(std::vector<std::int32_t>{}, st), dsv4::InputError);
  CHECK_THROWS_WITH_AS(m.prefill(std::vector<std::int32_t>{1, 512}, st),
                       doctest::Contains("token id 512 at position 1"), dsv4::InputError);
  CHECK_THROWS_AS(m.prefill(std::vector<std::int32_t>{-3}, st), dsv4::InputError);
  m.prefill(std::vector<std::int32_t>{1, 2, 3}, st);
  CHECK_THROWS_AS(m.forward(std::vector<std::int32_t>{4}, 5, st), dsv4::InputError);  // gap
  CHECK_NOTHROW(m.forward(std::vector<std::int32_t>{4}, 3, st));
  std::vector<std::int32_t> too_long(static_cast<std::size_t>(m.config().max_seq_len) + 1, 1);
  auto st2 = m.new_state();
  CHECK_THROWS_AS(m.prefill(too_long, st2), dsv4::InputError);
  decltype(st) empty;
  CHECK_THROWS_AS(m.prefill(std::vector<std::int32_t>{1}, empty), dsv4::InputError);
  std::vector<float> h(m.dim() * 3 * 4);
  CHECK_THROWS_AS(m.mtp_forward(h, std::vector<std::int32_t>{1, 2}, 0, st), dsv4::ShapeError);
  CHECK_THROWS_AS(m.mtp_forward(h, std::vector<std::int32_t>{1, 2, 3}, 0, st, 1), dsv4::InputError);
}
