// GGUF quantization recipes: the per-tensor type choice of `dsv4 quantize`, matching llama.cpp's
// `llama-quantize` for the `deepseek4` architecture (pure logic, no I/O).
//
// Spec: spec/formats.md §10.3 (GGUF); mirrors llama.cpp `src/llama-quant.cpp`
// (`tensor_allows_quantization`, `llama_tensor_get_type_impl`, `tensor_type_fallback`,
// `llama_ftype_get_default_type`) at commit 82bb485, checked tensor by tensor against that
// commit's output listings in tests/data/llamacpp/listings.
//
// The rules, in our own words
// ---------------------------
// Which tensors are quantized at all (`should_quantize`): only tensors with at least two
// non-trivial dimensions (ggml drops trailing 1s) whose name ends in "weight" and is none of:
// a norm ("_norm.weight": attn_norm, q_a_norm, kv_a_norm, compressor norms, nextn.enorm/hnorm,
// shared_head_norm), the router `ffn_gate_inp`, the I32 hash table `ffn_gate_tid2eid`, and a few
// names of other architectures (positional embeddings, conv1d, RWKV, ...). Everything else keeps
// its source type: 1-D tensors (attn_sinks, hc_*_base, hc_*_scale, output_hc_base/scale) and
// `.bias` tensors (exp_probs_b) stay F32. 2-D `hc_*_fn`, `output_hc_fn`, compressor/indexer `ape`,
// `indexer.proj` and the MTP `nextn.eh_proj` ARE quantized like any projection.
//
// The base type comes from the file type (Q4_K_M -> Q4_K, MXFP4_MOE -> MXFP4, F16 -> F16, ...).
// F32/F16/BF16 file types take every quantizable tensor to that type, nothing else. For quantized
// file types, unless `pure`:
//  * output.weight (and token_embd.weight when the file has no output.weight, tied embeddings):
//    MXFP4_MOE -> Q8_0; a row length not divisible by the base block -> Q8_0; Q8_0 stays Q8_0;
//    every other file type -> Q6_K.
//  * MXFP4_MOE: tensors with ne[2] > 1 (the stacked experts *_exps) -> MXFP4, all other
//    quantized tensors (token_embd included) -> Q8_0.
//  * token_embd.weight keeps the base type (Q4_K under Q4_K_M, Q2_K under Q2_K).
//  * attn_v / attn_qkv / attn_kv_b (absent in deepseek4): Q2_K -> Q4_K if n_gqa >= 4 else Q3_K;
//    Q3_K_M -> Q5_K for the first two, then Q4_K; Q3_K_L -> Q5_K; IQ4_NL/IQ4_XS with n_gqa >= 4
//    -> Q5_K; Q4_K_M/Q5_K_M -> Q6_K on "more bits" layers; Q4_K_S -> Q5_K for the first four;
//    8-expert models -> Q8_0.
//  * ffn_down* (ffn_down_exps and ffn_down_shexp alike; the layer is read from "blk.N." when the
//    model has experts, the layer count is block_count including MTP blocks): Q2_K -> Q3_K;
//    Q3_K_M -> Q5_K below n/16, else Q4_K; Q3_K_L -> Q5_K; Q4_K_M and Q5_K_M -> Q6_K on "more bits"
//    layers (i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2); Q4_K_S -> Q5_K and IQ4_NL/IQ4_XS -> Q5_K
//    below n/8.
//  * attn_output.weight (absent in deepseek4: attn_output_a/_b do not match): 8-expert models
//    get Q5_K for the low-bit types; otherwise Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K.
//  * attn_k (8 experts) -> Q8_0; attn_qkv: Q3_K_M/Q3_K_L -> Q4_K, Q4_K_M -> Q5_K, Q5_K_M -> Q6_K.
//  * everything else (attn_q_a/b, attn_kv, attn_output_a/b, compressor, indexer, hc_*_fn, shared
//    experts, nextn.eh_proj, MTP block tensors) gets the base type.
// With `pure` none of the above applies: every quantizable tensor gets the base type.
// llama-quantize's per-tensor options (TypeOverrides) come first: --leave-output-tensor keeps
// output.weight in its source type; --token-embedding-type and --output-tensor-type give
// token_embd / output.weight their type outright (no fallback; the output type also goes to a
// tied token_embd through the rules); --tensor-type patterns (first match) replace the rules for
// the tensors they name when the base type is quantized, the fallback still applying.
// Then, pure or not, the fallback: when ne[0] is not a multiple of the chosen type's block,
// 256-element k-quants fall back to a 32-element type (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0, IQ4_XS and the IQ1/2/3 types -> IQ4_NL), and to F16 when even 32
// does not divide the row; a 32-element type (Q8_0, Q4_0, MXFP4, ...) goes to F16 directly.
// With an importance matrix (ModelFacts::has_imatrix) IQ4_NL/IQ4_XS keep their ffn_down type and
// Q4_0/Q5_0 give the first eighth of ffn_down Q4_1/Q5_1, as llama-quantize does. On the tiny model
// (rows of 32 and 64) this is what turns Q4_K_M's attn_q_b into Q5_0 and its "more bits" ffn_down
// (Q6_K) into Q8_0.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/formats/concepts.hpp"

namespace dsv4::gguf {

/// ggml type ids that dsv4 has no storage format for but a recipe or a GGUF file can name.
namespace ggml_id {
inline constexpr FormatId iq2_xxs{16};
inline constexpr FormatId iq2_xs{17};
inline constexpr FormatId iq3_xxs{18};
inline constexpr FormatId iq1_s{19};
inline constexpr FormatId iq3_s{21};
inline constexpr FormatId iq2_s{22};
inline constexpr FormatId i8{24};
inline constexpr FormatId i16{25};
inline constexpr FormatId i32{26};
inline constexpr FormatId i64{27};
inline constexpr FormatId f64{28};
inline constexpr FormatId iq1_m{29};
inline constexpr FormatId tq1_0{34};
inline constexpr FormatId tq2_0{35};
}  // namespace ggml_id

/// Storage layout of one ggml type: `block_elems` values take `block_bytes` bytes.
struct TypeTraits {
  std::string_view name;  ///< ggml's spelling ("Q4_K", "F32", ...)
  std::int64_t block_elems;
  std::int64_t block_bytes;
  bool quantized;  ///< ggml_is_quantized: block-quantized (not F32/F16/BF16/integers)
};

/// Traits of a ggml type id, or nullopt for ids this table does not know.
constexpr std::optional<TypeTraits> type_traits(FormatId t) noexcept {
  switch (static_cast<std::uint32_t>(t)) {
    case 0:
      return TypeTraits{"F32", 1, 4, false};
    case 1:
      return TypeTraits{"F16", 1, 2, false};
    case 2:
      return TypeTraits{"Q4_0", 32, 18, true};
    case 3:
      return TypeTraits{"Q4_1", 32, 20, true};
    case 6:
      return TypeTraits{"Q5_0", 32, 22, true};
    case 7:
      return TypeTraits{"Q5_1", 32, 24, true};
    case 8:
      return TypeTraits{"Q8_0", 32, 34, true};
    case 9:
      return TypeTraits{"Q8_1", 32, 36, true};
    case 10:
      return TypeTraits{"Q2_K", 256, 84, true};
    case 11:
      return TypeTraits{"Q3_K", 256, 110, true};
    case 12:
      return TypeTraits{"Q4_K", 256, 144, true};
    case 13:
      return TypeTraits{"Q5_K", 256, 176, true};
    case 14:
      return TypeTraits{"Q6_K", 256, 210, true};
    case 15:
      return TypeTraits{"Q8_K", 256, 292, true};
    case 16:
      return TypeTraits{"IQ2_XXS", 256, 66, true};
    case 17:
      return TypeTraits{"IQ2_XS", 256, 74, true};
    case 18:
      return TypeTraits{"IQ3_XXS", 256, 98, true};
    case 19:
      return TypeTraits{"IQ1_S", 256, 50, true};
    case 20:
      return TypeTraits{"IQ4_NL", 32, 18, true};
    case 21:
      return TypeTraits{"IQ3_S", 256, 110, true};
    case 22:
      return TypeTraits{"IQ2_S", 256, 82, true};
    case 23:
      return TypeTraits{"IQ4_XS", 256, 136, true};
    case 24:
      return TypeTraits{"I8", 1, 1, false};
    case 25:
      return TypeTraits{"I16", 1, 2, false};
    case 26:
      return TypeTraits{"I32", 1, 4, false};
    case 27:
      return TypeTraits{"I64", 1, 8, false};
    case 28:
      return TypeTraits{"F64", 1, 8, false};
    case 29:
      return TypeTraits{"IQ1_M", 256, 56, true};
    case 30:
      return TypeTraits{"BF16", 1, 2, false};
    case 34:
      return TypeTraits{"TQ1_0", 256, 54, true};
    case 35:
      return TypeTraits{"TQ2_0", 256, 66, true};
    case 39:
      return TypeTraits{"MXFP4", 32, 17, true};
    default:
      return std::nullopt;
  }
}

/// Traits of `t`; throws FormatError for an unknown id.
inline TypeTraits traits_of(FormatId t) {
  const auto tr = type_traits(t);
  DSV4_CHECK(tr.has_value(), FormatError,
             "gguf: unknown ggml type id {} (expected one of the ggml types dsv4 knows)",
             static_cast<std::uint32_t>(t));
  return *tr;
}

/// ggml's name of a type ("Q4_K"); "?" for unknown ids.
constexpr std::string_view type_name(FormatId t) noexcept {
  const auto tr = type_traits(t);
  return tr ? tr->name : std::string_view{"?"};
}

/// Type id from ggml's spelling ("Q8_0", "f16" — case-insensitive); nullopt if unknown.
constexpr std::optional<FormatId> type_from_name(std::string_view name) noexcept {
  auto upper_eq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char c = a[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (c != b[i]) return false;
    }
    return true;
  };
  for (std::uint32_t id = 0; id < 40; ++id) {
    const auto tr = type_traits(FormatId{id});
    if (tr && upper_eq(name, tr->name)) return FormatId{id};
  }
  return std::nullopt;
}

/// Bytes of one row of `n` values of type `t` (ggml_row_size). Throws ShapeError when `n` is not
/// a multiple of the type's block, FormatError for an unknown type.
inline std::int64_t row_bytes(FormatId t, std::int64_t n) {
  const TypeTraits tr = traits_of(t);
  DSV4_CHECK(n >= 0 && n % tr.block_elems == 0, ShapeError,
             "gguf row_bytes: row of {} values is not a multiple of the {} block (expected a "
             "multiple of {})",
             n, tr.name, tr.block_elems);
  return n / tr.block_elems * tr.block_bytes;
}

/// Bytes of a whole tensor `ne` (ne0 first) stored as `t`: row_bytes(ne0) x the other dims.
inline std::int64_t tensor_bytes(FormatId t, std::span<const std::int64_t> ne) {
  DSV4_CHECK(!ne.empty(), ShapeError, "gguf tensor_bytes: empty shape (expected >= 1 dim)");
  std::int64_t rows = 1;
  for (std::size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  return row_bytes(t, ne[0]) * rows;
}

/// llama_ftype: the file type a recipe is named after (values are llama.cpp's).
enum class FileType : std::uint32_t {
  all_f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q8_0 = 7,
  q5_0 = 8,
  q5_1 = 9,
  q2_k = 10,
  q3_k_s = 11,
  q3_k_m = 12,
  q3_k_l = 13,
  q4_k_s = 14,
  q4_k_m = 15,
  q5_k_s = 16,
  q5_k_m = 17,
  q6_k = 18,
  iq4_nl = 25,
  iq4_xs = 30,
  bf16 = 32,
  mxfp4_moe = 38,
};

struct FileTypeInfo {
  FileType type;
  std::string_view name;  ///< as llama-quantize spells it on its command line
  FormatId base;          ///< llama_ftype_get_default_type
};

/// Every file type dsv4 quantize offers.
inline constexpr std::array<FileTypeInfo, 20> kFileTypes{{
    {FileType::all_f32, "F32", FormatId::f32},
    {FileType::f16, "F16", FormatId::f16},
    {FileType::bf16, "BF16", FormatId::bf16},
    {FileType::q8_0, "Q8_0", FormatId::q8_0},
    {FileType::q6_k, "Q6_K", FormatId::q6_k},
    {FileType::q5_k_m, "Q5_K_M", FormatId::q5_k},
    {FileType::q5_k_s, "Q5_K_S", FormatId::q5_k},
    {FileType::q5_1, "Q5_1", FormatId::q5_1},
    {FileType::q5_0, "Q5_0", FormatId::q5_0},
    {FileType::q4_k_m, "Q4_K_M", FormatId::q4_k},
    {FileType::q4_k_s, "Q4_K_S", FormatId::q4_k},
    {FileType::q4_1, "Q4_1", FormatId::q4_1},
    {FileType::q4_0, "Q4_0", FormatId::q4_0},
    {FileType::iq4_nl, "IQ4_NL", FormatId::iq4_nl},
    {FileType::iq4_xs, "IQ4_XS", FormatId::iq4_xs},
    {FileType::q3_k_l, "Q3_K_L", FormatId::q3_k},
    {FileType::q3_k_m, "Q3_K_M", FormatId::q3_k},
    {FileType::q3_k_s, "Q3_K_S", FormatId::q3_k},
    {FileType::q2_k, "Q2_K", FormatId::q2_k},
    {FileType::mxfp4_moe, "MXFP4_MOE", FormatId::mxfp4},
}};

/// Info of a file type; throws ConfigError for a value outside kFileTypes.
inline const FileTypeInfo& file_type_info(FileType ft) {
  for (const auto& i : kFileTypes)
    if (i.type == ft) return i;
  throw ConfigError(
      fmt::format("gguf: unsupported file type {} (expected one of the llama_ftype "
                  "values dsv4 quantize offers)",
                  static_cast<std::uint32_t>(ft)));
}

/// llama-quantize's name of a file type ("Q4_K_M").
inline std::string_view file_type_name(FileType ft) { return file_type_info(ft).name; }

/// The base tensor type of a file type (Q4_K_M -> Q4_K).
inline FormatId base_type(FileType ft) { return file_type_info(ft).base; }

/// File type from its llama-quantize name, case-insensitive; "Q3_K", "Q4_K", "Q5_K" are the _M
/// variants as in llama-quantize. nullopt when unknown.
constexpr std::optional<FileType> file_type_from_name(std::string_view name) noexcept {
  auto eq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char c = a[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (c != b[i]) return false;
    }
    return true;
  };
  if (eq(name, "Q3_K")) return FileType::q3_k_m;
  if (eq(name, "Q4_K")) return FileType::q4_k_m;
  if (eq(name, "Q5_K")) return FileType::q5_k_m;
  for (const auto& i : kFileTypes)
    if (eq(name, i.name)) return i.type;
  return std::nullopt;
}

/// One tensor as the recipe sees it. `ne` is ggml order (ne0 = row length first).
struct TensorInfo {
  std::string_view name;
  std::span<const std::int64_t> ne;
  FormatId source = FormatId::f32;  ///< type in the input file (kept when not quantized)
};

/// Model facts a recipe needs (from the GGUF metadata).
struct ModelFacts {
  int n_layers = 0;          ///< `block_count`, MTP blocks included
  int n_expert = 0;          ///< `expert_count` (0 for dense models)
  int n_head = 1;            ///< `attention.head_count`
  int n_head_kv = 1;         ///< `attention.head_count_kv`
  bool has_output = true;    ///< the file has `output.weight` (false: token_embd is tied)
  bool has_imatrix = false;  ///< quantized with an importance matrix (changes a few choices)
  constexpr int n_gqa() const noexcept { return n_head_kv > 0 ? n_head / n_head_kv : 0; }
};

/// ggml_n_dims: number of dimensions once trailing size-1 dims are dropped (at least 1).
constexpr int n_dims(std::span<const std::int64_t> ne) noexcept {
  int n = static_cast<int>(ne.size());
  while (n > 1 && ne[static_cast<std::size_t>(n - 1)] == 1) --n;
  return n < 1 ? 1 : n;
}

namespace detail {
constexpr bool contains(std::string_view s, std::string_view part) noexcept {
  return s.find(part) != std::string_view::npos;
}
constexpr bool ends_with(std::string_view s, std::string_view tail) noexcept {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}
/// Layer index of "blk.N.<...>", or -1.
constexpr int layer_of(std::string_view name) noexcept {
  if (name.substr(0, 4) != "blk.") return -1;
  std::size_t i = 4;
  int v = 0;
  bool any = false;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    v = v * 10 + (name[i] - '0');
    ++i;
    any = true;
  }
  return any && i < name.size() && name[i] == '.' ? v : -1;
}
}  // namespace detail

/// Does llama-quantize quantize this tensor at all? (tensor_allows_quantization)
constexpr bool should_quantize(std::string_view name, std::span<const std::int64_t> ne) noexcept {
  using detail::contains;
  if (n_dims(ne) < 2) return false;
  if (!detail::ends_with(name, "weight")) return false;
  constexpr std::string_view kExcluded[] = {"_norm.weight",
                                            "ffn_gate_inp.weight",
                                            "ffn_gate_tid2eid.weight",
                                            "altup",
                                            "laurel",
                                            "per_layer_model_proj",
                                            "ssm_conv1d",
                                            "shortconv.conv.weight",
                                            "indexer.k_proj.weight",
                                            "indexer.q_proj.weight",
                                            "time_mix_first.weight",
                                            "time_mix_w0.weight",
                                            "time_mix_w1.weight",
                                            "time_mix_w2.weight",
                                            "time_mix_v0.weight",
                                            "time_mix_v1.weight",
                                            "time_mix_v2.weight",
                                            "time_mix_a0.weight",
                                            "time_mix_a1.weight",
                                            "time_mix_a2.weight",
                                            "time_mix_g1.weight",
                                            "time_mix_g2.weight",
                                            "time_mix_decay_w1.weight",
                                            "time_mix_decay_w2.weight",
                                            "time_mix_lerp_fused.weight",
                                            "attn_rel_b.weight",
                                            ".position_embd",
                                            "sam.pos_embd",
                                            "sam.neck.",
                                            "sam.net_",
                                            ".rel_pos",
                                            ".patch_embd",
                                            ".patch_merger",
                                            "a.rvq.codebook",
                                            "mm.a.code_embd"};
  for (std::string_view part : kExcluded)
    if (contains(name, part)) return false;
  if (name == "position_embd.weight" || name == "token_types.weight") return false;
  return true;
}

/// The fallback when a row of `ncols` values does not fill whole blocks of `target`
/// (tensor_type_fallback of llama.cpp as vendored in llama-cpp-python 0.3.36): a 256-value type
/// falls back to its 32-value partner, and a row that does not fit that (or a 32-value target
/// itself) is written as F16. Returns `target` when it fits. Throws FormatError for a target
/// with larger blocks and no partner.
inline FormatId fallback_type(FormatId target, std::int64_t ncols) {
  const TypeTraits tr = traits_of(target);
  if (ncols % tr.block_elems == 0) return target;
  // the 256-element types on the left fall back to the 32-element type on the right
  constexpr std::pair<FormatId, FormatId> kTable[] = {
      {ggml_id::iq1_s, FormatId::iq4_nl},   {ggml_id::iq1_m, FormatId::iq4_nl},
      {ggml_id::iq2_xxs, FormatId::iq4_nl}, {ggml_id::iq2_xs, FormatId::iq4_nl},
      {ggml_id::iq2_s, FormatId::iq4_nl},   {ggml_id::iq3_xxs, FormatId::iq4_nl},
      {ggml_id::iq3_s, FormatId::iq4_nl},   {FormatId::iq4_xs, FormatId::iq4_nl},
      {FormatId::q2_k, FormatId::q4_0},     {FormatId::q3_k, FormatId::q4_0},
      {ggml_id::tq1_0, FormatId::q4_0},     {ggml_id::tq2_0, FormatId::q4_0},
      {FormatId::q4_k, FormatId::q5_0},     {FormatId::q5_k, FormatId::q5_1},
      {FormatId::q6_k, FormatId::q8_0}};
  std::optional<FormatId> found;
  for (const auto& [from, to] : kTable)
    if (from == target) found = to;
  if (!found.has_value() && tr.block_elems <= 32) found = target;  // no smaller block: F16 below
  DSV4_CHECK(found.has_value(), FormatError,
             "gguf fallback: rows of {} values do not fit {} blocks of {} and {} has no fallback "
             "type",
             ncols, tr.name, tr.block_elems, tr.name);
  FormatId out = *found;
  if (ncols % traits_of(out).block_elems != 0) out = FormatId::f16;
  return out;
}

/// Broad tensor roles the rules key on (llama.cpp's tensor_category).
enum class Category {
  token_embd,
  attn_q,
  attn_v,
  attn_k,
  attn_qkv,
  attn_kv_b,
  attn_output,
  ffn_up,
  ffn_gate,
  ffn_down,
  output,
  other
};

/// Category of a tensor name (substring rules, first match wins, as llama.cpp).
constexpr Category category_of(std::string_view name) noexcept {
  using detail::contains;
  if (name == "output.weight") return Category::output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight")
    return Category::token_embd;
  if (contains(name, "attn_qkv.weight")) return Category::attn_qkv;
  if (contains(name, "attn_kv_b.weight")) return Category::attn_kv_b;
  if (contains(name, "attn_v.weight")) return Category::attn_v;
  if (contains(name, "attn_k.weight")) return Category::attn_k;
  if (contains(name, "attn_q.weight")) return Category::attn_q;
  if (contains(name, "attn_output.weight")) return Category::attn_output;
  if (contains(name, "ffn_up")) return Category::ffn_up;
  if (contains(name, "ffn_gate")) return Category::ffn_gate;
  if (contains(name, "ffn_down")) return Category::ffn_down;
  return Category::other;
}

/// llama.cpp's "use more bits" layer pattern: the first and last eighth and every third layer.
constexpr bool use_more_bits(int i_layer, int n_layers) noexcept {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/// Sort order in which llama-quantize visits (and writes) tensors: tensors outside blocks first,
/// then by block number, then by name (llama_model_loader's weight_name_comparer).
constexpr bool llama_order_less(std::string_view a, std::string_view b) noexcept {
  const int la = detail::layer_of(a);
  const int lb = detail::layer_of(b);
  if (la != lb) return la < lb;
  return a < b;
}

/// llama-quantize's options that override the recipe per tensor.
struct TypeOverrides {
  bool quantize_output = true;                   ///< false: --leave-output-tensor
  std::optional<FormatId> output_type;           ///< --output-tensor-type
  std::optional<FormatId> token_embedding_type;  ///< --token-embedding-type
  /// --tensor-type NAME=TYPE: the type of the first pattern that matches a tensor name (the
  /// caller matches; llama-quantize searches each lower-cased NAME as a regular expression).
  std::function<std::optional<FormatId>(std::string_view)> tensor_type;
};

/// The per-tensor type choice of one quantization run. Feed the tensors in llama_order_less
/// order (as `plan_types` does): a few rules count attn_v tensors as they go.
class Recipe {
 public:
  /// `n_attention_wv`: how many attn_v / attn_qkv / attn_kv_b tensors the model has (0 for
  /// deepseek4); `pure`: every quantizable tensor gets the base type (plus fallbacks).
  Recipe(FileType ft, const ModelFacts& model, bool pure, int n_attention_wv = 0,
         TypeOverrides overrides = {})
      : ft_(ft),
        base_(base_type(ft)),
        model_(model),
        pure_(pure),
        overrides_(std::move(overrides)),
        n_attention_wv_(n_attention_wv) {
    DSV4_CHECK(model.n_layers > 0, ConfigError,
               "gguf recipe: n_layers is {} (expected block_count > 0)", model.n_layers);
  }

  /// Type of one tensor. Throws ShapeError for a block index outside [0, n_layers) in a MoE
  /// model, FormatError when no fallback fits.
  FormatId choose(const TensorInfo& t) {
    DSV4_CHECK(!t.ne.empty(), ShapeError, "gguf recipe: tensor '{}' has an empty shape", t.name);
    if (!should_quantize(t.name, t.ne)) return t.source;
    const TypeOverrides& ov = overrides_;
    if (!ov.quantize_output && t.name == "output.weight") return t.source;
    const Category cat = category_of(t.name);
    const std::optional<FormatId> manual =
        ov.tensor_type ? ov.tensor_type(t.name) : std::optional<FormatId>{};
    // per_layer_token_embd follows --token-embedding-type unless a --tensor-type names it
    if (ov.token_embedding_type && cat == Category::token_embd &&
        !(t.name == "per_layer_token_embd.weight" && manual)) {
      return *ov.token_embedding_type;
    }
    if (ov.output_type && cat == Category::output) return *ov.output_type;
    FormatId type = base_;
    if (!traits_of(base_).quantized) return type;
    if (manual) {
      type = *manual;
    } else if (!pure_) {
      type = rules(t, type);
    }
    try {
      return fallback_type(type, t.ne[0]);
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("tensor '{}': {}", t.name, e.what()));
    }
  }

 private:
  using F = FileType;
  bool is(F a) const noexcept { return ft_ == a; }

  int layer_for(const TensorInfo& t, int counter) const {
    if (std::max(1, model_.n_expert) <= 1) return counter;
    const int layer = detail::layer_of(t.name);
    DSV4_CHECK(layer >= 0 && layer < model_.n_layers, ShapeError,
               "gguf recipe: tensor '{}' has block {} (expected blk.N. with N in [0, {}))", t.name,
               layer, model_.n_layers);
    return layer;
  }

  FormatId rules(const TensorInfo& t, FormatId type) {
    const Category cat = category_of(t.name);
    const int n = model_.n_layers;
    if (cat == Category::output || (!model_.has_output && cat == Category::token_embd)) {
      if (overrides_.output_type) return *overrides_.output_type;
      if (is(F::mxfp4_moe) || t.ne[0] % traits_of(type).block_elems != 0) return FormatId::q8_0;
      return type == FormatId::q8_0 ? type : FormatId::q6_k;
    }
    if (is(F::mxfp4_moe)) {
      return t.ne.size() > 2 && t.ne[2] > 1 ? FormatId::mxfp4 : FormatId::q8_0;
    }
    if (cat == Category::token_embd) return type;
    if (cat == Category::attn_v || cat == Category::attn_qkv || cat == Category::attn_kv_b) {
      const int gqa = model_.n_gqa();
      if (is(F::q2_k)) {
        type = gqa >= 4 ? FormatId::q4_k : FormatId::q3_k;
      } else if (is(F::q3_k_m)) {
        type = i_attention_wv_ < 2 ? FormatId::q5_k : FormatId::q4_k;
      } else if (is(F::q3_k_l)) {
        type = FormatId::q5_k;
      } else if ((is(F::iq4_nl) || is(F::iq4_xs)) && gqa >= 4) {
        type = FormatId::q5_k;
      } else if ((is(F::q4_k_m) || is(F::q5_k_m)) &&
                 use_more_bits(i_attention_wv_, n_attention_wv_)) {
        type = FormatId::q6_k;
      } else if (is(F::q4_k_s) && i_attention_wv_ < 4) {
        type = FormatId::q5_k;
      }
      if (model_.n_expert == 8) type = FormatId::q8_0;
      ++i_attention_wv_;
      return type;
    }
    if (cat == Category::attn_k) return model_.n_expert == 8 ? FormatId::q8_0 : type;
    if (cat == Category::ffn_down) {
      const int i = layer_for(t, i_ffn_down_);
      if (is(F::q2_k)) {
        type = FormatId::q3_k;
      } else if (is(F::q3_k_m)) {
        type = i < n / 16 ? FormatId::q5_k : FormatId::q4_k;
      } else if (is(F::q3_k_l)) {
        type = FormatId::q5_k;
      } else if (is(F::q4_k_m)) {
        if (use_more_bits(i, n)) type = FormatId::q6_k;
      } else if (i < n / 8 && (is(F::iq4_nl) || is(F::iq4_xs)) && !model_.has_imatrix) {
        type = FormatId::q5_k;
      } else if (is(F::q5_k_m) && use_more_bits(i, n)) {
        type = FormatId::q6_k;
      } else if (is(F::q4_k_s) && i < n / 8) {
        type = FormatId::q5_k;
      } else if ((is(F::q4_0) || is(F::q5_0)) && model_.has_imatrix && i < n / 8) {
        // llama-quantize guards the first ffn_down layers of Q4_0/Q5_0 only with an imatrix
        type = is(F::q4_0) ? FormatId::q4_1 : FormatId::q5_1;
      }
      ++i_ffn_down_;
      return type;
    }
    if (cat == Category::attn_output) {
      if (model_.n_expert == 8) {
        if (is(F::q2_k) || is(F::q3_k_s) || is(F::q3_k_m) || is(F::iq4_nl) || is(F::q4_k_s) ||
            is(F::q4_k_m) || is(F::iq4_xs))
          type = FormatId::q5_k;
      } else if (is(F::q2_k)) {
        type = FormatId::q3_k;
      } else if (is(F::q3_k_m)) {
        type = FormatId::q4_k;
      } else if (is(F::q3_k_l)) {
        type = FormatId::q5_k;
      }
      return type;
    }
    return type;  // everything else keeps the base type
  }

  FileType ft_;
  FormatId base_;
  ModelFacts model_;
  bool pure_;
  TypeOverrides overrides_;
  int n_attention_wv_;
  int i_attention_wv_ = 0;
  int i_ffn_down_ = 0;
};

/// Types of a whole model's tensors, in the order given (visited internally in llama.cpp's
/// order so the counting rules see what llama-quantize sees).
inline std::vector<FormatId> plan_types(FileType ft, ModelFacts model,
                                        std::span<const TensorInfo> tensors, bool pure,
                                        const TypeOverrides& overrides = {}) {
  std::vector<std::size_t> order(tensors.size());
  int n_wv = 0;
  model.has_output = false;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    order[i] = i;
    const Category c = category_of(tensors[i].name);
    if (c == Category::attn_v || c == Category::attn_qkv || c == Category::attn_kv_b) ++n_wv;
    if (c == Category::output) model.has_output = true;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return llama_order_less(tensors[a].name, tensors[b].name);
  });
  Recipe recipe(ft, model, pure, n_wv, overrides);
  std::vector<FormatId> out(tensors.size());
  for (std::size_t i : order) out[i] = recipe.choose(tensors[i]);
  return out;
}

}  // namespace dsv4::gguf
