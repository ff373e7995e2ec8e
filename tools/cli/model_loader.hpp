// The command line's one runtime → type bridge for running models: a MODEL path, `--backend`,
// `--threads` and `--numerics` become a loaded, type-erased model (AnyModel). Each combination of
// backend and numerics is instantiated once, in its own translation unit (instances/), and every
// command that runs a model shares them.
#pragma once

#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/load_meter.hpp>
#include <dsv4/model/any_model.hpp>
#include <string>
#include <string_view>

#include "backend_choice.hpp"

namespace dsv4::cli {

/// Loads `path` (a deepseek4 GGUF file, a checkpoint directory, or one reference-named
/// .safetensors file with config.json beside it) onto the chosen backend, computing with the
/// numerics named `numerics` (model_choice.hpp's numerics_names). Errors name the option or file.
/// A load that takes over a second shows its progress on stderr (MiB of tensors read, the rate
/// and the time left).
AnyModel load_any_model(const std::string& path, const BackendChoice& backend,
                        std::string_view numerics);

namespace instances {

/// The numerics policies the instances compile (llama.cpp numerics are fp32 with partner dots).
enum class ModelNumerics { reference, reference_torch1, reference_fp32, fp32 };

/// One function per backend (instances/model_instance.cpp, compiled once per backend): loads
/// `path` with GGUF weights computed as `semantics` and `repack` (io::GgufModel) say, telling
/// `on_read` its progress.
AnyModel load_reference_model(const std::string& path, ModelNumerics numerics,
                              io::GgufLinearSemantics semantics, bool repack, int threads,
                              const io::LoadMeter::Callback& on_read);
AnyModel load_cpu_model(const std::string& path, ModelNumerics numerics,
                        io::GgufLinearSemantics semantics, bool repack, int threads,
                        const io::LoadMeter::Callback& on_read);

}  // namespace instances
}  // namespace dsv4::cli
