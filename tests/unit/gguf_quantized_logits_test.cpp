// Quantized llama.cpp GGUFs in dsv4 with llama.cpp's CPU numerics: the tiny F32 GGUF quantized by
// the library (io/gguf_quantize.hpp, byte-identical to llama-quantize's files per the manifests),
// loaded with fp32 activations, no activation simulation and PartnerDot weights (zero-copy views,
// also for the tensors the model otherwise holds as float), against llama.cpp's prefill logits of
// each quantized file.
// Data: tests/data/llamacpp (models/dsv4-tiny-f32.gguf, tokens300.i32, logits/tiny-*.prefill.f32).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/model/model.hpp>
#include <memory>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

namespace io = dsv4::io;

struct Case {
  const char* type;  // llama-quantize's file type name
  const char* logits;
  double max_bound;     // max |Δ| over all logits
  double median_bound;  // median over positions of the per-position max |Δ|
  double top1_min;      // fraction of positions with the same arg max
};

}  // namespace

TEST_CASE("model: quantized tiny GGUFs reproduce llama.cpp's prefill logits (llama.cpp numerics)") {
  using M = dsv4::ReferenceModel<
      dsv4::WithLinear<dsv4::AnyLinear, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;
  const io::GgufFile f32(dsv4::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"));
  const auto tokens = dsv4::test::read_raw<std::int32_t>("llamacpp/tokens300.i32");
  REQUIRE(tokens.size() == 300);
  const std::size_t vocab = 512;
  const Case cases[] = {
      // The head, the mHC mixers, the compressors, the indexer's weights_proj and wo_a run in
      // their stored format with the activation partner, as ggml's mul_mat (F16 ones with the
      // activation rounded to f16, F32 and F16 in ggml's float GEMM order); the MoE, the RMSNorm
      // statistics, RoPE and the hyper-connections' Sinkhorn and sums in llama.cpp's order
      // (Numerics::ggml_order); the quantized dots and activation rounding are ggml's x86
      // kernels' (partner_dot / partner_quantize), the Q4_0 / Q4_K / Q2_K weights in the orders
      // of its repacked kernels (GgmlRepack), as the golden run. Each of those is llama.cpp's
      // own node bit for bit; the attention's softmax and sums, the compressors' and the
      // indexer's are not yet, and their last-bit differences reach the logits through the
      // quantized activations, the MoE routing and the indexer's top-k: the figures move by a
      // few near-tie flips either way with any change of order (the cpu backend, whose
      // attention sums otherwise, meets median <= 0.06 and top-1 >= 96 % on every file:
      // cpu/model_cpu_quantized_test.cpp). The positions' maxima are single positions
      // where a discrete choice goes the other way. Measured (before the repacked orders, RoPE,
      // Sinkhorn and float GEMM orders in brackets):
      // max 0.986, median 0.00276, top-1 300/300 (0.988, 0.00278, 300)
      {"F16", "tiny-f16.prefill.f32", 1.05, 0.003, 0.99},
      // max 0.695, median 0.0488, top-1 289/300 (0.843, 0.0488, 291)
      {"Q8_0", "tiny-q8_0.prefill.f32", 1.0, 0.055, 0.96},
      // max 0.955, median 0.0598, top-1 294/300 (1.002, 0.0660, 288)
      {"Q4_K_M", "tiny-q4_k_m.prefill.f32", 1.1, 0.066, 0.96},
      // max 1.065, median 0.0641, top-1 282/300 (1.422, 0.0651, 286)
      {"Q2_K", "tiny-q2_k.prefill.f32", 1.25, 0.07, 0.93},
      // max 0.773, median 0.0473, top-1 289/300 (0.750, 0.0469, 293)
      {"MXFP4_MOE", "tiny-mxfp4_moe.prefill.f32", 0.85, 0.053, 0.96},
  };
  for (const Case& c : cases) {
    const std::string type = c.type;
    CAPTURE(type);
    io::QuantizeOptions opt;
    opt.file_type = *dsv4::gguf::file_type_from_name(c.type);
    const auto plan = io::plan_quantization(f32, opt);
    std::vector<std::byte> bytes;
    bytes.reserve(plan.file_size);
    io::quantize_gguf(
        f32, plan,
        [&](std::span<const std::byte> s) { bytes.insert(bytes.end(), s.begin(), s.end()); }, opt);
    REQUIRE(bytes.size() == plan.file_size);
    const io::GgufModel src(std::make_shared<const io::GgufFile>(std::move(bytes), c.type));
    const M model = M::load(src, src.config());
    auto st = model.new_state();
    const auto got = model.prefill(tokens, st).logits;
    const auto want = dsv4::test::read_raw<float>(std::string("llamacpp/logits/") + c.logits);
    REQUIRE(want.size() == tokens.size() * vocab);
    REQUIRE(got.size() == want.size());
    double max_abs = 0;
    std::size_t same_top1 = 0;
    std::vector<double> pos_max(tokens.size(), 0.0);
    for (std::size_t p = 0; p < tokens.size(); ++p) {
      const float* g = got.data() + p * vocab;
      const float* w = want.data() + p * vocab;
      for (std::size_t i = 0; i < vocab; ++i)
        pos_max[p] = std::max(pos_max[p], std::abs(static_cast<double>(g[i]) - w[i]));
      max_abs = std::max(max_abs, pos_max[p]);
      if (std::max_element(g, g + vocab) - g == std::max_element(w, w + vocab) - w) ++same_top1;
    }
    std::nth_element(pos_max.begin(), pos_max.begin() + pos_max.size() / 2, pos_max.end());
    const double median = pos_max[pos_max.size() / 2];
    const double top1 = static_cast<double>(same_top1) / static_cast<double>(tokens.size());
    MESSAGE(type, ": max ", max_abs, ", median of per-position max ", median, ", top-1 ", top1);
    CHECK(max_abs <= c.max_bound);
    CHECK(median <= c.median_bound);
    CHECK(top1 >= c.top1_min);
  }
}
