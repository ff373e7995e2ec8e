// `dsv4 convert`: a checkpoint in reference names (any TensorSource with its ModelConfig) to a
// llama.cpp `deepseek4` GGUF.
//
// Spec: spec/formats.md §9.3-9.4 (FP8 block scales, FP4 packing), §10.1 (reference names), §10.3
// (GGUF). The tensors are those of gguf_tensor_map (io/gguf_model.hpp): names mapped, experts
// stacked, the MTP e_proj/h_proj side by side in `nextn.eh_proj`; written in llama.cpp's tensor
// order (formats/gguf_recipe.hpp llama_order_less) with trailing size-1 dims dropped.
//
// Values: BF16/F16/F32 tensors as they are; FP8 (F8_E4M3 + `.scale`, 128x128 blocks) and FP4
// (packed E2M1 as I8/U8 [out, in/2] or F4 [out, in], + `.scale` per 32 inputs) weights
// dequantized exactly to f32; tid2eid (I64/I32) as I32. Types: `F32` writes every floating tensor
// as F32 (the golden tiny file's layout). Any other file type gives exactly the file
// `dsv4 quantize --type T` makes from that F32 file (same recipe, key order and bytes), without
// writing the F32 file: F16/BF16 convert every quantizable tensor, the quantized types follow
// llama-quantize's per-tensor recipe.
//
// Memory stays bounded: the source is read a chunk of rows at a time (at most kChunkValues values
// of f32; the block scales of one tensor, or of one expert, at a time), and the output streams
// through GgufWriter into a temporary file that is renamed over the target only when every tensor
// was written (io/output_file.hpp).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/gguf_model.hpp"
#include "dsv4/io/gguf_quantize.hpp"
#include "dsv4/io/gguf_split.hpp"
#include "dsv4/io/output_file.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"

namespace dsv4::io {

struct ConvertOptions {
  gguf::FileType file_type = gguf::FileType::all_f32;
  std::string name = "DeepSeek-V4";          ///< general.name
  bool include_mtp = true;                   ///< write the MTP blocks of the config
  bool llama_cpp_compatible = true;          ///< refuse configs llama.cpp cannot load
  const GgufTokenizer* tokenizer = nullptr;  ///< tokenizer.ggml.* keys when given
  /// Further keys written after the converter's own (general.license, general.description,
  /// general.dataset.*, ...). A key the converter writes itself is a ConfigError.
  std::vector<std::pair<std::string, GgufValue>> extra_metadata;
  /// --split-max-size / --split-max-tensors: the output split as llama-gguf-split splits it
  /// (io/gguf_split.hpp), named OUT-0000k-of-0000n.gguf.
  GgufSplitLimits split;
};

/// What a conversion writes.
struct ConvertPlan {
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;     ///< output order, output types, offsets
  std::vector<GgufTensorMapping> sources;  ///< the reference tensors of each output tensor
  std::uint64_t file_size = 0;             ///< bytes of the output (all files)
  std::vector<std::string> notes;          ///< source tensors left out, and why
  std::vector<GgufShard> shards;           ///< the output files (one unless split)
};

/// Progress of a conversion (after every chunk): output bytes written of the total.
using ConvertProgress = QuantizeProgress;
using ConvertProgressFn = std::function<void(const ConvertProgress&)>;

namespace detail::convert {

/// Reads rows of one reference tensor as f32 (dequantizing FP8/FP4 with their scales). With
/// `load` false it only checks the tensor and its scales (present, dtype, shape) and holds
/// nothing.
class RowReader {
 public:
  template <TensorSource S>
  RowReader(const S& src, const std::string& name, std::span<const std::uint64_t> shape,
            bool integer, bool load = true)
      : name_(name), label_(src.label()) {
    rows_ = shape.size() == 2 ? shape[0] : 1;
    cols_ = shape.size() == 2 ? shape[1] : (shape.empty() ? 1 : shape[0]);
    DSV4_CHECK(src.has(name), FormatError, "convert {}: tensor '{}' is missing (expected shape {})",
               label_, name, shape_string(shape));
    const TensorInfo& ti = src.info(name);
    dtype_ = ti.dtype;
    bytes_ = ti.bytes;
    if (integer) {
      DSV4_CHECK(ti.dtype == DType::I64 || ti.dtype == DType::I32, FormatError,
                 "convert {}: tensor '{}': expected I64 or I32 expert ids, found {}", label_, name,
                 dtype_name(ti.dtype));
      expect_tensor(src, name, shape);
      return;
    }
    if (ti.dtype == DType::F8_E4M3) {
      expect_tensor(src, name, shape);
      const std::string sn = tensor_names::scale_of(name);
      DSV4_CHECK(src.has(sn), FormatError,
                 "convert {}: tensor '{}' is F8_E4M3 but its block scales '{}' are missing", label_,
                 name, sn);
      const std::uint64_t sr = (rows_ + 127) / 128;
      const std::uint64_t sc = (cols_ + 127) / 128;
      scale_ = load_scales(src, sn, {sr, sc}, load);
      scale_cols_ = sc;
      kind_ = Kind::fp8;
    } else if (ti.dtype == DType::I8 || ti.dtype == DType::U8 || ti.dtype == DType::F4) {
      DSV4_CHECK(cols_ % 32 == 0, FormatError,
                 "convert {}: tensor '{}': an FP4 weight needs a multiple of 32 inputs, not {}",
                 label_, name, cols_);
      if (ti.dtype == DType::F4) {
        expect_tensor(src, name, shape);
      } else {
        expect_tensor(src, name, {rows_, cols_ / 2});
      }
      const std::string sn = tensor_names::scale_of(name);
      DSV4_CHECK(src.has(sn), FormatError,
                 "convert {}: tensor '{}' is packed FP4 ({}) but its scales '{}' are missing",
                 label_, name, dtype_name(ti.dtype), sn);
      scale_ = load_scales(src, sn, {rows_, cols_ / 32}, load);
      scale_cols_ = cols_ / 32;
      kind_ = Kind::fp4;
    } else {
      expect_tensor(src, name, shape);
      DSV4_CHECK(
          is_plain_float(ti.dtype), FormatError,
          "convert {}: tensor '{}': dtype {} is not a weight dtype (expected BF16, F16, F32, "
          "F8_E4M3 + scale or packed FP4 + scale)",
          label_, name, dtype_name(ti.dtype));
      kind_ = Kind::plain;
    }
    if (bytes_.empty() && ti.elements > 0) {
      // a source without raw bytes (e.g. a quantized GGUF): the whole tensor, dequantized
      if (load) whole_ = src.to_float(name);
      kind_ = Kind::whole;
    }
  }

  std::uint64_t rows() const noexcept { return rows_; }
  std::uint64_t cols() const noexcept { return cols_; }

  /// Row r as f32 into out[cols].
  void row(std::uint64_t r, float* out) const {
    const std::size_t c = cols_;
    switch (kind_) {
      case Kind::whole:
        std::copy_n(whole_.data() + r * c, c, out);
        return;
      case Kind::plain:
        for (std::size_t i = 0; i < c; ++i) out[i] = plain(r * c + i);
        return;
      case Kind::fp8: {
        const std::byte* p = bytes_.data() + r * c;
        const float* s = scale_.data() + (r / 128) * scale_cols_;
        for (std::size_t i = 0; i < c; ++i) {
          out[i] = fp8_e4m3::from_bits(std::to_integer<std::uint8_t>(p[i])).to_float() * s[i / 128];
        }
        return;
      }
      case Kind::fp4: {
        const std::byte* p = bytes_.data() + r * (c / 2);
        const float* s = scale_.data() + r * scale_cols_;
        for (std::size_t i = 0; i < c; ++i) {
          const auto b = std::to_integer<std::uint8_t>(p[i / 2]);
          const auto code = static_cast<std::uint8_t>(i % 2 == 0 ? b & 0xF : b >> 4);
          out[i] = fp4_e2m1::from_bits(code).to_float() * s[i / 32];
        }
        return;
      }
    }
  }

  /// Row r of an integer tensor into out[cols].
  void int_row(std::uint64_t r, std::int32_t* out) const {
    for (std::uint64_t i = 0; i < cols_; ++i) {
      const std::uint64_t k = r * cols_ + i;
      std::int64_t v = 0;
      if (dtype_ == DType::I64) {
        std::memcpy(&v, bytes_.data() + k * 8, 8);
      } else {
        std::int32_t w = 0;
        std::memcpy(&w, bytes_.data() + k * 4, 4);
        v = w;
      }
      DSV4_CHECK(v >= INT32_MIN && v <= INT32_MAX, FormatError,
                 "convert {}: tensor '{}': element {} = {} does not fit in 32 bits", label_, name_,
                 k, v);
      out[i] = static_cast<std::int32_t>(v);
    }
  }

 private:
  enum class Kind : std::uint8_t { plain, fp8, fp4, whole };

  template <TensorSource S>
  std::vector<float> load_scales(const S& src, const std::string& sn,
                                 std::initializer_list<std::uint64_t> shape, bool load) const {
    const TensorInfo& si = expect_tensor(src, sn, shape);
    DSV4_CHECK(si.dtype == DType::F8_E8M0 || si.dtype == DType::F32, FormatError,
               "convert {}: tensor '{}': expected F8_E8M0 (or F32) scales, found {}", label_, sn,
               dtype_name(si.dtype));
    return load ? src.to_float(sn) : std::vector<float>{};
  }

  float plain(std::uint64_t k) const {
    const std::byte* p = bytes_.data();
    switch (dtype_) {
      case DType::F32: {
        float v;
        std::memcpy(&v, p + k * 4, 4);
        return v;
      }
      case DType::F64: {
        double v;
        std::memcpy(&v, p + k * 8, 8);
        return static_cast<float>(v);
      }
      case DType::F16: {
        std::uint16_t b;
        std::memcpy(&b, p + k * 2, 2);
        return f16::from_bits(b).to_float();
      }
      default: {
        std::uint16_t b;
        std::memcpy(&b, p + k * 2, 2);
        return bf16::from_bits(b).to_float();
      }
    }
  }

  std::string name_;
  std::string label_;
  std::uint64_t rows_ = 1;
  std::uint64_t cols_ = 1;
  DType dtype_ = DType::F32;
  std::span<const std::byte> bytes_;
  Kind kind_ = Kind::plain;
  std::vector<float> scale_;
  std::uint64_t scale_cols_ = 0;
  std::vector<float> whole_;
};

}  // namespace detail::convert

/// The file a conversion of `cfg` writes (metadata, tensors, types, sizes), without reading any
/// tensor data. Throws ConfigError for configs llama.cpp cannot load (unless
/// opt.llama_cpp_compatible is false) and for file types dsv4 does not offer.
inline ConvertPlan plan_conversion(const ModelConfig& cfg, const ConvertOptions& opt) {
  gguf::file_type_info(opt.file_type);  // ConfigError for an unknown file type
  ConvertPlan plan;
  GgufMetadataOptions mo;
  mo.name = opt.name;
  mo.file_type = gguf::FileType::all_f32;
  mo.include_mtp = opt.include_mtp;
  mo.tokenizer = opt.tokenizer;
  mo.llama_cpp_compatible = opt.llama_cpp_compatible;
  plan.metadata = gguf_metadata(cfg, mo);
  for (const auto& [k, v] : opt.extra_metadata) {
    DSV4_CHECK(!k.empty() && !plan.metadata.contains(k) && k != "general.quantization_version",
               ConfigError, "convert: metadata key '{}' {}", k,
               k.empty() ? "is empty" : "is written by the converter itself and cannot be set");
    plan.metadata.add(k, v);
  }

  plan.sources = gguf_tensor_map(cfg, opt.include_mtp);
  std::stable_sort(plan.sources.begin(), plan.sources.end(),
                   [](const GgufTensorMapping& a, const GgufTensorMapping& b) {
                     return gguf::llama_order_less(a.gguf, b.gguf);
                   });
  for (const auto& m : plan.sources) {
    std::vector<std::int64_t> ne = m.ne;
    ne.resize(static_cast<std::size_t>(gguf::n_dims(ne)));
    plan.tensors.push_back(
        GgufTensorInfo{m.gguf, ne, m.integer ? gguf::ggml_id::i32 : FormatId::f32, 0, 0});
  }
  if (opt.file_type != gguf::FileType::all_f32) {
    // exactly what `dsv4 quantize` does to the F32 file (io/gguf_quantize.hpp)
    plan.metadata.set("general.quantization_version", GgufValue(kGgmlQuantizationVersion));
    plan.metadata.set("general.file_type", GgufValue(static_cast<std::uint32_t>(opt.file_type)));
    std::vector<gguf::TensorInfo> recipe_in;
    for (const auto& t : plan.tensors) recipe_in.push_back(gguf::TensorInfo{t.name, t.ne, t.type});
    const auto types =
        gguf::plan_types(opt.file_type, gguf_model_facts(plan.metadata), recipe_in, false);
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) plan.tensors[i].type = types[i];
  }
  const auto alignment = detail::gguf::alignment_of(plan.metadata, "gguf writer");
  layout_gguf_tensors(plan.tensors, alignment);
  plan.shards = gguf_split_by_limits(plan.metadata, plan.tensors, opt.split);
  plan.file_size = 0;
  for (const auto& sh : plan.shards) plan.file_size += sh.file_size;
  return plan;
}

/// Converts `src` (reference names, checked against `cfg`) as `plan` says and streams the GGUF
/// files, file k to open(k). Every source tensor is checked (present, shape, dtype, scales)
/// before anything is written. Throws FormatError naming the tensor, or whatever a sink or
/// `progress` throws.
template <TensorSource S>
void convert_to_gguf(const S& src, const ConvertPlan& plan,
                     const GgufSplitWriter::SinkFactory& open,
                     const ConvertProgressFn& progress = {}) {
  using detail::convert::RowReader;
  DSV4_CHECK(plan.sources.size() == plan.tensors.size(), ShapeError,
             "convert: plan has {} tensors and {} sources", plan.tensors.size(),
             plan.sources.size());
  // check every source tensor (and its scales) before writing anything; hold nothing yet
  for (const GgufTensorMapping& m : plan.sources) {
    for (const std::string& ref : m.reference)
      (void)RowReader(src, ref, m.part_shape, m.integer, false);
  }

  GgufSplitWriter writer(plan.shards, open);
  ConvertProgress p;
  p.n_tensors = plan.tensors.size();
  for (const auto& t : plan.tensors) p.total += t.n_bytes;
  std::vector<float> values;
  std::vector<float> check;
  std::vector<std::byte> out;
  for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
    const GgufTensorInfo& t = plan.tensors[k];
    const GgufTensorMapping& m = plan.sources[k];
    // the parts' readers, opened when first needed; an expert's is dropped when the next one
    // starts, so at most one expert's scales are held
    std::vector<std::optional<RowReader>> parts(m.reference.size());
    auto part = [&](std::size_t i) -> const RowReader& {
      if (!parts[i].has_value()) {
        if (m.packing == GgufPacking::experts && i > 0) parts[i - 1].reset();
        parts[i].emplace(src, m.reference[i], m.part_shape, m.integer);
      }
      return *parts[i];
    };
    p.tensor = k;
    p.name = t.name;
    p.from = m.integer ? gguf::ggml_id::i32 : FormatId::f32;
    p.to = t.type;
    const std::int64_t n_per_row = t.ne[0];
    const std::int64_t rows = t.n_rows();
    const auto dst_row = static_cast<std::size_t>(t.n_bytes / static_cast<std::uint64_t>(rows));
    const std::int64_t chunk_rows = std::max<std::int64_t>(
        1, std::min<std::int64_t>(
               rows, detail::quant::kChunkValues / std::max<std::int64_t>(1, n_per_row)));
    const auto chunk_values = static_cast<std::size_t>(chunk_rows * n_per_row);
    values.resize(std::max(values.size(), chunk_values));
    check.resize(std::max(check.size(), chunk_values));
    out.resize(std::max(out.size(), static_cast<std::size_t>(chunk_rows) * dst_row));
    for (std::int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const std::int64_t nr = std::min(chunk_rows, rows - r0);
      const auto n = static_cast<std::size_t>(nr * n_per_row);
      if (m.integer) {
        for (std::int64_t r = 0; r < nr; ++r) {
          part(0).int_row(static_cast<std::uint64_t>(r0 + r),
                          reinterpret_cast<std::int32_t*>(out.data()) + r * n_per_row);
        }
        writer.write(std::span<const std::byte>(out.data(), n * sizeof(std::int32_t)));
        p.done += n * sizeof(std::int32_t);
        if (progress) progress(p);
        continue;
      }
      for (std::int64_t r = 0; r < nr; ++r) {
        const auto row = static_cast<std::uint64_t>(r0 + r);
        float* v = values.data() + r * n_per_row;
        switch (m.packing) {
          case GgufPacking::single:
            part(0).row(row, v);
            break;
          case GgufPacking::experts: {
            const std::uint64_t per = m.part_shape[0];
            part(static_cast<std::size_t>(row / per)).row(row % per, v);
            break;
          }
          case GgufPacking::concat_cols:
            part(0).row(row, v);
            part(1).row(row, v + m.part_shape[1]);
            break;
        }
      }
      if (const auto bad = detail::quant::first_non_finite(values.data(), nr * n_per_row);
          bad >= 0) {
        throw FormatError(fmt::format(
            "convert {}: tensor '{}' (for '{}'): row {} holds a non-finite value ({}) at column {}",
            src.label(), t.name, m.reference.front(), r0 + bad / n_per_row, values[bad],
            bad % n_per_row));
      }
      if (t.type == FormatId::f32) {
        std::memcpy(out.data(), values.data(), n * sizeof(float));
      } else {
        detail::quant::quantize_values(t.type, values.data(), nr * n_per_row, out.data());
        detail::quant::dequantize_values(t.type, out.data(), nr * n_per_row, check.data());
        if (const auto bad = detail::quant::first_non_finite(check.data(), nr * n_per_row);
            bad >= 0) {
          throw FormatError(fmt::format(
              "convert {}: tensor '{}': row {} does not fit {}: value {} at column {} decodes to "
              "{}",
              src.label(), t.name, r0 + bad / n_per_row, dsv4::gguf::type_name(t.type), values[bad],
              bad % n_per_row, check[bad]));
        }
      }
      const std::size_t bytes = static_cast<std::size_t>(nr) * dst_row;
      writer.write(std::span<const std::byte>(out.data(), bytes));
      p.done += bytes;
      if (progress) progress(p);
    }
  }
  writer.finish();
}

/// convert_to_gguf for a plan of one file, streamed to `sink`.
template <TensorSource S>
void convert_to_gguf(const S& src, const ConvertPlan& plan, GgufWriter::Sink sink,
                     const ConvertProgressFn& progress = {}) {
  DSV4_CHECK(plan.shards.size() == 1, ShapeError,
             "convert: the plan writes {} files; give a sink per file", plan.shards.size());
  convert_to_gguf(
      src, plan, [&sink](std::size_t) { return sink; }, progress);
}

/// Converts `src` (config `cfg`) into the GGUF file `out_path` (split as opt.split says, the
/// files named after `out_path`); the files appear only when the whole run succeeded (an
/// exception, including one thrown by `progress`, leaves no output and existing files as they
/// were). Returns the plan that was written.
template <TensorSource S>
ConvertPlan convert_to_gguf_file(const S& src, const ModelConfig& cfg,
                                 const std::filesystem::path& out_path, const ConvertOptions& opt,
                                 const ConvertProgressFn& progress = {}) {
  ConvertPlan plan = plan_conversion(cfg, opt);
  for (int j = 0; j < cfg.n_mtp_layers && opt.include_mtp; ++j) {
    if (src.has(
            tensor_names::join(tensor_names::mtp, std::to_string(j),
                               tensor_names::cat(tensor_names::hc_head, tensor_names::hc_fn)))) {
      plan.notes.push_back(fmt::format(
          "mtp.{}.hc_head_fn/base/scale are not stored: llama.cpp's MTP head uses the trunk's "
          "output_hc_*",
          j));
    }
  }
  GgufOutputSet out(out_path, plan.shards.size(), opt.split.active());
  out.check({});
  convert_to_gguf(
      src, plan, [&out](std::size_t k) { return out.sink(k); }, progress);
  out.commit();
  return plan;
}

}  // namespace dsv4::io
