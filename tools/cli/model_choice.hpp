// The command line's runtime → type bridge: the numerics named by `--numerics`, the weight types
// and the backend become the template arguments of the model, in this one place; the model
// source a MODEL argument names is opened here too.
#pragma once

#include <array>
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace dsv4::cli {

/// The numerics policies `--numerics` names, each with what it computes.
struct NumericsName {
  std::string_view name;
  std::string_view help;
};
inline constexpr std::array<NumericsName, 5> numerics_names = {{
    {"reference", "bf16 activations as PyTorch 2 computes them, FP8/FP4 simulation on"},
    {"reference-torch1", "bf16 activations as PyTorch 1.x rounds a bf16 mean, simulation on"},
    {"reference-fp32", "fp32 activations, FP8/FP4 simulation on"},
    {"fp32", "fp32 activations, no simulation"},
    {"llama.cpp", "fp32 activations, no simulation, GGUF weights with llama.cpp's dot products"},
}};

/// "reference, reference-torch1, ..." for help texts and errors.
inline std::string numerics_list() {
  std::string s;
  for (const auto& n : numerics_names) {
    if (!s.empty()) s += ", ";
    s += n.name;
  }
  return s;
}

/// How a GGUF's quantized weights compute under `numerics`: llama.cpp's dot products (the
/// activation quantized to the format's vec_dot partner) or fp32 dots of the dequantized values.
inline io::GgufLinearSemantics gguf_semantics(std::string_view numerics) {
  return numerics == "llama.cpp" ? io::GgufLinearSemantics::partner_dot
                                 : io::GgufLinearSemantics::dequant_dot;
}

/// The numerics a command uses when `--numerics` is not given: `llama.cpp` for a GGUF file (what
/// llama.cpp computes on it, at llama.cpp's speed), `reference` for a checkpoint (a directory or a
/// .safetensors file; what the official reference computes).
inline std::string default_numerics(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool checkpoint =
      fs::is_directory(path, ec) || fs::path(path).extension() == ".safetensors";
  return checkpoint ? "reference" : "llama.cpp";
}

/// Opens the model `path` names and calls f(source, config): a llama.cpp deepseek4 GGUF file
/// (weights computed with `semantics`), a checkpoint directory (config.json and its safetensors
/// shards), or one .safetensors file in reference names with config.json beside it. `on_read`,
/// when set, hears the progress of the load (io/load_meter.hpp); `repack`: io::GgufModel's
/// llama_repack.
template <class F>
void visit_model_source(const std::string& path, io::GgufLinearSemantics semantics, F&& f,
                        const io::LoadMeter::Callback& on_read = {}, bool repack = true) {
  namespace fs = std::filesystem;
  DSV4_CHECK(fs::exists(path), InputError, "{}: no such file or directory", path);
  if (fs::is_directory(path)) {
    auto ckpt = io::Checkpoint::open(path);
    if (on_read) ckpt.report_reads(on_read);
    f(std::as_const(ckpt), ckpt.config());
    return;
  }
  if (fs::path(path).extension() == ".safetensors") {
    fs::path config = fs::path(path).parent_path() / "config.json";
    DSV4_CHECK(fs::exists(config), InputError,
               "{}: a single safetensors file needs config.json in its directory", path);
    io::Checkpoint ckpt(config, {fs::path(path)});
    if (on_read) ckpt.report_reads(on_read);
    f(std::as_const(ckpt), ckpt.config());
    return;
  }
  io::GgufModel src(path, semantics, repack);
  if (on_read) src.report_reads(on_read);
  f(std::as_const(src), src.config());
}

}  // namespace dsv4::cli
