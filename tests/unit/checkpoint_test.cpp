// Checkpoints as users download them (include/dsv4/io/checkpoint.hpp), with the name mapping of
// io/tensor_names.hpp, the FP8/FP4/AnyLinear loaders of io/tensor_load.hpp and the safetensors
// writer (io/safetensors_writer.hpp):
//  * tests/data/reference/tiny_fp8/hf: the tiny release-layout checkpoint (three shards and an
//    index; golden reference data set). Every tensor is the one release_tensors(cfg) lists; each
//    of the 790 tensors the reference runs (its weights.safetensors, recorded as digests in
//    runtime_digests.json) is reproduced bit for bit from the release layout; FP8/FP4 views
//    dequantise to the runtime tensors of linear_weights.safetensors; the layer loaders and the
//    whole model load from it.
//  * a sharded checkpoint written here from a small config: reference and V3-style names, with and
//    without an index (the same logits), and broken in every way a download can break.
//  * opening a checkpoint with a 64 GiB (sparse) shard reads its header only.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/core/numerics.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/checkpoint_layout.hpp>
#include <dsv4/io/safetensors_writer.hpp>
#include <dsv4/io/tensor_names.hpp>
#include <dsv4/model/model.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sha256.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
namespace fs = std::filesystem;
using d::io::Checkpoint;
using dsv4::test::data_path;

using AnyModel = d::ReferenceModel<d::WithLinear<d::AnyLinear>>;

const fs::path kTinyFp8 = data_path("reference/tiny_fp8/hf");

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() / fmt::format("dsv4_checkpoint_test_{}_{}_{}", tag,
                                                   static_cast<long>(::getpid()), ++counter);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

template <class T>
std::string digest(const std::vector<T>& v) {
  return d::test::sha256_hex(std::as_bytes(std::span<const T>(v)));
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---- a checkpoint written by the test ----------------------------------------------------------

/// A small V4 config in reference names: 3 trunk blocks (SWA, CSA, HCA-16; the first hash-routed)
/// and one MTP block, 4 experts, 64-token vocabulary, FP8 projections and FP4 experts.
nlohmann::json small_config() {
  nlohmann::json j = read_json(data_path("configs/tiny_fp8_reference.json"));
  j["n_layers"] = 3;
  j["n_hash_layers"] = 1;
  j["compress_ratios"] = {0, 4, 16, 0};
  j["n_routed_experts"] = 4;
  j["vocab_size"] = 64;
  j["max_seq_len"] = 64;
  j["index_topk"] = 4;
  return j;
}

struct Tensor {
  d::DType dtype = d::DType::F32;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> bytes;
};

/// Deterministic values in [-1, 1).
struct Lcg {
  std::uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<std::int64_t>(s >> 40) - (1 << 23)) / (1 << 23);
  }
};

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
  const auto b = std::as_bytes(std::span<const T>(v));
  return {b.begin(), b.end()};
}

/// Every tensor of the release layout of `cfg` (reference names, release dtypes), seeded values:
/// FP8 weights quantised with Fp8B128::quantize_matrix, experts with Fp4G32::quantize_matrix.
std::map<std::string, Tensor> release_weights(const d::ModelConfig& cfg) {
  std::map<std::string, Tensor> out;
  Lcg rng{42};
  const auto u64 = [](const std::vector<std::int64_t>& s) {
    return std::vector<std::uint64_t>(s.begin(), s.end());
  };
  for (const d::ReleaseTensor& rt : d::release_tensors(cfg)) {
    const std::size_t n = static_cast<std::size_t>(d::detail::elements(rt.shape));
    Tensor t{d::DType::F32, u64(rt.shape), {}};
    switch (rt.dtype) {
      case d::ReleaseDtype::bf16: {
        std::vector<d::bf16> v(n);
        const bool norm = rt.name.find("norm") != std::string::npos;
        const float scale = rt.shape.size() == 2 ? 1.0f / std::sqrt(float(rt.shape[1])) : 0.5f;
        for (auto& x : v) x = d::bf16(norm ? 1.0f + 0.1f * rng.next() : scale * rng.next());
        t.dtype = d::DType::BF16;
        t.bytes = bytes_of(v);
        break;
      }
      case d::ReleaseDtype::f32: {
        std::vector<float> v(n);
        const bool hc_scale = ends_with(rt.name, "_scale");
        const float scale = ends_with(rt.name, "_fn") ? 0.05f : 0.5f;
        for (auto& x : v) x = hc_scale ? 1.0f + 0.25f * rng.next() : scale * rng.next();
        t.bytes = bytes_of(v);
        break;
      }
      case d::ReleaseDtype::fp8_e4m3: {
        const std::size_t rows = t.shape[0], cols = t.shape[1];
        std::vector<float> w(n);
        for (auto& x : w) x = rng.next() / std::sqrt(float(cols));
        std::vector<d::fp8_e4m3> codes(n);
        std::vector<d::ue8m0> scales(d::Fp8B128::scale_rows(rows) * d::Fp8B128::scale_cols(cols));
        d::Fp8B128::quantize_matrix(d::ConstView2<float>(w.data(), rows, cols), codes.data(),
                                    scales.data());
        t.dtype = d::DType::F8_E4M3;
        t.bytes = bytes_of(codes);
        const std::string sname = rt.name.substr(0, rt.name.size() - 6) + "scale";
        out[sname] = Tensor{d::DType::F8_E8M0,
                            {d::Fp8B128::scale_rows(rows), d::Fp8B128::scale_cols(cols)},
                            bytes_of(scales)};
        break;
      }
      case d::ReleaseDtype::fp4_e2m1: {  // stored [rows, cols / 2] bytes
        const std::size_t rows = t.shape[0], cols = 2 * t.shape[1];
        std::vector<float> w(rows * cols);
        for (auto& x : w) x = rng.next() / std::sqrt(float(cols));
        std::vector<std::uint8_t> codes(rows * cols / 2);
        std::vector<d::ue8m0> scales(rows * cols / 32);
        d::Fp4G32::quantize_matrix(d::ConstView2<float>(w.data(), rows, cols), codes.data(),
                                   scales.data());
        t.dtype = d::DType::I8;
        t.bytes = bytes_of(codes);
        const std::string sname = rt.name.substr(0, rt.name.size() - 6) + "scale";
        out[sname] = Tensor{d::DType::F8_E8M0, {rows, cols / 32}, bytes_of(scales)};
        break;
      }
      case d::ReleaseDtype::e8m0:
        continue;  // written with its weight
      case d::ReleaseDtype::i64: {
        std::vector<std::int64_t> v(n);
        const auto k = static_cast<std::size_t>(rt.shape[1]);
        for (std::size_t i = 0; i < n; ++i)
          v[i] = static_cast<std::int64_t>((i / k + i % k) % std::size_t(cfg.n_routed_experts));
        t.dtype = d::DType::I64;
        t.bytes = bytes_of(v);
        break;
      }
    }
    out[rt.name] = std::move(t);
  }
  return out;
}

const std::string kShard[3] = {"model-00001-of-00003.safetensors",
                               "model-00002-of-00003.safetensors",
                               "model-00003-of-00003.safetensors"};

/// The release's split: the embedding and block 0, then the other blocks and the head, then MTP.
int shard_of(const std::string& reference) {
  if (reference.rfind("mtp.", 0) == 0) return 2;
  if (reference == "embed.weight" || reference.rfind("layers.0.", 0) == 0) return 0;
  return 1;
}

struct WriteOptions {
  std::function<std::string(const std::string&)> rename = [](const std::string& n) { return n; };
  bool index = true;
  bool sharded = true;
};

/// Writes config.json, the shards and (optionally) model.safetensors.index.json into `dir`.
void write_checkpoint(const fs::path& dir, const std::map<std::string, Tensor>& tensors,
                      const WriteOptions& o = {}) {
  write_text(dir / "config.json", small_config().dump(2));
  d::io::SafetensorsWriter w[3];
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  std::uint64_t total = 0;
  for (const auto& [name, t] : tensors) {
    const int s = o.sharded ? shard_of(name) : 0;
    const std::string stored = o.rename(name);
    w[s].add(stored, t.dtype, t.shape, t.bytes);
    index["weight_map"][stored] = kShard[s];
    total += t.bytes.size();
  }
  index["metadata"]["total_size"] = total;
  for (int s = 0; s < 3; ++s) {
    w[s].set_metadata("format", "pt");
    if (w[s].size() > 0) w[s].write(dir / (o.sharded ? kShard[s] : "model.safetensors"));
  }
  if (o.index && o.sharded) write_text(dir / "model.safetensors.index.json", index.dump(2));
}

const std::vector<std::int32_t> kTokens = {3, 17, 42, 5, 63, 0, 28, 9};

std::vector<float> prefill_logits(const Checkpoint& ckpt) {
  const AnyModel m = AnyModel::load(ckpt);
  auto st = m.new_state();
  return m.prefill(kTokens, st).logits;
}

/// Resident memory of this process.
std::uint64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

// ---- the tiny release checkpoint ---------------------------------------------------------------

TEST_CASE("tiny_fp8 release layout: index, shards and every tensor as release_tensors lists it") {
  const Checkpoint ckpt = Checkpoint::open(kTinyFp8);
  const d::ModelConfig& cfg = ckpt.config();
  CHECK(cfg.dtype == d::WeightDtype::fp8);
  CHECK(cfg.expert_dtype == d::WeightDtype::fp4);
  REQUIRE(ckpt.index().has_value());
  CHECK(ckpt.index()->total_size == std::optional<std::uint64_t>(6421978));
  CHECK(ckpt.total_bytes() == 6421978);
  REQUIRE(ckpt.shards().size() == 3);
  CHECK(ckpt.shards()[2].filename() == "model-00003-of-00003.safetensors");

  const auto release = d::release_tensors(cfg);
  CHECK(release.size() == 796);
  CHECK(ckpt.size() == release.size());
  CHECK(ckpt.tensors().size() == release.size());
  for (const d::ReleaseTensor& rt : release) {
    CAPTURE(rt.name);
    REQUIRE(ckpt.has(rt.name));
    const d::io::TensorInfo& ti = ckpt.info(rt.name);
    CHECK(d::dtype_name(ti.dtype) == d::release_dtype_name(rt.dtype));
    CHECK(std::vector<std::int64_t>(ti.shape.begin(), ti.shape.end()) == rt.shape);
    CHECK(static_cast<std::int64_t>(ti.bytes.size()) == rt.bytes);
    CHECK(ckpt.stored(rt.name).name == rt.name);  // the release stores reference names
    const std::size_t want_shard = rt.name.rfind("mtp.", 0) == 0 ? 2
                                   : rt.layer >= 3 || (rt.layer < 0 && rt.name != "embed.weight")
                                       ? 1
                                       : 0;
    CHECK(ckpt.stored(rt.name).shard == want_shard);
  }
}

TEST_CASE("tensor names: convert.py's renames, both ways") {
  using d::io::legacy_name;
  using d::io::reference_name;
  const Checkpoint ckpt = Checkpoint::open(kTinyFp8);
  std::size_t renamed = 0;
  for (const d::ReleaseTensor& rt : d::release_tensors(ckpt.config())) {
    CAPTURE(rt.name);
    CHECK(reference_name(rt.name) == rt.name);  // the release's names are the reference's
    const std::string legacy = legacy_name(rt.name);
    CHECK(reference_name(legacy) == rt.name);
    renamed += legacy != "model." + rt.name ? 1 : 0;
  }
  CHECK(renamed > 500);  // experts, attention, norms, scales, gate bias all change spelling

  CHECK(reference_name("model.layers.0.self_attn.q_a_proj.weight_scale_inv") ==
        "layers.0.attn.wq_a.scale");
  CHECK(reference_name("model.layers.3.mlp.gate.e_score_correction_bias") ==
        "layers.3.ffn.gate.bias");
  CHECK(reference_name("model.layers.3.mlp.experts.7.down_proj.weight") ==
        "layers.3.ffn.experts.7.w2.weight");
  CHECK(reference_name("model.layers.1.mlp.shared_experts.up_proj.weight_scale_inv") ==
        "layers.1.ffn.shared_experts.w3.scale");
  CHECK(reference_name("model.layers.2.input_layernorm.weight") == "layers.2.attn_norm.weight");
  CHECK(reference_name("model.layers.2.post_attention_layernorm.weight") ==
        "layers.2.ffn_norm.weight");
  CHECK(reference_name("model.layers.0.self_attn.kv_a_layernorm.weight") ==
        "layers.0.attn.kv_norm.weight");
  CHECK(reference_name("model.layers.0.self_attn.q_a_layernorm.weight") ==
        "layers.0.attn.q_norm.weight");
  CHECK(reference_name("model.layers.2.self_attn.indexer.q_b_proj.weight") ==
        "layers.2.attn.indexer.wq_b.weight");
  CHECK(reference_name("model.embed_tokens.weight") == "embed.weight");
  CHECK(reference_name("lm_head.weight") == "head.weight");
  CHECK(reference_name("model.norm.weight") == "norm.weight");
  CHECK(reference_name("model.layers.0.hc_attn_fn") == "layers.0.hc_attn_fn");
  CHECK(reference_name("layers.1.attn.compressor.ape") == "layers.1.attn.compressor.ape");
  CHECK(reference_name("model.layers.0.mlp.gate.tid2eid") == "layers.0.ffn.gate.tid2eid");
  // MTP-local copies of the shared embedding and head are dropped, as convert.py drops them.
  CHECK_FALSE(reference_name("mtp.0.embed.weight").has_value());
  CHECK_FALSE(reference_name("model.mtp.0.embed_tokens.weight").has_value());
  CHECK_FALSE(reference_name("mtp.0.head.weight").has_value());
  CHECK(reference_name("mtp.0.hc_head_fn") == "mtp.0.hc_head_fn");

  CHECK(legacy_name("layers.0.attn.wq_a.scale") ==
        "model.layers.0.self_attn.q_a_proj.weight_scale_inv");
  CHECK(legacy_name("layers.4.ffn.gate.bias") == "model.layers.4.mlp.gate.e_score_correction_bias");
  CHECK(legacy_name("head.weight") == "lm_head.weight");
  CHECK(legacy_name("embed.weight") == "model.embed_tokens.weight");
}

TEST_CASE("tiny_fp8: the release layout gives every runtime tensor of the reference, bit for bit") {
  // runtime_digests.json: the SHA-256 of each tensor of the reference's weights.safetensors (the
  // module's state after convert.py). FP8/FP4 codes and scales are read through zero-copy Linear
  // views, wo_a through its FP8 dequantisation, the rest widened or narrowed to the runtime dtype.
  const Checkpoint ckpt = Checkpoint::open(kTinyFp8);
  const nlohmann::json digests = read_json(kTinyFp8.parent_path() / "runtime_digests.json");
  CHECK(digests.size() == 790);
  std::size_t checked = 0;
  for (const auto& [name, entry] : digests.items()) {
    CAPTURE(name);
    const std::string dtype = entry[0].get<std::string>();
    const auto shape = entry[1].get<std::vector<std::uint64_t>>();
    const std::string want = entry[2].get<std::string>();
    REQUIRE(ckpt.has(name));
    std::string got;
    if (ends_with(name, "attn.wo_a.weight")) {
      REQUIRE(dtype == "BF16");
      got = digest(d::load_wo_a(ckpt, name, shape[0], shape[1]));
    } else if (dtype == "F8_E4M3") {
      const auto l = d::io::load_linear<d::Linear<d::Fp8B128>>(ckpt, name, shape[0], shape[1]);
      got = d::test::sha256_hex(std::as_bytes(l.codes()));
      const std::string sname = name.substr(0, name.size() - 6) + "scale";
      CHECK(d::test::sha256_hex(std::as_bytes(l.scales())) == digests[sname][2].get<std::string>());
    } else if (dtype == "F4") {
      const auto l = d::io::load_linear<d::Linear<d::Fp4G32>>(ckpt, name, shape[0], shape[1]);
      got = d::test::sha256_hex(std::as_bytes(l.codes()));
      const std::string sname = name.substr(0, name.size() - 6) + "scale";
      CHECK(d::test::sha256_hex(std::as_bytes(l.scales())) == digests[sname][2].get<std::string>());
    } else if (dtype == "F8_E8M0") {
      got = d::test::sha256_hex(ckpt.bytes(name));
    } else if (dtype == "BF16") {
      got = digest(d::io::load_bf16(ckpt, name, {shape[0], shape[1]}));
    } else if (dtype == "F32") {
      got = digest(ckpt.to_float(name));
      CHECK(ckpt.info(name).shape == shape);
    } else {
      REQUIRE(dtype == "I32");
      got = digest(d::io::load_index(ckpt, name, {shape[0], shape[1]}));
    }
    CHECK(got == want);
    ++checked;
  }
  CHECK(checked == 790);
  // The six release tensors the runtime does not hold: the wo_a scales convert.py folds.
  std::vector<std::string> extra;
  for (const std::string& n : ckpt.names()) {
    if (!digests.contains(n)) extra.push_back(n);
  }
  CHECK(extra.size() == 6);
  for (const auto& n : extra) CHECK(ends_with(n, "attn.wo_a.scale"));
}

TEST_CASE("tiny_fp8: FP8/FP4 views of the shards dequantise to the reference's runtime values") {
  const d::io::SafetensorsFile runtime(data_path("reference/tiny_fp8/linear_weights.safetensors"));
  std::optional<d::Linear<d::Fp8B128>> wkv;
  std::optional<d::Linear<d::Fp4G32>> w1;
  const std::byte* mapped = nullptr;
  {
    const Checkpoint ckpt = Checkpoint::open(kTinyFp8);
    wkv = d::io::load_linear<d::Linear<d::Fp8B128>>(ckpt, "layers.0.attn.wkv.weight", 192, 128);
    w1 = d::io::load_linear<d::Linear<d::Fp4G32>>(ckpt, "layers.0.ffn.experts.0.w1.weight", 128,
                                                  128);
    // Zero-copy: the Linear reads the mapped shard.
    mapped = ckpt.bytes("layers.0.attn.wkv.weight").data();
    CHECK(static_cast<const void*>(wkv->codes().data()) == static_cast<const void*>(mapped));
    CHECK(static_cast<const void*>(w1->codes().data()) ==
          static_cast<const void*>(ckpt.bytes("layers.0.ffn.experts.0.w1.weight").data()));
    CHECK_FALSE(wkv->owns_bytes());
  }
  // The checkpoint is gone; the views keep their shard mapped.
  const auto want_wkv = runtime.to_float("layers.0.attn.wkv.weight");
  const auto want_wkv_s = runtime.to_float("layers.0.attn.wkv.scale");
  std::vector<float> row(128);
  std::size_t mismatches = 0;
  for (std::size_t r = 0; r < 192; ++r) {
    wkv->dequantize_row(r, row.data());
    for (std::size_t c = 0; c < 128; ++c) {
      mismatches += row[c] != want_wkv[r * 128 + c] * want_wkv_s[(r / 128) * 1 + c / 128] ? 1 : 0;
    }
  }
  CHECK(mismatches == 0);
  const auto codes = runtime.to_float("layers.0.ffn.experts.0.w1.weight");  // F4 codes' values
  const auto scales = runtime.to_float("layers.0.ffn.experts.0.w1.scale");  // [128, 4]
  for (std::size_t r = 0; r < 128; ++r) {
    w1->dequantize_row(r, row.data());
    for (std::size_t c = 0; c < 128; ++c) {
      mismatches += row[c] != codes[r * 128 + c] * scales[r * 4 + c / 32] ? 1 : 0;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("tiny_fp8: AnyLinear picks the format from the dtype, layers and model load directly") {
  const Checkpoint ckpt = Checkpoint::open(kTinyFp8);
  const d::ModelConfig& cfg = ckpt.config();
  using d::io::load_linear;
  const auto q = load_linear<d::AnyLinear>(ckpt, "layers.0.attn.wq_a.weight", 128, 128);
  CHECK(q.format_id() == d::FormatId::fp8_b128);
  CHECK(q.semantics_name() == "partner-dot");
  const auto e = load_linear<d::AnyLinear>(ckpt, "layers.3.ffn.experts.5.w2.weight", 128, 128);
  CHECK(e.format_id() == d::FormatId::fp4_g32);
  const auto p =
      load_linear<d::AnyLinear>(ckpt, "layers.2.attn.indexer.weights_proj.weight", 16, 128);
  CHECK(p.format_id() == d::FormatId::bf16);
  CHECK(p.semantics_name() == "dequant-dot");
  // Same outputs as the dense path for bf16, as Linear<Fp8B128> for FP8.
  std::vector<float> x(3 * 128);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
  std::vector<float> y1(3 * 16), y2(3 * 16);
  p.forward<d::ReferenceNumerics>(d::ConstView2<float>(x.data(), 3, 128),
                                  d::View2<float>(y1.data(), 3, 16));
  load_linear<d::DenseLinear<d::bf16>>(ckpt, "layers.2.attn.indexer.weights_proj.weight", 16, 128)
      .forward<d::ReferenceNumerics>(d::ConstView2<float>(x.data(), 3, 128),
                                     d::View2<float>(y2.data(), 3, 16));
  CHECK(y1 == y2);

  // The layers' own loaders take the checkpoint as a TensorSource.
  const auto attn = d::load_attention_weights<d::AnyLinear>(ckpt, "layers.2.attn.", cfg, 2);
  CHECK(attn.wq_b.format_id() == d::FormatId::fp8_b128);
  REQUIRE(attn.indexer.has_value());
  CHECK(attn.indexer->wq_b.format_id() == d::FormatId::fp8_b128);
  CHECK(attn.wo_a.size() == 2);  // wo_a: FP8 in the release, bf16 groups at run time
  const auto moe =
      d::load_moe<d::TopKRouter<d::SqrtSoftplus>, d::AnyLinear>(ckpt, "layers.3.ffn", cfg);
  CHECK(moe.n_experts() == 16);
  CHECK(moe.expert(15).w3().format_id() == d::FormatId::fp4_g32);
  REQUIRE(moe.shared_expert().has_value());
  CHECK(moe.shared_expert()->w2().format_id() == d::FormatId::fp8_b128);

  // The whole model, straight from the release layout.
  const AnyModel m = AnyModel::load(ckpt);
  auto st = m.new_state();
  const std::vector<std::int32_t> tokens = {72, 489, 20, 92, 291, 408, 248, 357};
  const auto out = m.prefill(tokens, st);
  REQUIRE(out.logits.size() == tokens.size() * 512);
  for (float v : out.logits) REQUIRE(std::isfinite(v));
}

// ---- a checkpoint written here -----------------------------------------------------------------

TEST_CASE("a sharded checkpoint written from a small config: opened, listed, loaded") {
  const d::ModelConfig cfg = d::parse_config(small_config());
  const auto tensors = release_weights(cfg);
  TempDir dir("sharded");
  write_checkpoint(dir.path, tensors);

  const Checkpoint ckpt = Checkpoint::open(dir.path);
  CHECK(ckpt.shards().size() == 3);
  REQUIRE(ckpt.size() == tensors.size());
  std::uint64_t total = 0;
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    REQUIRE(ckpt.has(name));
    CHECK(ckpt.info(name).dtype == t.dtype);
    CHECK(ckpt.info(name).shape == t.shape);
    CHECK(std::equal(t.bytes.begin(), t.bytes.end(), ckpt.bytes(name).begin(),
                     ckpt.bytes(name).end()));
    CHECK(ckpt.stored(name).shard == static_cast<std::size_t>(shard_of(name)));
    total += t.bytes.size();
  }
  CHECK(ckpt.total_bytes() == total);
  CHECK(ckpt.index()->total_size == std::optional<std::uint64_t>(total));
  // The writer aligns every tensor to its element size (F32 and I64 views need no copy).
  for (const auto& t : ckpt.tensors()) {
    CAPTURE(t.name);
    const std::size_t align = std::max<std::size_t>(1, d::dtype_bits(t.info->dtype) / 8);
    CHECK(reinterpret_cast<std::uintptr_t>(t.info->bytes.data()) % align == 0);
  }
  const auto logits = prefill_logits(ckpt);
  REQUIRE(logits.size() == kTokens.size() * 64);
  for (float v : logits) REQUIRE(std::isfinite(v));

  SUBCASE("V3-style names (model. prefix, self_attn/mlp, *_proj, weight_scale_inv, ...)") {
    TempDir legacy("legacy");
    WriteOptions o;
    o.rename = [](const std::string& n) { return d::io::legacy_name(n); };
    write_checkpoint(legacy.path, tensors, o);
    const Checkpoint l = Checkpoint::open(legacy.path);
    CHECK(l.names() == ckpt.names());
    CHECK(l.stored("layers.1.attn.wq_a.scale").name ==
          "model.layers.1.self_attn.q_a_proj.weight_scale_inv");
    CHECK(prefill_logits(l) == logits);
  }
  SUBCASE("one file, no index") {
    TempDir single("single");
    WriteOptions o;
    o.sharded = false;
    write_checkpoint(single.path, tensors, o);
    const Checkpoint s = Checkpoint::open(single.path);
    CHECK_FALSE(s.index().has_value());
    CHECK(s.shards().size() == 1);
    CHECK(prefill_logits(s) == logits);
  }
  SUBCASE("shards without an index") {
    fs::remove(dir.path / "model.safetensors.index.json");
    const Checkpoint s = Checkpoint::open(dir.path);
    CHECK(s.shards().size() == 3);
    CHECK(prefill_logits(s) == logits);
  }
  SUBCASE("MTP-local copies of embed/head are stored but dropped, as convert.py drops them") {
    TempDir extra("mtp_copies");
    auto more = tensors;
    more["mtp.0.embed.weight"] = tensors.at("embed.weight");
    more["mtp.0.head.weight"] = tensors.at("head.weight");
    write_checkpoint(extra.path, more);
    const Checkpoint c = Checkpoint::open(extra.path);
    CHECK(c.tensors().size() == tensors.size() + 2);
    CHECK(c.size() == tensors.size());
    CHECK_FALSE(c.has("mtp.0.embed.weight"));
    CHECK(prefill_logits(c) == logits);
  }
  SUBCASE("views outlive the checkpoint object") {
    std::optional<d::Linear<d::Fp8B128>> wq_a;
    {
      const Checkpoint c = Checkpoint::open(dir.path);
      wq_a = d::io::load_linear<d::Linear<d::Fp8B128>>(c, "layers.1.attn.wq_a.weight", 128, 128);
    }
    const Tensor& codes = tensors.at("layers.1.attn.wq_a.weight");
    CHECK(std::memcmp(wq_a->codes().data(), codes.bytes.data(), codes.bytes.size()) == 0);
  }
}

TEST_CASE("linear loaders: FP8 / FP4 storage variants and clear errors") {
  const d::ModelConfig cfg = d::parse_config(small_config());
  const auto tensors = release_weights(cfg);
  const Tensor& w = tensors.at("layers.0.attn.wq_a.weight");
  const Tensor& s = tensors.at("layers.0.attn.wq_a.scale");
  const Tensor& e = tensors.at("layers.0.ffn.experts.1.w2.weight");  // I8 [128, 64]
  const Tensor& es = tensors.at("layers.0.ffn.experts.1.w2.scale");
  d::io::SafetensorsWriter wr;
  wr.add("fp8.weight", w.dtype, w.shape, w.bytes);
  wr.add("fp8.scale", s.dtype, s.shape, s.bytes);
  // F32 scales (powers of two) convert into an owned copy.
  std::vector<float> s32;
  for (std::byte b : s.bytes)
    s32.push_back(d::ue8m0::from_bits(std::to_integer<std::uint8_t>(b)).to_float());
  wr.add("fp8f.weight", w.dtype, w.shape, w.bytes);
  wr.add<float>("fp8f.scale", s.shape, s32);
  std::vector<float> bad = s32;
  bad[0] = 3.0f;
  wr.add("fp8bad.weight", w.dtype, w.shape, w.bytes);
  wr.add<float>("fp8bad.scale", s.shape, bad);
  wr.add("noscale.weight", w.dtype, w.shape, w.bytes);
  wr.add("fp4.weight", e.dtype, e.shape, e.bytes);
  wr.add("fp4.scale", es.dtype, es.shape, es.bytes);
  wr.add("f4.weight", d::DType::F4, {128, 128}, e.bytes);  // the converted file's dtype
  wr.add("f4.scale", es.dtype, es.shape, es.bytes);
  const Tensor& gate = tensors.at("layers.0.ffn.gate.weight");  // BF16 [4, 128]
  wr.add("bf16.weight", gate.dtype, gate.shape, gate.bytes);
  wr.add("ids.weight", d::DType::I64, {4, 16}, std::vector<std::byte>(4 * 16 * 8));
  // Checkpoint::open refuses a config its tensors cannot hold (at least 1.5 bits per weight of
  // the model config.json describes: 150,528 bytes here); this loader test holds a few tensors,
  // so a filler tensor makes up the bytes.
  wr.add("filler.weight", d::DType::I8, {131072}, std::vector<std::byte>(131072));
  TempDir dir("loaders");
  write_text(dir.path / "config.json", small_config().dump());
  wr.write(dir.path / "model.safetensors");
  const Checkpoint c = Checkpoint::open(dir.path);
  using d::io::load_linear;

  const auto a = load_linear<d::Linear<d::Fp8B128>>(c, "fp8.weight", 128, 128);
  const auto b = load_linear<d::Linear<d::Fp8B128>>(c, "fp8f.weight", 128, 128);
  std::vector<float> ra(128), rb(128);
  for (std::size_t r = 0; r < 128; ++r) {
    a.dequantize_row(r, ra.data());
    b.dequantize_row(r, rb.data());
    REQUIRE(ra == rb);
  }
  const auto i8 = load_linear<d::Linear<d::Fp4G32>>(c, "fp4.weight", 128, 128);
  const auto f4 = load_linear<d::Linear<d::Fp4G32>>(c, "f4.weight", 128, 128);
  for (std::size_t r = 0; r < 128; ++r) {
    i8.dequantize_row(r, ra.data());
    f4.dequantize_row(r, rb.data());
    REQUIRE(ra == rb);
  }
  CHECK(load_linear<d::AnyLinear>(c, "f4.weight", 128, 128).format_id() == d::FormatId::fp4_g32);
  // BF16 weights: Linear<BF16> views them, Linear<F32> widens them exactly.
  const auto lb = load_linear<d::Linear<d::BF16, d::DequantDot>>(c, "bf16.weight", 4, 128);
  CHECK(static_cast<const void*>(lb.blocks().data()) ==
        static_cast<const void*>(c.bytes("bf16.weight").data()));
  const auto lf = load_linear<d::Linear<d::F32, d::DequantDot>>(c, "bf16.weight", 4, 128);
  lb.dequantize_row(3, ra.data());
  lf.dequantize_row(3, rb.data());
  CHECK(ra == rb);

  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::Fp8B128>>(c, "fp8bad.weight", 128, 128),
                       doctest::Contains("'fp8bad.scale': element 0 = 3 is not a power of two"),
                       d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::Fp8B128>>(c, "noscale.weight", 128, 128),
                       doctest::Contains("scales 'noscale.scale' (shape [1, 1]) are missing"),
                       d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::Fp8B128>>(c, "bf16.weight", 4, 128),
                       doctest::Contains("needs F8_E4M3 codes, found BF16"), d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::Fp4G32>>(c, "fp8.weight", 128, 128),
                       doctest::Contains("needs packed E2M1 codes"), d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::Fp8B128>>(c, "fp8.weight", 256, 128),
                       doctest::Contains("expected shape [256, 128], found [128, 128]"),
                       d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::Linear<d::BF16>>(c, "fp8.weight", 128, 128),
                       doctest::Contains("needs a plain floating tensor, found F8_E4M3"),
                       d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::AnyLinear>(c, "ids.weight", 4, 16),
                       doctest::Contains("dtype I64 is not a weight format"), d::FormatError);
  CHECK_THROWS_WITH_AS(load_linear<d::AnyLinear>(c, "nothing.weight", 4, 16),
                       doctest::Contains("'nothing.weight' is missing"), d::FormatError);
  using Fp8Only = d::AnyLinearOf<d::type_list<d::Linear<d::Fp8B128>>>;
  CHECK_THROWS_WITH_AS(load_linear<Fp8Only>(c, "fp4.weight", 128, 128),
                       doctest::Contains("this AnyLinearOf does not list it"), d::FormatError);
}

TEST_CASE("broken checkpoints are refused with errors naming the file and the tensor") {
  const d::ModelConfig cfg = d::parse_config(small_config());
  const auto tensors = release_weights(cfg);
  TempDir dir("broken");
  write_checkpoint(dir.path, tensors);
  const fs::path index_path = dir.path / "model.safetensors.index.json";
  const nlohmann::json index = read_json(index_path);
  const auto open = [&] { return Checkpoint::open(dir.path); };
  const auto rewrite_index = [&](const nlohmann::json& j) { write_text(index_path, j.dump(2)); };

  SUBCASE("missing shard") {
    fs::remove(dir.path / kShard[1]);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("shard 'model-00002-of-00003.safetensors'"),
                         d::FormatError);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("does not exist"), d::FormatError);
  }
  SUBCASE("a shard name too long for the file system") {
    auto j = index;
    const std::string name = std::string(300, 'x') + ".safetensors";
    j["weight_map"][j["weight_map"].begin().key()] = name;
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("cannot be examined"), d::FormatError);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("File name too long"), d::FormatError);
  }
  SUBCASE("wrong total_size") {
    auto j = index;
    j["metadata"]["total_size"] = j["metadata"]["total_size"].get<std::uint64_t>() + 1;
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(
        open(),
        doctest::Contains(
            fmt::format("metadata.total_size is {} but the shards' tensors hold {} bytes",
                        j["metadata"]["total_size"].get<std::uint64_t>(),
                        index["metadata"]["total_size"].get<std::uint64_t>())
                .c_str()),
        d::FormatError);
    j["metadata"]["total_size"] = "many";
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("total_size must be a non-negative integer"),
                         d::FormatError);
  }
  SUBCASE("tensor listed in the wrong shard") {
    auto j = index;
    j["weight_map"]["layers.1.attn.wq_a.weight"] = kShard[2];
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(open(),
                         doctest::Contains("tensor 'layers.1.attn.wq_a.weight' is listed in shard "
                                           "model-00003-of-00003.safetensors but is stored in"),
                         d::FormatError);
  }
  SUBCASE("tensor listed but stored nowhere") {
    auto j = index;
    j["weight_map"]["layers.7.attn.wq_a.weight"] = kShard[0];
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(open(),
                         doctest::Contains("'layers.7.attn.wq_a.weight' is listed in shard"),
                         d::FormatError);
  }
  SUBCASE("tensor stored but not listed") {
    auto j = index;
    j["weight_map"].erase("norm.weight");
    rewrite_index(j);
    CHECK_THROWS_WITH_AS(
        open(), doctest::Contains("holds tensor 'norm.weight', which the index does not list"),
        d::FormatError);
  }
  SUBCASE("a tensor listed twice") {
    std::string text = index.dump();
    const std::string key = "\"weight_map\":{";
    text.insert(text.find(key) + key.size(), "\"norm.weight\":\"" + kShard[1] + "\",");
    write_text(index_path, text);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("lists tensor 'norm.weight' more than once"),
                         d::FormatError);
  }
  SUBCASE("a tensor in two shards") {
    d::io::SafetensorsWriter w;
    for (const auto& [name, t] : tensors) {
      if (shard_of(name) == 0 || name == "norm.weight") w.add(name, t.dtype, t.shape, t.bytes);
    }
    w.write(dir.path / kShard[0]);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("tensor 'norm.weight' is in both"),
                         d::FormatError);
  }
  SUBCASE("truncated shard") {
    const fs::path p = dir.path / kShard[1];
    fs::resize_file(p, fs::file_size(p) - 1);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains(kShard[1].c_str()), d::FormatError);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("data_offsets"), d::FormatError);
    fs::resize_file(p, 5);
    CHECK_THROWS_WITH_AS(open(), doctest::Contains(kShard[1].c_str()), d::FormatError);
  }
  SUBCASE("bad JSON") {
    write_text(index_path, index.dump().substr(0, 100));
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("model.safetensors.index.json: not valid JSON"),
                         d::FormatError);
    write_text(index_path, "[1, 2]");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("expected a JSON object"), d::FormatError);
    write_text(index_path, R"({"metadata": {}, "weight_map": ["a"]})");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("expected a \"weight_map\" object"),
                         d::FormatError);
    write_text(index_path, R"({"weight_map": {"embed.weight": 3}})");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("weight_map['embed.weight'] must be a shard"),
                         d::FormatError);
    write_text(index_path, R"({"weight_map": {"embed.weight": "../model.safetensors"}})");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("is not a plain file name"), d::FormatError);
    write_text(index_path, std::string(100000, '[') + std::string(100000, ']'));
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("nested deeper than"), d::FormatError);
    write_text(index_path, R"({"weight_map": {}})");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("weight_map is empty"), d::FormatError);
  }
  SUBCASE("two spellings of one tensor") {
    fs::remove(index_path);
    d::io::SafetensorsWriter w;
    const Tensor& t = tensors.at("embed.weight");
    w.add("model.embed_tokens.weight", t.dtype, t.shape, t.bytes);
    w.write(dir.path / "extra.safetensors");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("are both the reference's 'embed.weight'"),
                         d::FormatError);
  }
  SUBCASE("no config, no shards, not a directory") {
    fs::remove(dir.path / "config.json");
    CHECK_THROWS_WITH_AS(open(), doctest::Contains("no config.json"), d::FormatError);
    TempDir empty("empty");
    write_text(empty.path / "config.json", small_config().dump());
    CHECK_THROWS_WITH_AS(Checkpoint::open(empty.path), doctest::Contains("no *.safetensors files"),
                         d::FormatError);
    CHECK_THROWS_WITH_AS(Checkpoint::open(empty.path / "config.json"),
                         doctest::Contains("not a directory"), d::FormatError);
  }
  SUBCASE("a config the reference would refuse") {
    auto j = small_config();
    j["o_groups"] = 3;
    write_text(dir.path / "config.json", j.dump());
    CHECK_THROWS_AS(open(), d::ConfigError);
  }
}

TEST_CASE("opening reads the headers only: a 64 GiB shard costs no memory") {
  TempDir dir("sparse");
  write_text(dir.path / "config.json", small_config().dump());
  constexpr std::uint64_t kBytes = std::uint64_t{64} << 30;
  std::string header =
      nlohmann::json{
          {"blob", {{"dtype", "U8"}, {"shape", {kBytes}}, {"data_offsets", {0, kBytes}}}}}
          .dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  {
    std::ofstream out(dir.path / "model.safetensors", std::ios::binary);
    const std::uint64_t len = header.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << header;
  }
  std::error_code ec;
  fs::resize_file(dir.path / "model.safetensors", 8 + header.size() + kBytes, ec);
  if (ec) {
    MESSAGE("no sparse file of 64 GiB here (" << ec.message() << "); skipped");
    return;
  }
  const std::uint64_t before = resident_bytes();
  const Checkpoint c = Checkpoint::open(dir.path);
  const std::uint64_t after = resident_bytes();
  REQUIRE(c.bytes("blob").size() == kBytes);
  CHECK(c.total_bytes() == kBytes);
  CHECK(after - std::min(after, before) < (std::uint64_t{32} << 20));
  CHECK(c.bytes("blob")[kBytes - 1] == std::byte{0});  // the last page is readable
}

TEST_CASE("safetensors writer: round trip, alignment, metadata and refusals") {
  d::io::SafetensorsWriter w;
  const std::vector<std::uint8_t> u8 = {1, 2, 3};
  const std::vector<double> f64 = {0.5, -2.0};
  const std::vector<d::bf16> b16 = {d::bf16(1.5f), d::bf16(-3.0f), d::bf16(0.25f)};
  w.add<std::uint8_t>("c", {3}, u8);
  w.add<d::bf16>("b", {1, 3}, b16);
  w.add<double>("a", {2}, f64);
  w.add("f4", d::DType::F4, {2, 2}, std::vector<std::byte>{std::byte{0x21}, std::byte{0xF7}});
  w.set_metadata("format", "pt");
  CHECK(w.size() == 4);
  CHECK(w.data_bytes() == 3 + 6 + 16 + 2);
  const auto bytes = w.bytes();
  const d::io::SafetensorsFile f(bytes, "written");
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.to_float("a") == std::vector<float>{0.5f, -2.0f});
  CHECK(f.to_float("b") == std::vector<float>{1.5f, -3.0f, 0.25f});
  CHECK(f.info("c").bytes[2] == std::byte{3});
  CHECK(f.to_float("f4") == std::vector<float>{0.5f, 1.0f, 6.0f, -6.0f});
  for (const std::string& n : f.names()) {
    const auto& ti = f.info(n);
    const std::size_t align = ti.dtype == d::DType::F4 ? 1 : d::dtype_bits(ti.dtype) / 8;
    CHECK((ti.bytes.data() - bytes.data()) % static_cast<std::ptrdiff_t>(align) == 0);
  }
  TempDir dir("writer");
  w.write(dir.path / "x.safetensors");
  CHECK(fs::file_size(dir.path / "x.safetensors") == bytes.size());

  CHECK_THROWS_AS(w.add<std::uint8_t>("c", {3}, u8), d::InputError);
  CHECK_THROWS_AS(w.add<std::uint8_t>("__metadata__", {3}, u8), d::InputError);
  CHECK_THROWS_WITH_AS(w.add<std::uint8_t>("d", {4}, u8),
                       doctest::Contains("dtype U8 with shape [4] needs 4 bytes, got 3"),
                       d::ShapeError);
  CHECK_THROWS_AS(w.add("g", d::DType::F4, {3}, std::vector<std::byte>(2)), d::ShapeError);
  CHECK_THROWS_AS(w.write(dir.path / "missing" / "x.safetensors"), d::Error);
}

TEST_CASE("tensor names: joined from the one table, as the release spells them") {
  namespace n = d::tensor_names;
  CHECK(n::join("layers.3", n::attn, n::wq_a) == "layers.3.attn.wq_a.weight");
  CHECK(n::join(n::mtp, "0", n::ffn, n::experts, "7", n::w2) == "mtp.0.ffn.experts.7.w2.weight");
  CHECK(n::cat(n::hc_attn, n::hc_fn) == "hc_attn_fn");
  CHECK(n::scale_of("layers.0.attn.wo_a.weight") == "layers.0.attn.wo_a.scale");
  CHECK(n::scale_of("odd") == "odd.scale");
  // every tensor the layout lists for the tiny release is in the release's files
  const auto ckpt = d::io::Checkpoint::open(kTinyFp8);
  std::size_t listed = 0;
  for (const auto& t : d::release_tensors(ckpt.config())) listed += ckpt.has(t.name) ? 1 : 0;
  CHECK(listed == d::release_tensors(ckpt.config()).size());
}
