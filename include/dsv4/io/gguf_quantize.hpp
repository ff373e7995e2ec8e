// `dsv4 quantize`: a GGUF file in, the same model with llama-quantize's per-tensor types out.
//
// Spec: spec/formats.md §10.3 (GGUF). Mirrors llama.cpp's `llama_model_quantize_impl`
// (src/llama-quant.cpp, commit 82bb485), with or without an importance matrix, and gives the
// same bytes (tests/unit/gguf_quantize_test.cpp checks F16, Q8_0, Q4_K_M, Q2_K and MXFP4_MOE
// tensor for tensor and byte for byte against llama-quantize's files, gguf_imatrix_test.cpp
// Q4_K_M, Q5_K_M and Q4_0 with llama-imatrix's importance matrices):
//  * key/values are copied in order; then `general.quantization_version` (2) and
//    `general.file_type` are set as ggml sets keys (an existing key is removed and the key goes
//    to the end) and the split keys are removed;
//  * tensors are written in llama.cpp's order (outside blocks first, then by block, then by
//    name), with trailing size-1 dims dropped (ggml_n_dims) and each tensor's type from the
//    recipe (formats/gguf_recipe.hpp: plan_types, fallbacks, --pure);
//  * a tensor whose type does not change is copied; any other is dequantized to f32 and
//    quantized with ggml's quantizer for the target (the reference quantizers, and for IQ4_NL the
//    search that ggml_quantize_chunk runs); with an importance matrix (io/imatrix.hpp), each row
//    with its expert's importance (formats/weighted_quants.hpp), and the imatrix keys
//    (quantize.imatrix.*) written after the --override-kv ones. A quantized input is
//    re-quantized only when asked (llama-quantize's --allow-requantize).
// Beyond llama-quantize: a non-finite input value, or a row whose encoding is not finite (a
// value too large for the type's f16 scale), is a FormatError naming the tensor and row.
//
// A split model (io/gguf.hpp) is read as one; the output is one file, or split as
// llama-quantize --keep-split (one output file per input file) or llama-gguf-split's limits
// write it (io/gguf_split.hpp).
//
// Memory stays bounded: the input is memory-mapped and read tensor by tensor (pages released
// after each tensor), rows are converted a chunk at a time (kChunkValues), and the output is
// streamed through GgufWriter into a temporary file that is renamed over the output only when
// everything succeeded (io/output_file.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/formats/weighted_quants.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/gguf_split.hpp"
#include "dsv4/io/imatrix.hpp"
#include "dsv4/io/output_file.hpp"

namespace dsv4::io {

/// GGML_QNT_VERSION, written as `general.quantization_version`.
inline constexpr std::uint32_t kGgmlQuantizationVersion = 2;

struct QuantizeOptions {
  gguf::FileType file_type = gguf::FileType::q8_0;
  bool pure = false;              ///< every quantizable tensor gets the base type (+ fallbacks)
  bool allow_requantize = false;  ///< allow re-quantizing tensors that are already quantized
  unsigned threads = 1;           ///< worker threads per chunk; 0: hardware concurrency
  gguf::TypeOverrides overrides;  ///< llama-quantize's per-tensor type options
  /// --override-kv: keys set in the output after the input's (each moves to the end, as
  /// llama-quantize writes them).
  std::vector<std::pair<std::string, GgufValue>> kv_overrides;
  /// --keep-split: output file k holds the tensors of input file k (in their file order), named
  /// OUT-0000k-of-0000n.gguf as llama-quantize names them.
  bool keep_split = false;
  /// --split-max-size / --split-max-tensors: the output split as llama-gguf-split splits it.
  GgufSplitLimits split;
  /// --imatrix: the importance of each weight's input columns (io/imatrix.hpp, already filtered
  /// by --include-weights / --exclude-weights); null or empty: none. Must outlive the run.
  const Imatrix* imatrix = nullptr;
  /// The file name written as `quantize.imatrix.file` (llama-quantize writes the path it was
  /// given, at most 127 bytes).
  std::string imatrix_file;
};

/// Where a quantization run is; passed to the progress callback after every chunk.
struct QuantizeProgress {
  std::size_t tensor = 0;  ///< index of the current tensor in output order
  std::size_t n_tensors = 0;
  std::string_view name;
  FormatId from = FormatId::f32;
  FormatId to = FormatId::f32;
  std::uint64_t done = 0;   ///< input bytes processed so far (all tensors)
  std::uint64_t total = 0;  ///< input bytes of all tensors
};
using QuantizeProgressFn = std::function<void(const QuantizeProgress&)>;

/// What a run will write: output key/values, tensors (order, types, offsets) and sources.
struct QuantizePlan {
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;  ///< output order, with output types and offsets
  std::vector<std::size_t> source;      ///< index of each output tensor in the input's tensors()
  std::uint64_t file_size = 0;          ///< bytes of the output (all files)
  std::vector<GgufShard> shards;        ///< the output files (one unless split)
  bool split_names = false;             ///< the files are named OUT-0000k-of-0000n.gguf
  /// Per output tensor: its importance (the imatrix entry, experts one after the other) when it
  /// is quantized with one, else null. Points into QuantizeOptions::imatrix.
  std::vector<const float*> importance;
};

/// The model facts a recipe needs, from `<arch>.block_count`, `.expert_count`,
/// `.attention.head_count` and `.head_count_kv`. Throws FormatError when the architecture or
/// the block count is missing.
inline gguf::ModelFacts gguf_model_facts(const GgufMetadata& meta) {
  const std::string& arch = meta.get_string("general.architecture");
  gguf::ModelFacts facts;
  const auto n_layers = meta.get_int(arch + ".block_count");
  DSV4_CHECK(n_layers.has_value() && *n_layers > 0 && *n_layers < (1 << 20), FormatError,
             "gguf: key '{}.block_count' is {} (a quantization recipe needs the number of "
             "blocks, > 0)",
             arch, n_layers ? fmt::format("{}", *n_layers) : std::string("missing"));
  facts.n_layers = static_cast<int>(*n_layers);
  facts.n_expert = static_cast<int>(meta.get_int(arch + ".expert_count").value_or(0));
  facts.n_head = static_cast<int>(meta.get_int(arch + ".attention.head_count").value_or(1));
  facts.n_head_kv =
      static_cast<int>(meta.get_int(arch + ".attention.head_count_kv").value_or(facts.n_head));
  return facts;
}

namespace detail::quant {

/// visit_format restricted to the GGUF formats (the native checkpoint formats are not GGUF
/// tensor types).
template <class Fn>
decltype(auto) visit_gguf_format(FormatId id, Fn&& fn) {
  return dsv4::detail::visit_format_list(id, fn, static_cast<GgufFormats*>(nullptr));
}

}  // namespace detail::quant

/// The output of quantizing `in` with `opt`, without converting anything. Throws FormatError
/// (missing metadata, no fallback type for a shape) or ConfigError (a file type dsv4 does not
/// offer).
inline QuantizePlan plan_quantization(const GgufFile& in, const QuantizeOptions& opt) {
  const auto& src = in.tensors();
  gguf::file_type_info(opt.file_type);  // throws ConfigError for an unknown file type
  DSV4_CHECK(!(opt.keep_split && opt.split.active()), InputError,
             "quantize: --keep-split keeps the input's files; it cannot be combined with "
             "--split-max-size or --split-max-tensors");

  QuantizePlan plan;
  plan.metadata = in.metadata();
  plan.metadata.set("general.quantization_version", GgufValue(kGgmlQuantizationVersion));
  plan.metadata.set("general.file_type", GgufValue(static_cast<std::uint32_t>(opt.file_type)));
  plan.metadata.remove("split.no");
  plan.metadata.remove("split.count");
  plan.metadata.remove("split.tensors.count");
  for (const auto& [key, value] : opt.kv_overrides) plan.metadata.set(key, value);
  const bool has_imatrix = opt.imatrix != nullptr && !opt.imatrix->empty();
  if (has_imatrix) {
    // llama-quantize's own overrides, after the user's
    const auto text = [](const std::string& t) { return GgufValue(t.substr(0, 127)); };
    plan.metadata.set("quantize.imatrix.file", text(opt.imatrix_file));
    if (!opt.imatrix->datasets.empty()) {
      plan.metadata.set("quantize.imatrix.dataset", text(opt.imatrix->datasets.front()));
    }
    plan.metadata.set("quantize.imatrix.entries_count",
                      GgufValue(static_cast<std::uint32_t>(opt.imatrix->entries.size())));
    if (opt.imatrix->chunk_count > 0) {
      plan.metadata.set("quantize.imatrix.chunks_count",
                        GgufValue(static_cast<std::uint32_t>(opt.imatrix->chunk_count)));
    }
  }

  // ggml_n_dims: trailing size-1 dims are not written
  std::vector<std::vector<std::int64_t>> ne(src.size());
  std::vector<gguf::TensorInfo> recipe_in(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    ne[i] = src[i].ne;
    ne[i].resize(static_cast<std::size_t>(gguf::n_dims(ne[i])));
    recipe_in[i] = gguf::TensorInfo{src[i].name, ne[i], src[i].type};
  }
  gguf::ModelFacts facts = gguf_model_facts(in.metadata());
  facts.has_imatrix = has_imatrix;
  const std::vector<FormatId> types =
      gguf::plan_types(opt.file_type, facts, recipe_in, opt.pure, opt.overrides);

  plan.source.resize(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) plan.source[i] = i;
  if (opt.keep_split) {
    // llama-quantize --keep-split: by input file, then by position in it
    std::stable_sort(plan.source.begin(), plan.source.end(), [&](std::size_t a, std::size_t b) {
      const auto sa = in.shard_of(src[a]);
      const auto sb = in.shard_of(src[b]);
      return sa != sb ? sa < sb : src[a].offset < src[b].offset;
    });
  } else {
    std::stable_sort(plan.source.begin(), plan.source.end(), [&](std::size_t a, std::size_t b) {
      return gguf::llama_order_less(src[a].name, src[b].name);
    });
  }
  plan.tensors.reserve(src.size());
  for (const std::size_t i : plan.source) {
    plan.tensors.push_back(GgufTensorInfo{src[i].name, ne[i], types[i], 0, 0});
  }
  // the importance of each converted tensor, checked as llama-quantize checks it (a size that
  // is not the row length times the experts is an error, except for the token embedding)
  plan.importance.assign(plan.tensors.size(), nullptr);
  for (std::size_t k = 0; has_imatrix && k < plan.tensors.size(); ++k) {
    const GgufTensorInfo& t = plan.tensors[k];
    if (t.type == src[plan.source[k]].type) continue;
    const auto it = opt.imatrix->entries.find(t.name);
    if (it == opt.imatrix->entries.end()) continue;
    const std::int64_t n_mat = t.ne.size() > 2 ? t.ne[2] : 1;
    if (static_cast<std::int64_t>(it->second.size()) != t.ne[0] * n_mat) {
      if (t.name.find("token_embd.weight") != std::string::npos) continue;
      // what to exclude: the name without its block prefix and ".weight" (every block's entry)
      std::string part = t.name;
      if (part.starts_with("blk.") && part.find('.', 4) != std::string::npos) {
        part = part.substr(part.find('.', 4) + 1);
      }
      if (part.ends_with(".weight")) part.resize(part.size() - 7);
      throw InputError(fmt::format(
          "imatrix {}: entry '{}' has {} values, but the tensor has {} columns{} (llama-quantize "
          "refuses it too; leave it out with --exclude-weights {})",
          opt.imatrix_file, t.name, it->second.size(), t.ne[0],
          n_mat > 1 ? fmt::format(" times {} experts", n_mat) : std::string(), part));
    }
    detail::quant::visit_gguf_format(t.type, [&]<class F>() {
      if (weighted_use<F>() == WeightedUse::implemented) plan.importance[k] = it->second.data();
    });
  }
  const auto alignment = detail::gguf::alignment_of(plan.metadata, "gguf " + in.label());
  layout_gguf_tensors(plan.tensors, alignment);
  if (opt.keep_split) {
    std::vector<std::uint32_t> shard_of;
    for (const std::size_t i : plan.source) {
      shard_of.push_back(static_cast<std::uint32_t>(in.shard_of(src[i])));
    }
    plan.shards = gguf_split_by_index(plan.metadata, plan.tensors, shard_of);
    plan.split_names = true;
  } else {
    plan.shards = gguf_split_by_limits(plan.metadata, plan.tensors, opt.split);
    plan.split_names = opt.split.active();
  }
  plan.file_size = 0;
  for (const auto& sh : plan.shards) plan.file_size += sh.file_size;
  return plan;
}

namespace detail::quant {

/// Values converted per chunk (bounds the f32 buffers: 3 x 16 MiB).
inline constexpr std::int64_t kChunkValues = std::int64_t{1} << 22;

/// n values stored as `type` (whole blocks, byte-aligned or not) → f32.
inline void dequantize_values(FormatId type, const std::byte* src, std::int64_t n, float* out) {
  visit_gguf_format(type, [&]<class F>() {
    using B = typename F::block_type;
    const auto nb = static_cast<std::size_t>(n) / F::block_elems;
    for (std::size_t i = 0; i < nb; ++i) {
      B b;
      std::memcpy(&b, src + i * sizeof(B), sizeof(B));
      F::dequantize(b, out + i * F::block_elems);
    }
  });
}

/// n f32 values → `type` (ggml's quantizer as ggml_quantize_chunk runs it without an
/// importance matrix).
inline void quantize_values(FormatId type, const float* in, std::int64_t n, std::byte* out) {
  visit_gguf_format(type, [&]<class F>() {
    if constexpr (QuantizableFormat<F>) {
      using B = typename F::block_type;
      const auto nb = static_cast<std::size_t>(n) / F::block_elems;
      for (std::size_t i = 0; i < nb; ++i) {
        B b{};
        if constexpr (F::id == FormatId::iq4_nl) {
          F::quantize_chunk(in + i * F::block_elems, b);
        } else {
          F::quantize(in + i * F::block_elems, b);
        }
        std::memcpy(out + i * sizeof(B), &b, sizeof(B));
      }
    } else {
      throw FormatError(fmt::format("dsv4 has no quantizer for {}", F::name));
    }
  });
}

/// Does dsv4 have a GGUF storage format (a dequantizer) for this type id?
inline bool can_dequantize(FormatId id) noexcept {
  return [id]<class... Fs>(type_list<Fs...>*) {
    return ((Fs::id == id) || ...);
  }(static_cast<GgufFormats*>(nullptr));
}

/// Can dsv4 write this type (a weight format with a quantizer; not the activation-only Q8_1 and
/// Q8_K)?
inline bool can_quantize(FormatId id) noexcept {
  return [id]<class... Fs>(type_list<Fs...>*) {
    return ((Fs::id == id && QuantizableFormat<Fs> && Fs::id != FormatId::q8_1 &&
             Fs::id != FormatId::q8_k) ||
            ...);
  }(static_cast<GgufFormats*>(nullptr));
}

/// Index of the first non-finite value of v[0, n), or -1.
inline std::int64_t first_non_finite(const float* v, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return -1;
}

/// Converts rows [r0, r1) of a chunk: src (type `from`) → f32 → dst (type `to`), and checks
/// that the input and the decoded output are finite. `row0` is the chunk's first row in the
/// tensor (for messages).
struct RowJob {
  const GgufTensorInfo* tensor;
  FormatId from;
  FormatId to;
  std::int64_t n_per_row;
  std::uint64_t src_row_bytes;
  std::uint64_t dst_row_bytes;
  const std::byte* src;  // chunk start
  std::byte* dst;        // chunk start
  float* values;         // [chunk rows, n_per_row]
  float* check;          // [chunk rows, n_per_row]
  std::int64_t row0;
  /// The tensor's importance (experts one after the other, n_per_row each) or null; with it,
  /// each row is quantized with its expert's slice (weighted_quantize_row).
  const float* importance = nullptr;
  std::int64_t rows_per_expert = 1;

  void run(std::int64_t r0, std::int64_t r1) const {
    if (r1 <= r0) return;
    const std::int64_t n = (r1 - r0) * n_per_row;
    float* v = values + r0 * n_per_row;
    std::byte* out = dst + static_cast<std::uint64_t>(r0) * dst_row_bytes;
    dequantize_values(from, src + static_cast<std::uint64_t>(r0) * src_row_bytes, n, v);
    if (const auto bad = first_non_finite(v, n); bad >= 0) {
      throw FormatError(fmt::format(
          "tensor '{}' ({} {}): row {} holds a non-finite value ({}) at column {}; a model with "
          "NaN or infinite weights cannot be quantized",
          tensor->name, dsv4::gguf::type_name(from), gguf_shape_string(tensor->ne),
          row0 + r0 + bad / n_per_row, v[bad], bad % n_per_row));
    }
    if (importance == nullptr) {
      quantize_values(to, v, n, out);
    } else {
      visit_gguf_format(to, [&]<class F>() {
        if constexpr (weighted_use<F>() == WeightedUse::implemented) {
          std::vector<typename F::block_type> row(static_cast<std::size_t>(n_per_row) /
                                                  F::block_elems);
          for (std::int64_t r = 0; r < r1 - r0; ++r) {
            const std::int64_t expert = (row0 + r0 + r) / rows_per_expert;
            weighted_quantize_row<F>(v + r * n_per_row, importance + expert * n_per_row, n_per_row,
                                     row.data());
            std::memcpy(out + static_cast<std::uint64_t>(r) * dst_row_bytes, row.data(),
                        dst_row_bytes);
          }
        } else {
          quantize_values(to, v, n, out);
        }
      });
    }
    float* c = check + r0 * n_per_row;
    dequantize_values(to, out, n, c);
    if (const auto bad = first_non_finite(c, n); bad >= 0) {
      throw FormatError(fmt::format(
          "tensor '{}' ({}): row {} does not fit {}: value {} at column {} decodes to {} (too "
          "large for the type's f16 scale or range)",
          tensor->name, gguf_shape_string(tensor->ne), row0 + r0 + bad / n_per_row,
          dsv4::gguf::type_name(to), v[bad], bad % n_per_row, c[bad]));
    }
  }
};

/// Runs job.run over [0, rows) split among `threads` threads (row order decides which error is
/// reported when several threads fail).
inline void run_rows(const RowJob& job, std::int64_t rows, unsigned threads) {
  const auto n_threads = static_cast<std::int64_t>(std::max(1u, threads));
  if (n_threads == 1 || rows < 2) {
    job.run(0, rows);
    return;
  }
  const std::int64_t used = std::min(n_threads, rows);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(used));
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(used - 1));
  auto part = [&](std::int64_t k) {
    try {
      job.run(rows * k / used, rows * (k + 1) / used);
    } catch (...) {
      errors[static_cast<std::size_t>(k)] = std::current_exception();
    }
  };
  for (std::int64_t k = 1; k < used; ++k) workers.emplace_back(part, k);
  part(0);
  for (auto& w : workers) w.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace detail::quant

/// Converts `in` as `plan` says and streams the output files, file k to open(k) (called when
/// file k starts). Throws FormatError (bad values, unsupported conversions), ConfigError (a
/// quantized input without allow_requantize) or whatever a sink throws; the sinks may have
/// received part of the files by then.
inline void quantize_gguf(const GgufFile& in, const QuantizePlan& plan,
                          const GgufSplitWriter::SinkFactory& open, const QuantizeOptions& opt,
                          const QuantizeProgressFn& progress = {}) {
  const auto& src = in.tensors();
  DSV4_CHECK(plan.source.size() == plan.tensors.size(), ShapeError,
             "quantize: plan has {} tensors and {} sources", plan.tensors.size(),
             plan.source.size());
  unsigned threads = opt.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());

  QuantizeProgress p;
  p.n_tensors = plan.tensors.size();
  for (const auto i : plan.source) p.total += src.at(i).n_bytes;

  // validate every conversion before writing anything
  for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
    const GgufTensorInfo& s = src[plan.source[k]];
    const GgufTensorInfo& t = plan.tensors[k];
    DSV4_CHECK(s.name == t.name && s.n_elements() == t.n_elements(), ShapeError,
               "quantize: plan tensor {} ('{}') does not match input tensor '{}'", k, t.name,
               s.name);
    if (s.type == t.type) continue;
    const bool from_quantized = gguf::traits_of(s.type).quantized;
    DSV4_CHECK(!from_quantized || opt.allow_requantize, ConfigError,
               "quantize {}: tensor '{}' is already {}; re-quantizing it to {} loses accuracy, so "
               "it is disabled (pass --allow-requantize to do it anyway, or start from an "
               "F32/F16/BF16 file)",
               in.label(), s.name, gguf::type_name(s.type), gguf::type_name(t.type));
    DSV4_CHECK(detail::quant::can_dequantize(s.type) && detail::quant::can_quantize(t.type),
               FormatError,
               "quantize {}: tensor '{}': dsv4 cannot convert {} to {} (it reads F32, F16, BF16 "
               "and the block formats of formats/registry.hpp, and writes all of them)",
               in.label(), s.name, gguf::type_name(s.type), gguf::type_name(t.type));
  }

  GgufSplitWriter writer(plan.shards, open);
  std::vector<float> values;
  std::vector<float> check;
  std::vector<std::byte> out;
  for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
    const GgufTensorInfo& s = src[plan.source[k]];
    const GgufTensorInfo& t = plan.tensors[k];
    const auto data = in.tensor_data(s);
    p.tensor = k;
    p.name = t.name;
    p.from = s.type;
    p.to = t.type;
    const std::int64_t n_per_row = t.ne[0];
    const std::int64_t rows = t.n_rows();
    if (s.type == t.type || t.n_bytes == 0) {
      // copy, in pieces so that progress moves and little is resident at once
      constexpr std::size_t kPiece = std::size_t{64} << 20;
      for (std::size_t at = 0; at < data.size(); at += kPiece) {
        const auto piece = data.subspan(at, std::min(kPiece, data.size() - at));
        writer.write(piece);
        p.done += piece.size();
        if (progress) progress(p);
      }
    } else {
      const std::uint64_t src_row = s.n_bytes / static_cast<std::uint64_t>(rows);
      const std::uint64_t dst_row = t.n_bytes / static_cast<std::uint64_t>(rows);
      const std::int64_t chunk_rows = std::max<std::int64_t>(
          1, std::min<std::int64_t>(
                 rows, detail::quant::kChunkValues / std::max<std::int64_t>(1, n_per_row)));
      const auto chunk_values = static_cast<std::size_t>(chunk_rows * n_per_row);
      if (values.size() < chunk_values) {
        values.resize(chunk_values);
        check.resize(chunk_values);
      }
      if (out.size() < static_cast<std::size_t>(chunk_rows) * dst_row) {
        out.resize(static_cast<std::size_t>(chunk_rows) * dst_row);
      }
      for (std::int64_t r = 0; r < rows; r += chunk_rows) {
        const std::int64_t nr = std::min(chunk_rows, rows - r);
        const detail::quant::RowJob job{&t,
                                        s.type,
                                        t.type,
                                        n_per_row,
                                        src_row,
                                        dst_row,
                                        data.data() + static_cast<std::uint64_t>(r) * src_row,
                                        out.data(),
                                        values.data(),
                                        check.data(),
                                        r,
                                        plan.importance.empty() ? nullptr : plan.importance[k],
                                        t.ne.size() > 1 ? t.ne[1] : 1};
        detail::quant::run_rows(job, nr, threads);
        writer.write(
            std::span<const std::byte>(out.data(), static_cast<std::size_t>(nr) * dst_row));
        p.done += static_cast<std::uint64_t>(nr) * src_row;
        if (progress) progress(p);
      }
    }
    in.release_pages(s);
  }
  writer.finish();
}

/// quantize_gguf for a plan of one file, streamed to `sink`.
inline void quantize_gguf(const GgufFile& in, const QuantizePlan& plan, GgufWriter::Sink sink,
                          const QuantizeOptions& opt, const QuantizeProgressFn& progress = {}) {
  DSV4_CHECK(plan.shards.size() == 1, ShapeError,
             "quantize: the plan writes {} files; give a sink per file", plan.shards.size());
  quantize_gguf(
      in, plan, [&sink](std::size_t) { return sink; }, opt, progress);
}

/// Quantizes the GGUF file `in_path` (or the split model whose first shard it is) into
/// `out_path` (see the top of this file; a split output is named after `out_path`). The output
/// appears only when the whole run succeeded: on any error (including one thrown by `progress`,
/// which is how a caller cancels a run) no output file is created (an existing one is left as it
/// was) and the temporary files are removed. Returns the plan that was written. An output that
/// is an input file (or cannot be written) is refused before any tensor is written
/// (GgufOutputSet::check, after the header is read and the plan made).
inline QuantizePlan quantize_gguf_file(const std::filesystem::path& in_path,
                                       const std::filesystem::path& out_path,
                                       const QuantizeOptions& opt,
                                       const QuantizeProgressFn& progress = {}) {
  const GgufFile in(in_path);
  QuantizePlan plan = plan_quantization(in, opt);
  GgufOutputSet out(out_path, plan.shards.size(), plan.split_names);
  out.check(gguf_paths(in));
  quantize_gguf(
      in, plan, [&out](std::size_t k) { return out.sink(k); }, opt, progress);
  out.commit();
  return plan;
}

}  // namespace dsv4::io
