// `dsv4 convert DIR OUT.gguf [--type F16]`: a checkpoint directory (config.json + safetensors, in
// reference or Hugging Face names; FP8/FP4 weights dequantized) to a llama.cpp `deepseek4` GGUF
// (io/gguf_convert.hpp). A directory with model.safetensors.index.json is read through its index;
// one with a single `weights.safetensors` (the golden tiny checkpoints) through that file; any
// other through its *.safetensors files. The tokenizer keys come from DIR/tokenizer.json when it
// exists; --meta KEY=VALUE / --meta-u32 KEY=N add further keys (license, description, data set).
// Streams tensor by tensor; OUT appears only when the run succeeded.
#include <fmt/core.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf_convert.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_split.hpp>
#include <dsv4/io/output_file.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "cancellation.hpp"
#include "commands.hpp"
#include "progress_bar.hpp"

namespace dsv4::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertCliOptions {
  std::string input;
  std::string output;
  std::string type = "F16";
  std::string name;
  std::string tokenizer;
  bool no_tokenizer = false;
  std::vector<std::string> meta;      // KEY=VALUE, string values
  std::vector<std::string> meta_u32;  // KEY=N, uint32 values
  bool no_mtp = false;
  bool allow_incompatible = false;
  bool quiet = false;
  bool dry_run = false;
  unsigned threads = 0;
  std::string split_max_size;
  std::uint64_t split_max_tensors = 0;
};

/// "KEY=VALUE" of --meta / --meta-u32 split at the first '='.
std::pair<std::string, std::string> split_meta(const std::string& arg, const char* option) {
  const auto eq = arg.find('=');
  DSV4_CHECK(eq != std::string::npos && eq > 0, InputError,
             "{} {}: expected KEY=VALUE (e.g. general.license=MIT)", option, arg);
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

std::vector<std::pair<std::string, io::GgufValue>> extra_metadata(const ConvertCliOptions& o) {
  std::vector<std::pair<std::string, io::GgufValue>> out;
  for (const auto& m : o.meta) {
    auto [k, v] = split_meta(m, "--meta");
    out.emplace_back(std::move(k), io::GgufValue(std::move(v)));
  }
  for (const auto& m : o.meta_u32) {
    const auto [k, v] = split_meta(m, "--meta-u32");
    std::uint32_t n = 0;
    const auto* end = v.data() + v.size();
    const auto r = std::from_chars(v.data(), end, n);
    DSV4_CHECK(!v.empty() && r.ec == std::errc() && r.ptr == end, InputError,
               "--meta-u32 {}: '{}' is not an unsigned 32-bit integer", m, v);
    out.emplace_back(k, io::GgufValue(n));
  }
  return out;
}

/// The checkpoint of `dir` (see the top of this file).
io::Checkpoint open_checkpoint(const fs::path& dir) {
  DSV4_CHECK(fs::is_directory(dir), InputError,
             "convert: {} is not a directory (expected config.json and *.safetensors)",
             dir.string());
  if (!fs::exists(dir / "model.safetensors.index.json") &&
      fs::exists(dir / "weights.safetensors")) {
    return io::Checkpoint(dir / "config.json", {dir / "weights.safetensors"});
  }
  return io::Checkpoint::open(dir);
}

void run_convert(const ConvertCliOptions& o) {
  const auto ft = gguf::file_type_from_name(o.type);
  DSV4_CHECK(ft.has_value(), InputError, "--type {}: unknown file type (expected one of: {})",
             o.type, file_type_list());
  const fs::path dir(o.input);
  // from the first step: a signal while the checkpoint is read or planned is honoured too
  std::optional<InterruptScope> signals;
  if (!o.dry_run) signals.emplace();
  const std::string not_written = o.output + " was not written";
  if (!o.dry_run) {
    std::vector<fs::path> inputs{dir};
    if (!o.tokenizer.empty()) inputs.emplace_back(o.tokenizer);
    io::check_output_path(o.output, inputs);
  }
  const io::Checkpoint ckpt = open_checkpoint(dir);
  const ModelConfig& cfg = ckpt.config();
  check_interrupted(not_written);

  std::optional<io::GgufTokenizer> tok;
  if (!o.no_tokenizer) {
    const fs::path tj = o.tokenizer.empty() ? dir / "tokenizer.json" : fs::path(o.tokenizer);
    if (fs::exists(tj)) {
      tok = io::gguf_tokenizer_from_json(tj, cfg.vocab_size);
    } else {
      DSV4_CHECK(o.tokenizer.empty(), InputError, "--tokenizer {}: no such file", o.tokenizer);
      if (!o.quiet) {
        fmt::print(stderr,
                   "convert: note: {} has no tokenizer.json; the GGUF gets no tokenizer keys "
                   "(llama.cpp needs them to load it)\n",
                   dir.string());
      }
    }
  }

  io::ConvertOptions opt;
  opt.file_type = *ft;
  opt.name = o.name.empty() ? fs::absolute(dir).lexically_normal().filename().string() : o.name;
  if (opt.name.empty()) opt.name = "DeepSeek-V4";
  opt.include_mtp = !o.no_mtp;
  opt.llama_cpp_compatible = !o.allow_incompatible;
  opt.tokenizer = tok ? &*tok : nullptr;
  opt.extra_metadata = extra_metadata(o);
  opt.split = split_limits(o.split_max_size, o.split_max_tensors);

  const auto t0 = std::chrono::steady_clock::now();
  if (o.dry_run) {
    const auto plan = io::plan_conversion(cfg, opt);
    for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
      const auto& t = plan.tensors[k];
      const auto& m = plan.sources[k];
      fmt::print("{:<40} {:<18} {:<7} {:>12}  <- {}{}\n", t.name, io::gguf_shape_string(t.ne),
                 gguf::type_name(t.type), human_bytes(double(t.n_bytes)), m.reference.front(),
                 m.reference.size() > 1 ? fmt::format(" (+{})", m.reference.size() - 1) : "");
    }
    fmt::print("{}: {} tensors -> {} ({})\n", o.input, plan.tensors.size(),
               human_bytes(double(plan.file_size)), gguf::file_type_name(*ft));
    return;
  }

  check_interrupted(not_written);
  const bool bar = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  ProgressBar progress_bar;
  io::ConvertPlan plan;
  try {
    plan = io::convert_to_gguf_file(ckpt, cfg, o.output, opt, [&](const io::ConvertProgress& p) {
      // cancelling = throwing from here: the output's temporary file is removed on the way out
      check_interrupted(not_written);
      if (bar) progress_bar.update(p);
    });
  } catch (...) {
    progress_bar.clear();
    throw;
  }
  progress_bar.clear();
  if (o.quiet) return;

  for (const auto& n : plan.notes) fmt::print(stderr, "convert: note: {}\n", n);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, int> counts;
  std::uint64_t elements = 0;
  for (const auto& t : plan.tensors) {
    ++counts[std::string(gguf::type_name(t.type))];
    elements += static_cast<std::uint64_t>(t.n_elements());
  }
  std::string types;
  for (const auto& [name, n] : counts)
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, n);
  fmt::print("{} -> {}: {}, {} tensors ({}), {}, {:.2f} bits per weight, {:.1f} s\n", o.input,
             output_names(o.output, plan.shards.size(), opt.split.active()),
             gguf::file_type_name(*ft), plan.tensors.size(), types,
             human_bytes(double(plan.file_size)),
             elements > 0 ? 8.0 * double(plan.file_size) / double(elements) : 0.0, seconds);
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto opts = std::make_shared<ConvertCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a checkpoint directory to a llama.cpp deepseek4 GGUF file");
  cmd->add_option("input", opts->input,
                  "checkpoint directory: config.json and *.safetensors (reference or Hugging Face "
                  "names; FP8/FP4 weights are dequantized)")
      ->required();
  cmd->add_option("output", opts->output,
                  "output GGUF file (written to a temporary file first, renamed when complete)")
      ->required();
  cmd->add_option("--type", opts->type,
                  "file type: " + file_type_list() +
                      " (not F32: the file `dsv4 quantize --type T` makes from the F32 one)")
      ->capture_default_str();
  cmd->add_option("--name", opts->name, "general.name (default: the directory's name)");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json for the tokenizer keys (default: DIR/tokenizer.json if present)");
  cmd->add_flag("--no-tokenizer", opts->no_tokenizer, "write no tokenizer keys");
  cmd->add_option("--meta", opts->meta,
                  "KEY=VALUE: a further string key, e.g. general.license=MIT or "
                  "general.description=...; repeatable");
  cmd->add_option("--meta-u32", opts->meta_u32,
                  "KEY=N: a further uint32 key, e.g. general.dataset.count=1; repeatable");
  cmd->add_flag("--no-mtp", opts->no_mtp, "leave the MTP blocks out");
  cmd->add_flag("--allow-incompatible", opts->allow_incompatible,
                "write models llama.cpp cannot load (e.g. compress ratios other than 0, 4, 128); "
                "dsv4 reads them");
  cmd->add_option("-t,--threads", opts->threads,
                  "worker threads (accepted for every command; the conversion runs on one)")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", opts->quiet, "no progress bar and no summary");
  cmd->add_flag("--dry-run", opts->dry_run, "print every tensor's type and size, write nothing");
  cmd->add_option("--split-max-size", opts->split_max_size,
                  "N(M|G): split the output into files of at most N megabytes or gigabytes of "
                  "tensors, named OUT-00001-of-0000K.gguf (as llama-gguf-split)");
  cmd->add_option("--split-max-tensors", opts->split_max_tensors,
                  "N: split the output into files of at most N tensors (as llama-gguf-split)");
  cmd->callback([opts] { run_convert(*opts); });
}

}  // namespace dsv4::cli
