// Partial rotary position embedding with YaRN frequency interpolation, as the official reference
// computes it. Spec: spec/architecture.md §3.4 and §12 items 2-4; reference symbols
// `precompute_freqs_cis` and `apply_rotary_emb` (inference/model.py).
//
// Layout: only the LAST `rope_dim` values of a vector are rotated, as adjacent pairs
// (v[2i], v[2i+1]) read as the complex number v[2i] + i·v[2i+1] (GPT-J / interleaved order, not the
// NeoX half split). Frequencies, angles and the complex products are float32; the rotated values
// are rounded by the numerics policy (bf16 in the reference's own run).
//
// Per-layer choice (`Rope::for_layer`): ratio 0 (sliding window only) uses `rope_theta` without
// YaRN; compressed layers (ratio > 0) use `compress_rope_theta` with YaRN. Angles are computed on
// the fly from the float32 frequency table (fp32(pos) · ω_i, then cosf/sinf), which yields the
// same values as the reference's precomputed [max_seq_len, rope_dim / 2] table.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"

namespace dsv4 {

/// Direction of a rotation: forward at the token position, or its inverse (conjugate), which the
/// attention applies to its output at the query position.
enum class RopeDirection : std::uint8_t { forward, inverse };

/// The hyper-parameters of one frequency table.
struct RopeParams {
  std::int64_t rope_dim = 64;         ///< rotated dims (even)
  std::int64_t max_seq_len = 4096;    ///< positions [0, max_seq_len) are valid
  double base = 10000.0;              ///< rope_theta or compress_rope_theta
  std::int64_t original_seq_len = 0;  ///< YaRN L_orig; 0 disables YaRN
  double factor = 1.0;                ///< YaRN factor
  double beta_fast = 32.0;            ///< YaRN
  double beta_slow = 1.0;             ///< YaRN
};

/// The float32 frequencies ω_i, i < rope_dim / 2, in the reference's operation order:
/// ω_i = 1 / base^(2i / dim); with YaRN, blended with ω_i / factor by a linear ramp between the
/// correction dims of beta_fast and beta_slow (all fp32 except the correction range, which the
/// reference computes in double precision).
inline std::vector<float> rope_frequencies(const RopeParams& p) {
  DSV4_CHECK(p.rope_dim > 0 && p.rope_dim % 2 == 0, ConfigError,
             "rope: rope_head_dim must be a positive even number, got {}", p.rope_dim);
  DSV4_CHECK(p.base > 1.0, ConfigError, "rope: the base (rope_theta) must exceed 1, got {}",
             p.base);
  const auto half = static_cast<std::size_t>(p.rope_dim / 2);
  const auto dim_f = static_cast<float>(p.rope_dim);
  const auto base_f = static_cast<float>(p.base);
  std::vector<float> freqs(half);
  for (std::size_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / dim_f;
    freqs[i] = 1.0f / std::pow(base_f, e);
  }
  if (p.original_seq_len > 0) {
    DSV4_CHECK(p.factor > 0.0 && p.beta_fast > 0.0 && p.beta_slow > 0.0, ConfigError,
               "rope: YaRN needs a positive factor, beta_fast and beta_slow, got {}, {}, {}",
               p.factor, p.beta_fast, p.beta_slow);
    const auto dim_d = static_cast<double>(p.rope_dim);
    auto correction_dim = [&](double rotations) {
      return dim_d *
             std::log(static_cast<double>(p.original_seq_len) /
                      (rotations * 2.0 * std::numbers::pi)) /
             (2.0 * std::log(p.base));
    };
    const double lo = std::max(std::floor(correction_dim(p.beta_fast)), 0.0);
    double hi = std::min(std::ceil(correction_dim(p.beta_slow)), dim_d - 1.0);
    if (lo == hi) hi += 0.001;
    const auto span = static_cast<float>(hi - lo);
    const auto lo_f = static_cast<float>(lo);
    const auto factor_f = static_cast<float>(p.factor);
    for (std::size_t i = 0; i < half; ++i) {
      const float ramp = std::clamp((static_cast<float>(i) - lo_f) / span, 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;
      freqs[i] = freqs[i] / factor_f * (1.0f - smooth) + freqs[i] * smooth;
    }
  }
  return freqs;
}

/// The rotary embedding of one layer: its frequency table and the valid position range.
class Rope {
 public:
  Rope() = default;
  explicit Rope(const RopeParams& p) : params_(p), freqs_(rope_frequencies(p)) {
    DSV4_CHECK(p.max_seq_len > 0, ConfigError, "rope: max_seq_len must be positive, got {}",
               p.max_seq_len);
  }

  /// The table the reference builds for a layer of compress ratio `ratio` (spec §3.4):
  /// ratio 0 → rope_theta without YaRN; ratio > 0 → compress_rope_theta with YaRN.
  static Rope for_layer(const ModelConfig& cfg, int ratio) {
    RopeParams p;
    p.rope_dim = cfg.rope_head_dim;
    p.max_seq_len = cfg.max_seq_len;
    p.factor = cfg.rope_factor;
    p.beta_fast = cfg.beta_fast;
    p.beta_slow = cfg.beta_slow;
    if (ratio == 0) {
      p.base = cfg.rope_theta;
      p.original_seq_len = 0;
    } else {
      p.base = cfg.compress_rope_theta;
      p.original_seq_len = cfg.original_seq_len;
    }
    return Rope(p);
  }

  const RopeParams& params() const noexcept { return params_; }
  std::size_t rope_dim() const noexcept { return static_cast<std::size_t>(params_.rope_dim); }
  std::int64_t max_seq_len() const noexcept { return params_.max_seq_len; }
  /// ω_i, [rope_dim / 2].
  std::span<const float> frequencies() const noexcept { return freqs_; }

  /// Throws InputError unless every position in [first, first + count) has an entry.
  void check_positions(std::int64_t first, std::int64_t count) const {
    DSV4_CHECK(first >= 0 && count >= 0 && first + count <= params_.max_seq_len, InputError,
               "rope: positions {}..{} are outside the table of max_seq_len = {} positions "
               "(raise max_seq_len to run longer sequences)",
               first, first + count - 1, params_.max_seq_len);
  }

  /// The checks of a rotation at `pos` of vectors of vec_len values (apply, and a backend's own
  /// rope): InputError for a position outside the table, ShapeError when vec_len < rope_dim.
  void check_call(std::int64_t pos, std::size_t vec_len) const {
    check_positions(pos, 1);
    DSV4_CHECK(vec_len >= rope_dim(), ShapeError,
               "rope: vectors of {} values cannot hold the {} rotated dims", vec_len, rope_dim());
  }

  /// cos θ_i and sin θ_i of θ_i = fp32(pos) · ω_i (float32, as torch.polar of the reference's
  /// table). cos_out, sin_out: [rope_dim / 2].
  void angles(std::int64_t pos, float* cos_out, float* sin_out) const noexcept {
    const auto p = static_cast<float>(pos);
    for (std::size_t i = 0; i < freqs_.size(); ++i) {
      const float theta = p * freqs_[i];
      cos_out[i] = std::cos(theta);
      sin_out[i] = std::sin(theta);
    }
  }

  /// cos θ_i and sin θ_i as ggml's `rope` computes them (llama.cpp's numerics; float32
  /// throughout): θ_0 = fp32(pos), each next θ the previous times base^(−2/rope_dim) (not
  /// fp32(pos)·ω_i); with YaRN (original_seq_len > 0) the angle is θ/factor blended with θ by
  /// ggml's ramp between the correction dims (floor / ceil, clamped, in float), as one FMA, and
  /// cos and sin are scaled by ggml's YaRN magnitude times the attention factor llama.cpp passes
  /// to cancel it (1 / (1 + 0.1·ln factor)), a product that is not always exactly 1.
  void angles_ggml(std::int64_t pos, float* cos_out, float* sin_out) const noexcept {
    const auto n_dims = static_cast<float>(params_.rope_dim);
    const auto base = static_cast<float>(params_.base);
    const bool yarn = params_.original_seq_len > 0;
    const float freq_scale = yarn ? 1.0f / static_cast<float>(params_.factor) : 1.0f;
    const float theta_scale = std::pow(base, -2.0f / n_dims);
    float lo = 0.0f;
    float hi = 0.0f;
    float mscale = 1.0f;
    if (yarn) {
      const auto corr_dim = [&](double rotations) {
        return n_dims *
               std::log(static_cast<float>(params_.original_seq_len) /
                        (static_cast<float>(rotations) * 2.0f * std::numbers::pi_v<float>)) /
               (2.0f * std::log(base));
      };
      lo = std::max(0.0f, std::floor(corr_dim(params_.beta_fast)));
      hi = std::min(n_dims - 1.0f, std::ceil(corr_dim(params_.beta_slow)));
      const float magnitude = 1.0f + 0.1f * std::log(1.0f / freq_scale);
      mscale = (1.0f / magnitude) * magnitude;
    }
    float theta = static_cast<float>(pos);
    for (std::size_t i = 0; i < freqs_.size(); ++i) {
      float t = freq_scale * theta;
      if (yarn) {
        const float y = (static_cast<float>(i) - lo) / std::max(0.001f, hi - lo);
        const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
        t = std::fma(t, 1.0f - ramp, theta * ramp);
      }
      cos_out[i] = std::cos(t) * mscale;
      sin_out[i] = std::sin(t) * mscale;
      theta *= theta_scale;
    }
  }

  /// Rotates the last rope_dim values of `n_vec` vectors of `vec_len` values each, stored back to
  /// back from `x`, all at position `pos`: (re, im) → (re·c − im·s, re·s + im·c) forward, with
  /// s negated for the inverse; results rounded by N. Under ggml_order<N>() the angles are
  /// angles_ggml's and each result is one FMA as ggml's rotation: fma(re, c, −im·s) and
  /// fma(re, s, im·c). Throws InputError for a position outside the table and ShapeError when
  /// vec_len < rope_dim.
  template <NumericsPolicy N>
  void apply(float* x, std::size_t n_vec, std::size_t vec_len, std::int64_t pos,
             RopeDirection dir = RopeDirection::forward) const {
    check_call(pos, vec_len);
    const std::size_t half = freqs_.size();
    ScratchBuffer<float> cs(2 * half);
    if constexpr (ggml_order<N>()) {
      angles_ggml(pos, cs.data(), cs.data() + half);
    } else {
      angles(pos, cs.data(), cs.data() + half);
    }
    const float sign = dir == RopeDirection::inverse ? -1.0f : 1.0f;
    for (std::size_t v = 0; v < n_vec; ++v) {
      float* r = x + v * vec_len + (vec_len - rope_dim());  // [rope_dim]
      for (std::size_t i = 0; i < half; ++i) {
        const float re = r[2 * i];
        const float im = r[2 * i + 1];
        const float c = cs[i];
        const float s = sign * cs[half + i];  // conj() negates the imaginary part exactly
        if constexpr (ggml_order<N>()) {
          r[2 * i] = N::round(std::fma(re, c, -(im * s)));
          r[2 * i + 1] = N::round(std::fma(re, s, im * c));
        } else {
          r[2 * i] = N::round(re * c - im * s);
          r[2 * i + 1] = N::round(re * s + im * c);
        }
      }
    }
  }

 private:
  RopeParams params_;
  std::vector<float> freqs_;
};

}  // namespace dsv4
