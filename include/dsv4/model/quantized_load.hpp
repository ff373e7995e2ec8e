// Loading a model with its projections quantized in memory, and measuring what that does to the
// logits.
//
// Every weight the model takes through its `Lin` / `ExpertLin` policies (attention wq_a, wq_b,
// wkv, wo_b, the indexer's wq_b, the routed and shared experts' w1/w2/w3, the MTP e_proj/h_proj)
// is read as floats from a tensor source (a checkpoint, an F32 GGUF through io::GgufModel) and
// quantized to a storage format chosen per tensor by a `WeightPlan`: one format everywhere
// (`uniform_plan`), one of llama-quantize's recipes (`gguf_recipe_plan`: Q4_K_M keeps some
// tensors at Q6_K, MXFP4_MOE puts the experts in MXFP4 and the rest in Q8_0, ...), or the
// official release's split (`official_release_plan`: FP8_B128 projections, FP4_G32 routed
// experts). The tensors the model holds as float (embedding, LM head, wo_a, compressors, the
// indexer's weights_proj, routers, hyper-connection mixers) stay as they are, unless the plan
// rounds them through a format too (a recipe with RecipeScope::all_tensors: what a GGUF file of
// that recipe holds, so the model computes what it computes from that file).
//
// Spec: spec/formats.md §9.3-9.6 (native formats and their GEMM semantics), §10.3 (GGUF types and
// llama-quantize's recipes); formats/linear.hpp for the two dot semantics; docs/quantization.md
// for the measured table.
//
// How the plan reaches the weights: load_quantized wraps the tensor source in a QuantizingSource,
// whose load_linear hook (io::load_linear) quantizes every QuantizedLinear projection as the plan
// says, and whose to_float rounds the other tensors when the plan asks for it (RecipeScope::
// all_tensors: the values a GGUF file of that recipe holds). Any source works: a checkpoint, or
// a GGUF file through io::GgufModel.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/io/checkpoint.hpp"
#include "dsv4/io/gguf_model.hpp"
#include "dsv4/io/tensor_load.hpp"
#include "dsv4/layers/mhc.hpp"
#include "dsv4/model/model.hpp"

namespace dsv4 {

// ---- formats and semantics at run time ----------------------------------------------------------

/// The dot a quantized projection computes (formats/linear.hpp): `partner` is PartnerDot (x
/// quantized to the format's activation partner: llama.cpp's CPU numerics for GGUF types, the
/// reference's act_quant + FP8/FP4 GEMM for the native ones), `dequant` is DequantDot (fp32 dot of
/// the dequantized weight with x as it is: the weight's error alone).
enum class DotSemantics { partner, dequant };

constexpr std::string_view dot_semantics_name(DotSemantics s) noexcept {
  return s == DotSemantics::partner ? PartnerDot::name : DequantDot::name;
}

namespace detail::quantized_load {
template <class... Fs>
constexpr bool id_in(FormatId f, type_list<Fs...>*) noexcept {
  return ((Fs::id == f) || ...);
}
}  // namespace detail::quantized_load

/// Whether `f` is a format a projection can be quantized to (LinearFormats).
constexpr bool is_weight_format(FormatId f) noexcept {
  return detail::quantized_load::id_in(f, static_cast<LinearFormats*>(nullptr));
}

/// Values per block the input width of a [out, in] weight in format `f` must be a multiple of:
/// the format's block and, for PartnerDot, its activation partner's block.
inline std::size_t required_in_multiple(FormatId f, DotSemantics s) {
  return visit_format(f, [&]<class F>() -> std::size_t {
    if constexpr (DotFormat<F>) {
      if (s == DotSemantics::partner) return std::max(F::block_elems, F::activation::block_elems);
    }
    return F::block_elems;
  });
}

/// The format a weight with `in_features` inputs actually gets when `f` is asked for: `f` when
/// the width fits, else the GGUF fallback (llama-quantize's tensor_type_fallback: 256-value
/// k-quants and IQ4_XS to a 32-value type, F16 when even 32 does not divide), or BF16 for the
/// native formats (the release's unquantized storage). Throws FormatError for non-weight formats.
inline FormatId fit_format(FormatId f, std::size_t in_features, DotSemantics s) {
  DSV4_CHECK(is_weight_format(f), FormatError,
             "quantized load: format id {} is not a weight format (expected one of F32, F16, "
             "BF16, the GGUF block formats, FP8_B128, FP4_G32)",
             static_cast<std::uint32_t>(f));
  if (in_features % required_in_multiple(f, s) == 0) return f;
  if (f == FormatId::fp8_b128 || f == FormatId::fp4_g32) return FormatId::bf16;
  if (in_features % 32 != 0) return FormatId::f16;
  return gguf::fallback_type(f, static_cast<std::int64_t>(in_features));
}

/// Bytes a [out, in] weight takes in format `f` as stored: GGUF blocks, or for the native formats
/// the checkpoint's codes plus scales (FP8_B128: one ue8m0 per 128x128 tile; FP4_G32: one per 32
/// inputs of a row).
inline std::uint64_t stored_bytes(FormatId f, std::size_t out, std::size_t in) {
  return visit_format(f, [&]<class F>() -> std::uint64_t {
    if constexpr (PlanarFormat<F>) {
      return std::uint64_t{out} * F::codes_per_row(in) * sizeof(typename F::code_type) +
             std::uint64_t{F::scale_rows(out)} * F::scale_cols(in) * sizeof(typename F::scale_type);
    } else {
      return std::uint64_t{out} * (in / F::block_elems) * sizeof(typename F::block_type);
    }
  });
}

/// Quantizes w [out, in] to format `f` with semantics `s`: GGUF types with the quantizer
/// llama-quantize runs without an importance matrix (ggml's reference quantizers; IQ4_NL's chunk
/// quantizer, as io/gguf_quantize.hpp), FP8_B128 / FP4_G32 with the release's rule
/// (Linear::quantize). Throws FormatError for a non-weight format, ShapeError when `in` does not
/// fit (see fit_format).
inline AnyLinear quantize_linear(FormatId f, DotSemantics s, ConstView2<float> w) {
  return visit_format(f, [&]<class F>() -> AnyLinear {
    if constexpr (type_list_contains_v<LinearFormats, F> && QuantizableFormat<F>) {
      auto make = [&]<class S>() -> AnyLinear {
        if constexpr (PlanarFormat<F>) {
          return Linear<F, S>::quantize(w);
        } else {
          const std::size_t nb = w.cols / F::block_elems;
          std::vector<typename F::block_type> blocks(w.rows * nb);
          for (std::size_t r = 0; r < w.rows; ++r) {
            for (std::size_t b = 0; b < nb; ++b) {
              const float* in = w.row(r) + b * F::block_elems;
              if constexpr (requires(typename F::block_type & q) { F::quantize_chunk(in, q); }) {
                F::quantize_chunk(in, blocks[r * nb + b]);
              } else {
                F::quantize(in, blocks[r * nb + b]);
              }
            }
          }
          return Linear<F, S>(std::move(blocks), w.rows, w.cols);  // checks in_features
        }
      };
      if (s == DotSemantics::partner) return make.template operator()<PartnerDot>();
      return make.template operator()<DequantDot>();
    } else {
      throw FormatError(fmt::format(
          "quantize_linear: {} is not a weight format a projection can be quantized to", F::name));
    }
  });
}

// ---- weight plans -------------------------------------------------------------------------------

/// A weight as a plan sees it: a projection [out_features, in_features], or (round_other) another
/// floating tensor with its leading dimensions folded into rows and its last one as the row width.
struct WeightSite {
  std::string_view name;  ///< reference name, e.g. "layers.2.ffn.experts.3.w2.weight"
  std::size_t out_features = 0;
  std::size_t in_features = 0;
};

/// Chooses the storage format of every projection of a model and the dot semantics they run
/// (`choose`, which returns the format the weight gets after any fallback). Optionally also a
/// format for each other floating tensor the model reads as float (embedding, LM head, wo_a,
/// compressors and their ape, the indexer's weights_proj, hyper-connection mixers, norms):
/// `round_other` returns the format its values are rounded through (quantized, then
/// dequantized: the model computes with those values in fp32) or nullopt to keep them; without
/// it every such tensor is kept.
struct WeightPlan {
  std::string name;  ///< e.g. "Q4_K", "Q4_K_M", "FP8+FP4 (release)"
  DotSemantics semantics = DotSemantics::partner;
  std::function<FormatId(const WeightSite&)> choose;
  std::function<std::optional<FormatId>(const WeightSite&)> round_other;
};

/// Every projection in format `f`, except where its input width does not fit (fit_format).
inline WeightPlan uniform_plan(FormatId f, DotSemantics s = DotSemantics::partner) {
  DSV4_CHECK(is_weight_format(f), FormatError, "uniform_plan: format id {} is not a weight format",
             static_cast<std::uint32_t>(f));
  return {std::string(format_info(f).name),
          s,
          [f, s](const WeightSite& w) { return fit_format(f, w.in_features, s); },
          {}};
}

/// Which tensors a recipe plan covers.
enum class RecipeScope {
  projections,  ///< the projections only; every other tensor keeps its stored values
  all_tensors,  ///< also round every other tensor llama-quantize quantizes (token_embd, output,
                ///< attn_output_a, compressors and ape, indexer.proj, hc_*_fn) through its type
};

/// llama-quantize's recipe `ft` for the model `cfg` (formats/gguf_recipe.hpp, decided on the
/// GGUF tensor list: experts stacked, the MTP projections side by side in nextn.eh_proj, mapped
/// back to reference names by io::gguf_tensor_map); `pure` gives every quantized tensor the base
/// type. The recipe's own fallbacks apply to the GGUF row length; fit_format is applied on top
/// for the projection's actual width. With RecipeScope::all_tensors the plan's round_other
/// gives the other tensors the recipe's types (the values a GGUF file of that type holds).
inline WeightPlan gguf_recipe_plan(gguf::FileType ft, const ModelConfig& cfg, bool pure = false,
                                   DotSemantics s = DotSemantics::partner,
                                   RecipeScope scope = RecipeScope::projections) {
  const std::vector<io::GgufTensorMapping> tensors = io::gguf_tensor_map(cfg);
  std::vector<gguf::TensorInfo> infos;
  infos.reserve(tensors.size());
  for (const auto& t : tensors) {
    infos.push_back({t.gguf, t.ne, t.integer ? gguf::ggml_id::i32 : FormatId::f32});
  }
  gguf::ModelFacts facts;
  facts.n_layers = cfg.n_blocks();
  facts.n_expert = static_cast<int>(cfg.n_routed_experts);
  facts.n_head = static_cast<int>(cfg.n_heads);
  facts.n_head_kv = 1;
  const std::vector<FormatId> types = gguf::plan_types(ft, facts, infos, pure);
  auto by_ref = std::make_shared<std::map<std::string, FormatId, std::less<>>>();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    for (const std::string& r : tensors[i].reference) (*by_ref)[r] = types[i];
  }
  std::string name(gguf::file_type_name(ft));
  if (pure) name += " (pure)";
  if (scope == RecipeScope::all_tensors) name += " (all tensors)";
  WeightPlan plan{name, s, {}, {}};
  plan.choose = [by_ref, s, name](const WeightSite& w) {
    const auto it = by_ref->find(w.name);
    DSV4_CHECK(it != by_ref->end(), ConfigError,
               "gguf_recipe_plan {}: tensor '{}' is not a projection of the model the recipe was "
               "made for (a different config?)",
               name, w.name);
    return fit_format(it->second, w.in_features, s);
  };
  if (scope == RecipeScope::all_tensors) {
    plan.round_other = [by_ref](const WeightSite& w) -> std::optional<FormatId> {
      const auto it = by_ref->find(w.name);
      if (it == by_ref->end() || it->second == FormatId::f32 || !is_weight_format(it->second))
        return std::nullopt;  // not in a GGUF file, or kept as F32 (norms, biases, 1-D tensors)
      return fit_format(it->second, w.in_features, DotSemantics::dequant);
    };
  }
  return plan;
}

/// The official release's formats (spec/formats.md §9.2): FP8_B128 for every projection and the
/// shared expert, FP4_G32 for the routed experts (BF16 where a width does not fit).
inline WeightPlan official_release_plan(DotSemantics s = DotSemantics::partner) {
  return {"FP8+FP4 (release)",
          s,
          [s](const WeightSite& w) {
            const bool routed = w.name.find(".ffn.experts.") != std::string_view::npos;
            return fit_format(routed ? FormatId::fp4_g32 : FormatId::fp8_b128, w.in_features, s);
          },
          {}};
}

// ---- what was loaded ----------------------------------------------------------------------------

/// One quantized tensor.
struct QuantizedTensor {
  std::string name;
  FormatId format = FormatId::f32;
  std::size_t out_features = 0;  ///< rows
  std::size_t in_features = 0;   ///< row width
  std::uint64_t bytes = 0;       ///< stored_bytes
  bool projection = true;        ///< a projection (false: a tensor rounded by round_other)
};

/// The tensors a load_quantized call quantized, in load order.
struct QuantizationReport {
  std::vector<QuantizedTensor> tensors;

  std::uint64_t weights() const noexcept {
    std::uint64_t n = 0;
    for (const auto& t : tensors) n += std::uint64_t{t.out_features} * t.in_features;
    return n;
  }
  std::uint64_t bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& t : tensors) n += t.bytes;
    return n;
  }
  /// Stored bits per weight over every quantized tensor, scales and minimums included.
  double bits_per_weight() const noexcept {
    const std::uint64_t w = weights();
    return w == 0 ? 0.0 : 8.0 * static_cast<double>(bytes()) / static_cast<double>(w);
  }
  /// Weights per format (to see how much a fallback or a recipe's exceptions cover).
  std::map<FormatId, std::uint64_t> weights_by_format() const {
    std::map<FormatId, std::uint64_t> m;
    for (const auto& t : tensors) m[t.format] += std::uint64_t{t.out_features} * t.in_features;
    return m;
  }
  /// "Q4_K 71.3%, Q6_K 28.7%": the formats by share of the weights, largest first.
  std::string format_mix() const {
    std::vector<std::pair<std::uint64_t, FormatId>> v;
    for (const auto& [f, n] : weights_by_format()) v.emplace_back(n, f);
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string out;
    const auto total = static_cast<double>(weights());
    for (const auto& [n, f] : v) {
      out += fmt::format("{}{} {:.1f}%", out.empty() ? "" : ", ", format_info(f).name,
                         100.0 * static_cast<double>(n) / total);
    }
    return out;
  }
};

// ---- the linear type and the source that quantizes ----------------------------------------------

/// An AnyLinear that a model loads through load_quantized (its QuantizingSource quantizes the
/// stored weight as the plan says).
class QuantizedLinear : public AnyLinear {
 public:
  QuantizedLinear() = default;
  explicit QuantizedLinear(AnyLinear l) : AnyLinear(std::move(l)) {}
};

static_assert(LinearOp<QuantizedLinear>);

/// A TensorSource over `Src` (a checkpoint, a GgufModel, ...) that hands out QuantizedLinear
/// projections quantized as `plan` says (io::load_linear's hook) and, when the plan has
/// round_other, the other floating tensors rounded through their format (to_float). Everything
/// else is `Src`'s. `src`, `plan` and `report` must outlive it.
template <io::TensorSource Src>
class QuantizingSource {
 public:
  QuantizingSource(const Src& src, const WeightPlan& plan, QuantizationReport* report = nullptr)
      : src_(src), plan_(plan), report_(report) {
    DSV4_CHECK(static_cast<bool>(plan.choose), ConfigError,
               "load_quantized: plan '{}' has no choose function", plan.name);
  }

  std::string label() const { return src_.label(); }
  bool has(std::string_view name) const { return src_.has(name); }
  const io::TensorInfo& info(std::string_view name) const { return src_.info(name); }

  /// The values of `name`, rounded through round_other's format when it gives one.
  std::vector<float> to_float(std::string_view name) const {
    std::vector<float> v = src_.to_float(name);
    if (!plan_.round_other || v.empty()) return v;
    const io::TensorInfo& ti = src_.info(name);
    const std::size_t in = ti.shape.empty() ? v.size() : static_cast<std::size_t>(ti.shape.back());
    const std::size_t rows = v.size() / in;
    const std::optional<FormatId> f = plan_.round_other(WeightSite{name, rows, in});
    if (!f) return v;
    const AnyLinear q =
        quantize_linear(*f, DotSemantics::dequant, ConstView2<float>(v.data(), rows, in));
    std::visit(
        [&](const auto& l) {
          for (std::size_t r = 0; r < rows; ++r) l.dequantize_row(r, v.data() + r * in);
        },
        q.variant());
    record(name, *f, rows, in, false);
    return v;
  }

  /// io::load_linear's hook: QuantizedLinear quantized from the stored weight as the plan says;
  /// an AnyLinear that round_other rounds (the embedding) held in that format, so that its rows
  /// dequantise to what to_float gives; other linear types through their io::LinearLoader from
  /// this source (so round_other applies).
  template <class L>
  L load_linear(std::string_view name, std::size_t out, std::size_t in) const {
    if constexpr (std::is_same_v<L, QuantizedLinear>) {
      const std::vector<float> w = io::load_float(src_, name, {out, in});
      const FormatId f = plan_.choose(WeightSite{name, out, in});
      QuantizedLinear l(quantize_linear(f, plan_.semantics, ConstView2<float>(w.data(), out, in)));
      record(name, f, out, in, true);
      return l;
    } else if constexpr (std::is_same_v<L, AnyLinear>) {
      const std::optional<FormatId> f =
          plan_.round_other ? plan_.round_other(WeightSite{name, out, in}) : std::nullopt;
      if (!f) return io::LinearLoader<L>::load(*this, name, out, in);
      const std::vector<float> w = io::load_float(src_, name, {out, in});
      AnyLinear l =
          quantize_linear(*f, DotSemantics::dequant, ConstView2<float>(w.data(), out, in));
      record(name, *f, out, in, false);
      return l;
    } else {
      return io::LinearLoader<L>::load(*this, name, out, in);
    }
  }

 private:
  void record(std::string_view name, FormatId f, std::size_t rows, std::size_t in,
              bool projection) const {
    if (report_ != nullptr) {
      report_->tensors.push_back(
          {std::string(name), f, rows, in, stored_bytes(f, rows, in), projection});
    }
  }

  const Src& src_;
  const WeightPlan& plan_;
  QuantizationReport* report_;
};

}  // namespace dsv4

namespace dsv4::io {

/// QuantizedLinear has no loader of its own: only a QuantizingSource (load_quantized) knows the
/// plan. Loading one from another source is a ConfigError.
template <>
struct LinearLoader<QuantizedLinear> {
  template <TensorSource S>
  static QuantizedLinear load(const S& src, std::string_view weight_name, std::size_t,
                              std::size_t) {
    throw ConfigError(fmt::format(
        "{}: tensor '{}': a QuantizedLinear is loaded through load_quantized, which supplies the "
        "weight plan",
        src.label(), weight_name));
  }
};

}  // namespace dsv4::io

namespace dsv4 {

/// A model on the reference backend whose projections are QuantizedLinear (fp32 activations
/// without the FP8/FP4 activation simulation by default: what the quantization table measures).
/// P: the other policies (its linear and, unless P names its own, expert linear are replaced).
template <ModelPolicies P = WithNumerics<PlainFp32Numerics>>
using QuantizedModel = ReferenceModel<WithLinear<QuantizedLinear, P>>;

/// Loads model type M (whose Lin / ExpertLin are QuantizedLinear) for `cfg` from any tensor
/// source in reference names, with every projection quantized as `plan` says (and the other
/// tensors rounded when the plan has round_other); `report`, when given, receives what each
/// quantized tensor got.
template <class M, io::TensorSource Src>
M load_quantized(const Src& src, const ModelConfig& cfg, const WeightPlan& plan,
                 QuantizationReport* report = nullptr) {
  const QuantizingSource<Src> q(src, plan, report);
  return M::load(q, cfg);
}

/// The same for a checkpoint (its own config).
template <class M>
M load_quantized(const io::Checkpoint& ckpt, const WeightPlan& plan,
                 QuantizationReport* report = nullptr) {
  return load_quantized<M>(ckpt, ckpt.config(), plan, report);
}

/// The same for a checkpoint directory.
template <class M>
M load_quantized(const std::filesystem::path& dir, const WeightPlan& plan,
                 QuantizationReport* report = nullptr) {
  return load_quantized<M>(io::Checkpoint::open(dir), plan, report);
}

// ---- logit distance -----------------------------------------------------------------------------

/// How far logits `got` are from `want` (both [rows, vocab]).
struct LogitDistance {
  double max_abs = 0;   ///< max |got − want|
  double mean_abs = 0;  ///< mean |got − want|
  double rel_l2 = 0;    ///< ‖got − want‖₂ / ‖want‖₂ over all rows
  double top1 = 0;      ///< fraction of rows whose argmax agree (lowest index wins ties)
  std::size_t rows = 0;
};

/// Compares two [rows, vocab] logit matrices; throws ShapeError when their sizes differ.
inline LogitDistance logit_distance(std::span<const float> got, std::span<const float> want,
                                    std::size_t vocab) {
  DSV4_CHECK(got.size() == want.size() && vocab > 0 && want.size() % vocab == 0, ShapeError,
             "logit_distance: {} and {} values for rows of {}", got.size(), want.size(), vocab);
  LogitDistance d;
  d.rows = want.size() / vocab;
  double sum = 0, num = 0, den = 0;
  std::size_t agree = 0;
  for (std::size_t r = 0; r < d.rows; ++r) {
    const float* g = got.data() + r * vocab;
    const float* w = want.data() + r * vocab;
    for (std::size_t i = 0; i < vocab; ++i) {
      const double e = static_cast<double>(g[i]) - static_cast<double>(w[i]);
      d.max_abs = std::max(d.max_abs, std::fabs(e));
      sum += std::fabs(e);
      num += e * e;
      den += static_cast<double>(w[i]) * static_cast<double>(w[i]);
    }
    if (std::max_element(g, g + vocab) - g == std::max_element(w, w + vocab) - w) ++agree;
  }
  d.mean_abs = d.rows == 0 ? 0.0 : sum / static_cast<double>(want.size());
  d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  d.top1 = d.rows == 0 ? 1.0 : static_cast<double>(agree) / static_cast<double>(d.rows);
  return d;
}

/// Fraction of the (block, token) routing decisions of `got` whose expert set equals the one in
/// `want` (traces of the same tokens), over the blocks from `first_block` on (pass n_hash_layers
/// to leave out the hash-routed blocks, whose choice is the token's and always agrees).
/// Quantization moves the gate's inputs, and a changed top-k set is a discrete jump in the block's
/// output: the largest logit errors come from such flips (and from flips of the indexer's top-k).
inline double routing_agreement(const ForwardTrace& got, const ForwardTrace& want,
                                std::size_t first_block = 0) {
  DSV4_CHECK(got.routing.size() == want.routing.size(), ShapeError,
             "routing_agreement: traces of {} and {} blocks", got.routing.size(),
             want.routing.size());
  std::size_t same = 0, total = 0;
  for (std::size_t b = first_block; b < want.routing.size(); ++b) {
    const Routing& g = got.routing[b];
    const Routing& w = want.routing[b];
    DSV4_CHECK(g.tokens == w.tokens && g.k == w.k, ShapeError,
               "routing_agreement: block {}: [{}, {}] and [{}, {}] selections", b, g.tokens, g.k,
               w.tokens, w.k);
    for (std::size_t t = 0; t < w.tokens; ++t) {
      std::vector<std::int32_t> a(g.experts.begin() + static_cast<std::ptrdiff_t>(t * g.k),
                                  g.experts.begin() + static_cast<std::ptrdiff_t>((t + 1) * g.k));
      std::vector<std::int32_t> c(w.experts.begin() + static_cast<std::ptrdiff_t>(t * w.k),
                                  w.experts.begin() + static_cast<std::ptrdiff_t>((t + 1) * w.k));
      std::sort(a.begin(), a.end());
      std::sort(c.begin(), c.end());
      same += a == c ? 1 : 0;
      ++total;
    }
  }
  return total == 0 ? 1.0 : static_cast<double>(same) / static_cast<double>(total);
}

}  // namespace dsv4
