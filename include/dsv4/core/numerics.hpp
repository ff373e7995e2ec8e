// Numerics policies: how a model rounds its activations on the way.
//
// Two independent compile-time choices (spec/architecture.md §12, golden reference README):
//  * the activation precision: `Fp32Act` keeps every activation in float; `Bf16Act` rounds each
//    activation to bf16 wherever the official reference holds a bf16 tensor (its own precision);
//  * the activation simulation: when on, the FP8/FP4 round trips the reference applies to KV-cache
//    entries, compressor outputs and indexer q/k are applied too; llama.cpp does not apply them.
// Activations are always stored as float; a policy only decides where values are rounded.
#pragma once

#include <concepts>

#include "dsv4/core/numeric.hpp"

namespace dsv4 {

/// Activations stay float32 (the golden fp32 run).
struct Fp32Act {
  static constexpr const char* name = "fp32";
  static constexpr float round(float x) noexcept { return x; }
};

/// Activations rounded to bf16 where the reference keeps bf16 tensors (the golden bf16 run).
/// A bf16 mean (the per-head q normalisation) accumulates in float32 and rounds once, as PyTorch 2
/// computes it.
struct Bf16Act {
  static constexpr const char* name = "bf16";
  static constexpr bool round_sum_before_mean = false;
  static constexpr float round(float x) noexcept { return bf16(x).to_float(); }
};

/// Bf16Act as PyTorch 1.x computes a bf16 mean: the sum is rounded to bf16 before the division
/// (two roundings; differs from Bf16Act only when the length is not a power of two). The golden
/// tiny_a/tiny_b runs used PyTorch 1.13, the tiny_fp8 run PyTorch 2.
struct Bf16ActTorch1 : Bf16Act {
  static constexpr const char* name = "bf16-torch1";
  static constexpr bool round_sum_before_mean = true;
};

/// A model's numerics: activation precision `Act`, whether the FP8/FP4 activation simulation
/// of the official reference is on, and whose order of operations where two implementations
/// differ by rounding only: the reference's (`GgmlOrder` false) or llama.cpp's CPU graph's (true):
///  * the MoE: a routed expert's SwiGLU output scaled by its routing weight before w2, the experts'
///    outputs summed in ascending expert id (reference) — or w2's output scaled, the outputs summed
///    in the router's slot order (ggml);
///  * an RMSNorm's statistics: the sum of squares in float32 — or in double, the mean rounded to
///    float (ggml's rms_norm);
///  * RoPE: cos / sin of fp32(pos)·ω_i and a rounded rotation — or ggml's angles (θ multiplied
///    cumulatively, its YaRN ramp and magnitude) and FMA rotation (Rope::angles_ggml);
///  * the hyper-connections: the reference's Sinkhorn divisions and rounded sums — or llama.cpp's
///    DSV4_HC_COMB / _PRE / _POST kernels (FMA sums, reciprocal normalisations).
/// With GGUF weights under llama.cpp's dot products the order decides which values the activation
/// quantization of the next product sees, so llama.cpp's logits are followed more closely.
template <class Act, bool SimulateQuant, bool GgmlOrder = false>
struct Numerics {
  using act = Act;
  static constexpr bool simulate_quant = SimulateQuant;
  static constexpr bool ggml_order = GgmlOrder;
  static constexpr float round(float x) noexcept { return Act::round(x); }
};

/// The official reference as released: bf16 activations, FP8/FP4 simulation on.
using ReferenceNumerics = Numerics<Bf16Act, true>;
/// The official reference run under PyTorch 1.x (the golden tiny_a/tiny_b data).
using ReferenceTorch1Numerics = Numerics<Bf16ActTorch1, true>;
/// The reference's code run in float32 (golden fp32 data).
using ReferenceFp32Numerics = Numerics<Fp32Act, true>;
/// Float32 without the activation simulation, in llama.cpp's order of operations (what llama.cpp's
/// CPU graph computes).
using PlainFp32Numerics = Numerics<Fp32Act, false, true>;

/// Whether numerics N follow llama.cpp's order of operations (Numerics::ggml_order; false for a
/// policy without the member).
template <class N>
constexpr bool ggml_order() noexcept {
  if constexpr (requires { N::ggml_order; }) {
    return N::ggml_order;
  } else {
    return false;
  }
}

template <class N>
concept NumericsPolicy = requires(float x) {
  typename N::act;
  { N::simulate_quant } -> std::convertible_to<bool>;
  { N::round(x) } -> std::same_as<float>;
};

}  // namespace dsv4
