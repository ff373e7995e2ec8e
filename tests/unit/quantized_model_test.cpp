// The model with its projections quantized in memory (include/dsv4/model/quantized_load.hpp):
// weight plans (one format, llama-quantize's recipes, the release's FP8+FP4 split) and their
// fallbacks, the recipe plan against llama-quantize's own choices for llama.cpp's tiny model, a
// recipe over all tensors against the GGUF file `dsv4 quantize` makes (the same logits bit for
// bit), and prefill logits against the unquantized model.
//
// The logit comparisons run on tiny256 (model/random_checkpoint.hpp: a random-weight tiny V4 whose
// projection widths are all multiples of 256, so every format applies to every projection), with
// fp32 activations and no FP8/FP4 activation simulation, one prompt of 32 seeded tokens; the
// reference is the same model with unquantized weights. This file checks a ladder of formats
// and the mixes; quantized_model_slow_test.cpp checks every format with both semantics on more
// tokens, bench/quant_quality.cpp prints that table and docs/quantization.md explains it. The
// bounds are the measured values with headroom: mean and rel-L2 about 1.5x, top-1 a few rows,
// max |Δ| more, because the max comes from discrete flips of an expert or indexer top-k selection
// (a slightly different fp32 rounding elsewhere could add or remove one). Data:
// tests/data/reference/tiny_a (the golden reference weights, quantized with the recipes'
// fallbacks), tests/data/llamacpp/listings and tests/data/llamacpp/models/dsv4-tiny-f32.gguf.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/model/model.hpp>
#include <dsv4/model/quantized_load.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "quantized_model_common.hpp"
#include "reference_data.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
namespace fs = std::filesystem;
using d::DotSemantics;
using d::FormatId;
using d::test::check_within;
using d::test::LogitBound;
using d::test::QModel;

/// One prompt of 32 tokens, once per process.
const d::test::Tiny256& tiny256() {
  static const d::test::Tiny256 t(1, 32);
  return t;
}

// ---- llama.cpp listings (tests/data/llamacpp/listings): tensor name -> type -------------------

std::map<std::string, std::string> listing_types(const std::string& file) {
  const auto path = d::test::data_path("llamacpp/listings/" + file);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::map<std::string, std::string> out;
  bool tensors = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("## tensors", 0) == 0) {
      tensors = true;
      continue;
    }
    if (!tensors || line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, ne, type;
    std::getline(fields, name, '\t');
    std::getline(fields, ne, '\t');
    std::getline(fields, type, '\t');
    out[name] = type;
  }
  return out;
}

/// llama.cpp's tiny test model (the listings' metadata): dim 256 but q_lora_rank 64, expert
/// width 32, so its recipes fall back on several projections.
d::ModelConfig llamacpp_tiny() {
  d::ModelConfig c;
  c.vocab_size = 512;
  c.dim = 256;
  c.n_layers = 5;
  c.n_mtp_layers = 0;
  c.n_hash_layers = 2;
  c.compress_ratios = {0, 4, 128, 4, 128};
  c.n_heads = 4;
  c.head_dim = 256;
  c.rope_head_dim = 64;
  c.q_lora_rank = 64;
  c.o_groups = 2;
  c.o_lora_rank = 32;
  c.n_routed_experts = 16;
  c.n_activated_experts = 4;
  c.moe_inter_dim = 32;
  c.n_shared_experts = 1;
  c.index_n_heads = 16;
  c.index_head_dim = 128;
  c.index_topk = 16;
  return c;
}

/// Every projection a QuantizedModel loads through the plan: reference name, GGUF name, shape.
struct Projection {
  std::string ref;
  std::string gguf;
  std::size_t out;
  std::size_t in;
};

std::vector<Projection> projections(const d::ModelConfig& c) {
  std::vector<Projection> p;
  const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string r = fmt::format("layers.{}.", l);
    const std::string g = fmt::format("blk.{}.", l);
    p.push_back({r + "attn.wq_a.weight", g + "attn_q_a.weight", u(c.q_lora_rank), u(c.dim)});
    p.push_back(
        {r + "attn.wq_b.weight", g + "attn_q_b.weight", u(c.q_out_features()), u(c.q_lora_rank)});
    p.push_back({r + "attn.wkv.weight", g + "attn_kv.weight", u(c.head_dim), u(c.dim)});
    p.push_back(
        {r + "attn.wo_b.weight", g + "attn_output_b.weight", u(c.dim), u(c.wo_b_in_features())});
    if (c.compress_ratio(l) == 4) {
      p.push_back({r + "attn.indexer.wq_b.weight", g + "indexer.attn_q_b.weight",
                   u(c.index_n_heads * c.index_head_dim), u(c.q_lora_rank)});
    }
    for (std::int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string x = fmt::format("{}ffn.experts.{}.", r, e);
      p.push_back({x + "w1.weight", g + "ffn_gate_exps.weight", u(c.moe_inter_dim), u(c.dim)});
      p.push_back({x + "w2.weight", g + "ffn_down_exps.weight", u(c.dim), u(c.moe_inter_dim)});
      p.push_back({x + "w3.weight", g + "ffn_up_exps.weight", u(c.moe_inter_dim), u(c.dim)});
    }
    p.push_back({r + "ffn.shared_experts.w1.weight", g + "ffn_gate_shexp.weight",
                 u(c.moe_inter_dim), u(c.dim)});
    p.push_back({r + "ffn.shared_experts.w2.weight", g + "ffn_down_shexp.weight", u(c.dim),
                 u(c.moe_inter_dim)});
    p.push_back({r + "ffn.shared_experts.w3.weight", g + "ffn_up_shexp.weight", u(c.moe_inter_dim),
                 u(c.dim)});
  }
  return p;
}

}  // namespace

TEST_CASE("fit_format: a format where the width fits, llama-quantize's fallbacks elsewhere") {
  using F = FormatId;
  const auto P = DotSemantics::partner;
  const auto Q = DotSemantics::dequant;
  CHECK(d::fit_format(F::q4_k, 256, P) == F::q4_k);
  CHECK(d::fit_format(F::q4_k, 64, P) == F::q5_0);
  CHECK(d::fit_format(F::q2_k, 64, P) == F::q4_0);
  CHECK(d::fit_format(F::q3_k, 96, P) == F::q4_0);
  CHECK(d::fit_format(F::q5_k, 32, P) == F::q5_1);
  CHECK(d::fit_format(F::q6_k, 64, P) == F::q8_0);
  CHECK(d::fit_format(F::iq4_xs, 128, P) == F::iq4_nl);
  CHECK(d::fit_format(F::q4_k, 48, P) == F::f16);  // not even 32 divides
  CHECK(d::fit_format(F::q8_0, 48, P) == F::f16);
  CHECK(d::fit_format(F::f16, 48, P) == F::f16);
  // native formats: the release's 128-value activation blocks; BF16 where they do not fit
  CHECK(d::fit_format(F::fp8_b128, 256, P) == F::fp8_b128);
  CHECK(d::fit_format(F::fp8_b128, 64, P) == F::bf16);
  CHECK(d::fit_format(F::fp4_g32, 64, P) == F::bf16);               // act_quant needs 128
  CHECK(d::fit_format(F::fp4_g32, 64, Q) == F::fp4_g32);            // the weight alone needs 32
  CHECK_THROWS_AS(d::fit_format(F::q8_1, 256, P), d::FormatError);  // activation-only
  CHECK_THROWS_AS(d::fit_format(F::fp8_act128, 256, P), d::FormatError);
  CHECK_THROWS_AS(d::uniform_plan(F::q8_k), d::FormatError);
  static_assert(d::is_weight_format(F::q4_k) && d::is_weight_format(F::fp4_g32));
  static_assert(!d::is_weight_format(F::q8_k) && !d::is_weight_format(F::fp8_act128));
  CHECK_FALSE(d::is_weight_format(d::gguf::ggml_id::iq2_xxs));  // a ggml type dsv4 cannot hold

  // stored bytes: blocks, or codes plus scales
  CHECK(d::stored_bytes(F::q4_k, 256, 512) == 256u * 2 * 144);
  CHECK(d::stored_bytes(F::q8_0, 3, 64) == 3u * 2 * 34);
  CHECK(d::stored_bytes(F::fp8_b128, 256, 384) == 256u * 384 + 2 * 3);
  CHECK(d::stored_bytes(F::fp4_g32, 256, 256) == 256u * 128 + 256 * 8);
  CHECK(d::stored_bytes(F::bf16, 10, 10) == 200u);
}

TEST_CASE("quantize_linear: llama-quantize's quantizers, the release's rule, shape errors") {
  std::vector<float> w(4 * 256);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (float& v : w) v = nd(rng);
  const d::ConstView2<float> wv(w.data(), 4, 256);
  // GGUF types: the bytes ggml's quantizer writes (IQ4_NL: the chunk quantizer llama-quantize
  // runs without an importance matrix, not the reference one)
  const d::AnyLinear nl = d::quantize_linear(FormatId::iq4_nl, DotSemantics::partner, wv);
  const auto& l = nl.get<d::Linear<d::IQ4_NL, d::PartnerDot>>();
  bool differs_from_reference = false;
  for (std::size_t r = 0; r < 4; ++r) {
    for (std::size_t b = 0; b < 8; ++b) {
      d::IQ4_NL::block_type chunk{}, ref{};
      d::IQ4_NL::quantize_chunk(wv.row(r) + b * 32, chunk);
      d::IQ4_NL::quantize(wv.row(r) + b * 32, ref);
      CHECK(std::memcmp(&l.blocks()[r * 8 + b], &chunk, sizeof(chunk)) == 0);
      differs_from_reference |= std::memcmp(&chunk, &ref, sizeof(ref)) != 0;
    }
  }
  CHECK(differs_from_reference);
  const d::AnyLinear q4k = d::quantize_linear(FormatId::q4_k, DotSemantics::dequant, wv);
  const auto want = d::Linear<d::Q4_K, d::DequantDot>::quantize(wv);
  CHECK(std::memcmp(q4k.get<d::Linear<d::Q4_K, d::DequantDot>>().blocks().data(),
                    want.blocks().data(), want.blocks().size_bytes()) == 0);
  const d::AnyLinear fp8 = d::quantize_linear(FormatId::fp8_b128, DotSemantics::partner, wv);
  CHECK(fp8.format_id() == FormatId::fp8_b128);
  CHECK(fp8.semantics_name() == d::PartnerDot::name);
  // widths that do not fit, and formats that are not weights
  const d::ConstView2<float> narrow(w.data(), 4, 64);
  CHECK_THROWS_AS(d::quantize_linear(FormatId::q4_k, DotSemantics::partner, narrow), d::ShapeError);
  CHECK_THROWS_AS(d::quantize_linear(FormatId::fp8_b128, DotSemantics::partner, narrow),
                  d::ShapeError);
  CHECK_THROWS_AS(d::quantize_linear(FormatId::q8_k, DotSemantics::partner, wv), d::FormatError);
}

TEST_CASE("gguf_recipe_plan: llama-quantize's type of every projection of llama.cpp's tiny model") {
  const d::ModelConfig cfg = llamacpp_tiny();
  const std::vector<Projection> proj = projections(cfg);
  struct Case {
    d::gguf::FileType ft;
    const char* listing;
  };
  for (const Case c : {Case{d::gguf::FileType::q4_k_m, "dsv4-tiny-q4_k_m.txt"},
                       Case{d::gguf::FileType::q2_k, "dsv4-tiny-q2_k.txt"},
                       Case{d::gguf::FileType::mxfp4_moe, "dsv4-tiny-mxfp4_moe.txt"},
                       Case{d::gguf::FileType::q8_0, "dsv4-tiny-q8_0.txt"},
                       Case{d::gguf::FileType::f16, "dsv4-tiny-f16.txt"}}) {
    const auto listed = listing_types(c.listing);
    const d::WeightPlan plan = d::gguf_recipe_plan(c.ft, cfg);
    const std::string listing = c.listing;
    CAPTURE(listing);
    std::map<std::string, int> seen;
    for (const Projection& p : proj) {
      CAPTURE(p.ref);
      REQUIRE(listed.count(p.gguf) == 1);
      const FormatId got = plan.choose({p.ref, p.out, p.in});
      CHECK(d::format_info(got).name == listed.at(p.gguf));
      ++seen[listed.at(p.gguf)];
    }
    std::string mix;
    for (const auto& [t, n] : seen) mix += fmt::format(" {}x{}", n, t);
    MESSAGE(listing << ":" << mix);
  }
  // a plan made for one config refuses the tensors of another
  const d::WeightPlan plan = d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, cfg);
  CHECK_THROWS_AS(plan.choose({"layers.7.attn.wq_a.weight", 64, 256}), d::ConfigError);
}

TEST_CASE("official_release_plan: FP8_B128 projections and shared expert, FP4_G32 routed experts") {
  const d::WeightPlan plan = d::official_release_plan();
  CHECK(plan.choose({"layers.0.attn.wq_b.weight", 512, 256}) == FormatId::fp8_b128);
  CHECK(plan.choose({"layers.0.ffn.shared_experts.w2.weight", 256, 256}) == FormatId::fp8_b128);
  CHECK(plan.choose({"layers.0.ffn.experts.3.w2.weight", 256, 256}) == FormatId::fp4_g32);
  CHECK(plan.choose({"mtp.0.e_proj.weight", 256, 256}) == FormatId::fp8_b128);
  CHECK(plan.choose({"layers.0.ffn.experts.3.w2.weight", 256, 32}) == FormatId::bf16);
}

TEST_CASE("QuantizedLinear is loaded only through load_quantized") {
  const auto dir = d::test::data_path("reference/tiny_a");
  const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  CHECK_THROWS_AS(QModel::load(ckpt), d::ConfigError);
  CHECK_THROWS_AS(d::load_quantized<QModel>(ckpt, d::WeightPlan{"empty", {}, {}, {}}),
                  d::ConfigError);
  // a recipe made for another config names tensors this model does not have
  d::ModelConfig other = ckpt.config();
  other.n_layers = 2;
  other.n_mtp_layers = 0;
  other.compress_ratios.resize(2);
  CHECK_THROWS_AS(
      d::load_quantized<QModel>(ckpt, d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, other)),
      d::ConfigError);
}

TEST_CASE("tiny256: the F32 and BF16 plans (dequant-dot) equal the unquantized model bit for bit") {
  const auto& t = tiny256();
  const auto plain = d::ReferenceModel<d::WithNumerics<d::PlainFp32Numerics>>::load(t.checkpoint());
  CHECK(t.logits(plain) == t.want());
  d::QuantizationReport report;
  const QModel m = d::load_quantized<QModel>(
      t.checkpoint(), d::uniform_plan(FormatId::bf16, DotSemantics::dequant), &report);
  CHECK(t.logits(m) == t.want());  // the random weights are bf16 values
  // 3 blocks of wq_a, wq_b, wkv, wo_b and 4 routed + 1 shared experts; the CSA block's indexer
  CHECK(report.tensors.size() == 3 * (4 + 15) + 1);
  CHECK(report.weights() == 3 * (3 * 256 * 256 + 128 * 256 + 15 * 256 * 256) + 512 * 256);
  CHECK(report.bits_per_weight() == 16.0);
  CHECK(report.format_mix() == "BF16 100.0%");
}

/// A format's measured distance (partner-dot) and its bound.
struct LadderRow {
  FormatId format;
  LogitBound bound;
};

std::map<FormatId, d::LogitDistance> run_ladder(std::span<const LadderRow> rows) {
  std::map<FormatId, d::LogitDistance> got;
  for (const LadderRow& r : rows) {
    d::QuantizationReport report;
    got[r.format] = tiny256().run(d::uniform_plan(r.format), &report);
    // every projection of tiny256 takes the format itself (no fallback)
    CHECK(report.format_mix() == fmt::format("{} 100.0%", d::format_info(r.format).name));
    check_within(std::string(d::format_info(r.format).name), got[r.format], r.bound,
                 report.bits_per_weight());
  }
  return got;
}

// A ladder of formats, ordered by bits per weight (every format of each width, with both
// semantics, is in quantized_model_slow_test.cpp), against the f32 logits with partner-dot:
// llama.cpp's CPU numerics for the GGUF types, the reference's act_quant + GEMM for FP8_B128.
TEST_CASE("tiny256: 16 and 8 bits (partner-dot) against the f32 logits") {
  using F = FormatId;
  const LadderRow rows[] = {
      {F::f16, {5e-3, 6e-4, 4e-4, 1.0}},
      {F::bf16, {0.03, 5e-3, 3e-3, 0.93}},
      {F::q8_0, {1.5, 0.03, 0.035, 0.93}},
      {F::fp8_b128, {1.8, 0.09, 0.065, 0.93}},
  };
  const auto got = run_ladder(rows);
  CHECK(got.at(F::f16).rel_l2 < got.at(F::bf16).rel_l2);
  CHECK(got.at(F::bf16).rel_l2 < got.at(F::q8_0).rel_l2);
  CHECK(got.at(F::q8_0).rel_l2 < got.at(F::fp8_b128).rel_l2);  // E4M3 keeps 3 mantissa bits
}

TEST_CASE("tiny256: 6.6 down to 2.6 bits (partner-dot) against the f32 logits") {
  using F = FormatId;
  const LadderRow rows[] = {
      {F::q8_0, {1.5, 0.03, 0.035, 0.93}},  // the anchor of the ordering checks
      {F::q6_k, {1.8, 0.06, 0.055, 0.9}},  {F::q4_k, {2.5, 0.16, 0.105, 0.87}},
      {F::q4_0, {2.5, 0.21, 0.15, 0.84}},  {F::mxfp4, {2.5, 0.26, 0.17, 0.87}},
      {F::q2_k, {3.5, 0.6, 0.38, 0.45}},
  };
  const auto got = run_ladder(rows);
  CHECK(got.at(F::q8_0).rel_l2 < got.at(F::q6_k).rel_l2);
  CHECK(got.at(F::q6_k).rel_l2 < got.at(F::q4_k).rel_l2);
  CHECK(got.at(F::q4_k).rel_l2 < got.at(F::q4_0).rel_l2);
  CHECK(got.at(F::q4_0).rel_l2 < got.at(F::mxfp4).rel_l2);
  CHECK(got.at(F::mxfp4).rel_l2 < got.at(F::q2_k).rel_l2);
}

TEST_CASE("tiny256: dequant-dot isolates the weight error") {
  using F = FormatId;
  const auto& t = tiny256();
  // F16 holds the bf16 weights exactly except the few below f16's normal range, so without the
  // activation conversion to f16 only those and fp32 summation differences remain.
  const d::LogitDistance f16 = t.run(d::uniform_plan(F::f16, DotSemantics::dequant));
  CHECK(f16.max_abs < 2e-5);
  const d::LogitDistance q8p = t.run(d::uniform_plan(F::q8_0));
  const d::LogitDistance q8d = t.run(d::uniform_plan(F::q8_0, DotSemantics::dequant));
  check_within("Q8_0 dequant-dot", q8d, {1.5, 0.02, 0.03, 0.93}, 8.5);
  CHECK(q8d.mean_abs < q8p.mean_abs);  // the Q8_0 activations add their own error
}

TEST_CASE("tiny256: the mixed recipes and the release's FP8+FP4 split (partner-dot)") {
  const auto& t = tiny256();
  struct Row {
    d::WeightPlan plan;
    std::string mix;
    double bits;
    LogitBound bound;
  };
  const Row rows[] = {
      {d::official_release_plan(), "FP4_G32 62.6%, FP8_B128 37.4%", 5.652, {2.0, 0.18, 0.12, 0.87}},
      {d::gguf_recipe_plan(d::gguf::FileType::mxfp4_moe, t.config()),
       "MXFP4 62.6%, Q8_0 37.4%",
       5.839,
       {2.0, 0.17, 0.115, 0.87}},
      {d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, t.config()),
       "Q4_K 91.3%, Q6_K 8.7%",
       4.679,
       {2.5, 0.16, 0.105, 0.84}},
      {d::gguf_recipe_plan(d::gguf::FileType::q2_k, t.config()),
       "Q2_K 73.9%, Q3_K 26.1%",
       2.837,
       {3.5, 0.58, 0.36, 0.5}},
  };
  for (const Row& r : rows) {
    d::QuantizationReport report;
    const d::LogitDistance got = t.run(r.plan, &report);
    CHECK(report.format_mix() == r.mix);
    CHECK(report.bits_per_weight() == doctest::Approx(r.bits).epsilon(1e-3));
    check_within(r.plan.name, got, r.bound, report.bits_per_weight());
  }
}

TEST_CASE("tiny256: Q4_K_M over all tensors (embedding, head, wo_a, compressors, mixers too)") {
  const auto& t = tiny256();
  d::QuantizationReport report;
  const d::LogitDistance all =
      t.run(d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, t.config(), false, DotSemantics::partner,
                                d::RecipeScope::all_tensors),
            &report);
  std::map<std::string, FormatId> got;
  std::size_t others = 0;
  for (const auto& q : report.tensors) {
    got[q.name] = q.format;
    others += q.projection ? 0 : 1;
  }
  // llama-quantize's types (Q4_K_M: output Q6_K, token_embd the base type, 128-wide rows Q5_0)
  CHECK(got.at("embed.weight") == FormatId::q4_k);
  CHECK(got.at("head.weight") == FormatId::q6_k);
  CHECK(got.at("layers.0.attn.wo_a.weight") == FormatId::q5_0);
  CHECK(got.at("layers.0.attn.compressor.wkv.weight") == FormatId::q4_k);
  CHECK(got.at("layers.0.attn.compressor.ape") == FormatId::q4_k);
  CHECK(got.at("layers.0.attn.indexer.weights_proj.weight") == FormatId::q4_k);
  CHECK(got.at("layers.1.hc_ffn_fn") == FormatId::q4_k);
  CHECK(got.at("layers.2.ffn.experts.0.w2.weight") == FormatId::q6_k);  // "more bits" layer
  CHECK(got.count("layers.0.ffn.gate.weight") == 0);                    // the router: F32
  CHECK(got.count("layers.0.attn_norm.weight") == 0);                   // norms: F32
  CHECK(others > 0);
  const d::LogitDistance proj = t.run(d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, t.config()));
  check_within("Q4_K_M (all tensors)", all, {2.5, 0.2, 0.13, 0.84}, report.bits_per_weight());
  CHECK(all.rel_l2 > proj.rel_l2);  // the embedding and head add their own error
}

TEST_CASE(
    "llama.cpp's tiny model: in-memory Q4_K_M (all tensors) equals dsv4 quantize's GGUF file") {
  // The F32 file quantized by `dsv4 quantize` (byte-identical to llama-quantize's, see
  // gguf_quantize_test.cpp) and loaded as it is stored (AnyLinear views, partner-dot), against the
  // F32 file loaded through load_quantized with the same recipe over all tensors: the same
  // blocks, the same dequantized values, so the same logits bit for bit.
  namespace io = d::io;
  const fs::path f32 = d::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf");
  const fs::path q4 =
      fs::temp_directory_path() / fmt::format("dsv4_quantized_model_q4km_{}.gguf", ::getpid());
  io::QuantizeOptions opt;
  opt.file_type = d::gguf::FileType::q4_k_m;
  io::quantize_gguf_file(f32, q4, opt);
  struct Remove {
    fs::path p;
    ~Remove() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } remove{q4};
  const io::GgufModel src(f32);
  // the float-held tensors as fp32 products in both (load_quantized does not model their partner),
  // every weight by vec_dot (the in-memory model's weights are not repacked as llama.cpp's are)
  const io::GgufModel file(q4, io::GgufLinearSemantics::partner_dot_projections,
                           /*llama_repack=*/false);
  const d::ModelConfig& cfg = src.config();
  REQUIRE(file.config() == cfg);
  using FileModel =
      d::ReferenceModel<d::WithLinear<d::AnyLinear, d::WithNumerics<d::PlainFp32Numerics>>>;
  const FileModel from_file = FileModel::load(file, cfg);
  d::QuantizationReport report;
  const QModel in_memory = d::load_quantized<QModel>(
      src, cfg,
      d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, cfg, false, DotSemantics::partner,
                          d::RecipeScope::all_tensors),
      &report);
  // every tensor the file quantized was quantized in memory to the same type
  for (const auto& q : report.tensors) {
    CAPTURE(q.name);
    CHECK(file.stored_type(q.name) == q.format);
  }
  const std::vector<std::int32_t> tokens = {1, 17, 300, 42, 511, 7, 7, 128, 64, 3, 250, 99, 5, 12};
  auto st1 = from_file.new_state();
  auto st2 = in_memory.new_state();
  const auto want = from_file.prefill(tokens, st1).logits;
  const auto got = in_memory.prefill(tokens, st2).logits;
  CHECK(got == want);
  // and against the F32 model, for scale
  const FileModel base = FileModel::load(src, cfg);
  auto st3 = base.new_state();
  const std::vector<float> ref = base.prefill(tokens, st3).logits;
  double rms = 0;
  for (float v : ref) rms += static_cast<double>(v) * v;
  MESSAGE("llama.cpp tiny F32 logit RMS " << std::sqrt(rms / static_cast<double>(ref.size())));
  const d::LogitDistance dist =
      d::logit_distance(got, ref, static_cast<std::size_t>(cfg.vocab_size));
  // Measured: max 1.30, mean 0.232, rel-L2 0.291, top-1 0.429 (6 of the 14 positions: the tiny
  // model's logits are small, RMS 1.02, so Q4_K_M over all tensors moves many arg maxes); the
  // bounds allow 1.5x and one more top-1 flip.
  check_within("llama.cpp tiny Q4_K_M (file)", dist, {2.0, 0.35, 0.45, 0.35},
               report.bits_per_weight());
}

TEST_CASE("tiny_a (golden reference weights): the recipes with their fallbacks") {
  // tiny_a's projections are 32-128 wide, so the k-quants fall back to 32-value types and the
  // native formats (PartnerDot: 128-value act_quant blocks) to BF16; the table of record is
  // tiny256's.
  const auto dir = d::test::data_path("reference/tiny_a");
  const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  const d::io::SafetensorsFile golden(dir / "golden_fp32.safetensors");
  std::vector<std::int32_t> tokens = d::test::read_i32(golden, "tokens");
  tokens.resize(32);
  const auto vocab = static_cast<std::size_t>(ckpt.config().vocab_size);
  auto logits = [&](const QModel& m) {
    auto st = m.new_state();
    return m.prefill(tokens, st).logits;
  };
  const std::vector<float> want = logits(
      d::load_quantized<QModel>(ckpt, d::uniform_plan(FormatId::f32, DotSemantics::dequant)));
  struct Row {
    d::WeightPlan plan;
    std::string mix;
    LogitBound bound;
  };
  const Row rows[] = {
      {d::gguf_recipe_plan(d::gguf::FileType::q8_0, ckpt.config()),
       "Q8_0 100.0%",
       {1.8, 0.035, 0.055, 0.9}},
      {d::gguf_recipe_plan(d::gguf::FileType::mxfp4_moe, ckpt.config()),
       "Q8_0 69.0%, MXFP4 31.0%",
       {2.5, 0.26, 0.18, 0.78}},
      {d::gguf_recipe_plan(d::gguf::FileType::q4_k_m, ckpt.config()),
       "Q5_0 95.3%, Q8_0 4.7%",
       {2.8, 0.17, 0.14, 0.87}},
      {d::official_release_plan(), "BF16 100.0%", {0.03, 5e-3, 3e-3, 0.93}},
  };
  for (const Row& r : rows) {
    d::QuantizationReport report;
    const QModel m = d::load_quantized<QModel>(ckpt, r.plan, &report);
    const d::LogitDistance got = d::logit_distance(logits(m), want, vocab);
    CHECK(report.format_mix() == r.mix);
    check_within("tiny_a " + r.plan.name + ": " + report.format_mix(), got, r.bound,
                 report.bits_per_weight());
  }
}
