// The full quantized-model table (labelled slow): tiny256 (model/random_checkpoint.hpp) with every
// weight format in both semantics and the mixed recipes (on the projections, and over all
// tensors), 4 prompts of 64 seeded tokens, prefill
// logits against the unquantized model (fp32 activations, no FP8/FP4 activation simulation).
// These are the numbers of docs/quantization.md (bench/quant_quality.cpp prints the same table).
// Bounds: the measured values with headroom (mean and rel-L2 about 1.3-1.5x, top-1 a few of the
// 256 rows; max |Δ| is set by discrete flips of an expert or indexer top-k selection and gets
// more), and the errors must grow as the bits shrink along each format family.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <dsv4/model/quantized_load.hpp>
#include <map>
#include <string>
#include <utility>

#include "quantized_model_common.hpp"

namespace {

namespace d = dsv4;
using d::DotSemantics;
using d::FormatId;
using d::test::check_within;
using d::test::LogitBound;

const d::test::Tiny256& tiny256() {
  static const d::test::Tiny256 t(4, 64);
  return t;
}

struct Row {
  FormatId format;
  LogitBound partner;  ///< PartnerDot
  LogitBound dequant;  ///< DequantDot
};

// Ordered by bits per weight (scales included).
const Row kRows[] = {
    {FormatId::f32, {2e-5, 2e-6, 2e-6, 1.0}, {0, 0, 0, 1.0}},
    {FormatId::f16, {5e-3, 5e-4, 3e-4, 1.0}, {2e-5, 2e-6, 2e-6, 1.0}},
    {FormatId::bf16, {0.03, 4e-3, 3e-3, 0.98}, {0, 0, 0, 1.0}},
    {FormatId::q8_0, {1.5, 0.02, 0.02, 0.97}, {1.5, 0.015, 0.016, 0.98}},
    {FormatId::fp8_b128, {2.0, 0.09, 0.065, 0.94}, {2.0, 0.07, 0.05, 0.96}},
    {FormatId::q6_k, {2.0, 0.05, 0.04, 0.95}, {2.0, 0.045, 0.037, 0.96}},
    {FormatId::q5_1, {2.0, 0.09, 0.065, 0.93}, {2.0, 0.09, 0.065, 0.93}},
    {FormatId::q5_k, {2.2, 0.09, 0.065, 0.92}, {2.2, 0.085, 0.06, 0.93}},
    {FormatId::q5_0, {2.0, 0.1, 0.07, 0.9}, {2.0, 0.1, 0.07, 0.91}},
    {FormatId::q4_1, {2.5, 0.19, 0.125, 0.87}, {2.5, 0.19, 0.125, 0.87}},
    {FormatId::q4_k, {2.5, 0.17, 0.11, 0.87}, {2.5, 0.17, 0.115, 0.87}},
    {FormatId::q4_0, {2.5, 0.2, 0.13, 0.84}, {2.5, 0.2, 0.13, 0.84}},
    {FormatId::iq4_nl, {2.5, 0.18, 0.12, 0.9}, {2.5, 0.18, 0.12, 0.9}},
    {FormatId::mxfp4, {3.0, 0.26, 0.17, 0.82}, {3.0, 0.26, 0.17, 0.82}},
    {FormatId::fp4_g32, {3.0, 0.27, 0.17, 0.8}, {3.0, 0.26, 0.17, 0.8}},
    {FormatId::iq4_xs, {2.5, 0.18, 0.12, 0.88}, {2.5, 0.18, 0.12, 0.88}},
    {FormatId::q3_k, {3.0, 0.33, 0.21, 0.8}, {3.0, 0.33, 0.21, 0.79}},
    {FormatId::q2_k, {3.5, 0.6, 0.38, 0.55}, {3.5, 0.6, 0.38, 0.55}},
};

/// Along each family, fewer bits give a larger rel-L2. `exact_bf16`: dequant-dot, where BF16 holds
/// the bf16 weights exactly and F16 rounds the smallest ones, so that pair is left out.
void check_family_order(const std::map<FormatId, d::LogitDistance>& got, bool exact_bf16) {
  using F = FormatId;
  const std::pair<F, F> fewer_bits_worse[] = {
      {F::f16, F::bf16},  {F::bf16, F::q8_0}, {F::q8_0, F::q6_k},        {F::q6_k, F::q5_k},
      {F::q5_k, F::q4_k}, {F::q4_k, F::q3_k}, {F::q3_k, F::q2_k},        {F::q5_0, F::q4_0},
      {F::q5_1, F::q4_1}, {F::q8_0, F::q5_0}, {F::fp8_b128, F::fp4_g32}, {F::iq4_nl, F::mxfp4},
  };
  for (const auto& [more, fewer] : fewer_bits_worse) {
    if (exact_bf16 && more == F::f16) continue;
    CAPTURE(std::string(d::format_info(more).name));
    CAPTURE(std::string(d::format_info(fewer).name));
    CHECK(got.at(more).rel_l2 < got.at(fewer).rel_l2);
  }
}

}  // namespace

TEST_CASE("tiny256, every format, partner-dot (llama.cpp's CPU numerics, the reference's GEMM)") {
  std::map<FormatId, d::LogitDistance> got;
  for (const Row& r : kRows) {
    d::QuantizationReport report;
    got[r.format] = tiny256().run(d::uniform_plan(r.format), &report);
    CHECK(report.format_mix() == fmt::format("{} 100.0%", d::format_info(r.format).name));
    check_within(std::string(d::format_info(r.format).name), got[r.format], r.partner,
                 report.bits_per_weight());
  }
  check_family_order(got, false);
}

TEST_CASE("tiny256, every format, dequant-dot (the weight error alone)") {
  std::map<FormatId, d::LogitDistance> got;
  for (const Row& r : kRows) {
    d::QuantizationReport report;
    got[r.format] = tiny256().run(d::uniform_plan(r.format, DotSemantics::dequant), &report);
    check_within(std::string(d::format_info(r.format).name), got[r.format], r.dequant,
                 report.bits_per_weight());
  }
  check_family_order(got, true);
}

TEST_CASE(
    "tiny256, the recipes (projections, all tensors) and the release's split, both semantics") {
  const auto& t = tiny256();
  struct Mix {
    std::string name;
    d::WeightPlan partner;
    d::WeightPlan dequant;
    LogitBound bound;  // both semantics
  };
  const auto recipe = [&](d::gguf::FileType ft, DotSemantics s) {
    return d::gguf_recipe_plan(ft, t.config(), false, s);
  };
  const auto all = [&](d::gguf::FileType ft, DotSemantics s) {
    return d::gguf_recipe_plan(ft, t.config(), false, s, d::RecipeScope::all_tensors);
  };
  using FT = d::gguf::FileType;
  const Mix mixes[] = {
      {"FP8+FP4 (release)",
       d::official_release_plan(DotSemantics::partner),
       d::official_release_plan(DotSemantics::dequant),
       {2.0, 0.17, 0.11, 0.86}},
      {"MXFP4_MOE",
       recipe(FT::mxfp4_moe, DotSemantics::partner),
       recipe(FT::mxfp4_moe, DotSemantics::dequant),
       {2.0, 0.16, 0.105, 0.88}},
      {"Q4_K_M",
       recipe(FT::q4_k_m, DotSemantics::partner),
       recipe(FT::q4_k_m, DotSemantics::dequant),
       {2.5, 0.16, 0.11, 0.86}},
      {"Q2_K",
       recipe(FT::q2_k, DotSemantics::partner),
       recipe(FT::q2_k, DotSemantics::dequant),
       {3.5, 0.55, 0.35, 0.6}},
      // over all tensors (embedding, head, wo_a, compressors, mixers rounded through their types)
      {"MXFP4_MOE all tensors",
       all(FT::mxfp4_moe, DotSemantics::partner),
       all(FT::mxfp4_moe, DotSemantics::dequant),
       {2.0, 0.17, 0.11, 0.88}},
      {"Q4_K_M all tensors",
       all(FT::q4_k_m, DotSemantics::partner),
       all(FT::q4_k_m, DotSemantics::dequant),
       {3.0, 0.27, 0.17, 0.8}},
      {"Q2_K all tensors",
       all(FT::q2_k, DotSemantics::partner),
       all(FT::q2_k, DotSemantics::dequant),
       {5.0, 0.9, 0.56, 0.38}},
  };
  for (const Mix& m : mixes) {
    d::QuantizationReport report;
    const d::LogitDistance partner = t.run(m.partner, &report);
    const d::LogitDistance dequant = t.run(m.dequant);
    check_within(m.name + " partner-dot", partner, m.bound, report.bits_per_weight());
    check_within(m.name + " dequant-dot", dequant, m.bound, report.bits_per_weight());
  }
}
