// `dsv4 quantize IN.gguf OUT.gguf Q4_K_M [-t N] [--pure]` (or `--type Q4_K_M`): llama-quantize's
// per-tensor recipe for a GGUF model, written byte for byte as llama-quantize writes it
// (io/gguf_quantize.hpp, formats/gguf_recipe.hpp). Streams tensor by tensor; OUT appears only
// when the run succeeded, and an OUT that is IN or cannot be written is refused before any work.
// llama-quantize's per-tensor options as it spells them: --leave-output-tensor,
// --output-tensor-type TYPE, --token-embedding-type TYPE, --tensor-type NAME=TYPE (NAME
// lower-cased and searched as a regular expression in tensor names, first match wins),
// --tensor-type-file FILE (NAME=TYPE entries separated by white space) and --override-kv
// KEY=TYPE:VALUE (int, float, bool or str; an int is written as UINT32 of its magnitude and a
// float as F32, as llama-quantize writes them). --imatrix FILE with --include-weights /
// --exclude-weights: importance-weighted quantization as llama-quantize --imatrix does it.
// --keep-split, --split-max-size, --split-max-tensors: split outputs (io/gguf_split.hpp).
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/io/imatrix.hpp>
#include <dsv4/io/output_file.hpp>
#include <dsv4/io/quantize_options.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cancellation.hpp"
#include "commands.hpp"
#include "progress_bar.hpp"

namespace dsv4::cli {
namespace {

struct QuantizeCliOptions {
  std::string input;
  std::string output;
  std::string type;      // --type
  std::string type_arg;  // the third positional argument
  bool pure = false;
  bool json = false;
  bool allow_requantize = false;
  unsigned threads = 0;
  bool quiet = false;
  bool dry_run = false;
  bool leave_output_tensor = false;
  std::string output_tensor_type;
  std::string token_embedding_type;
  std::vector<std::string> tensor_types;
  std::string tensor_type_file;
  std::vector<std::string> override_kv;
  bool keep_split = false;
  std::string imatrix;
  std::vector<std::string> include_weights;
  std::vector<std::string> exclude_weights;
  std::string split_max_size;
  std::uint64_t split_max_tensors = 0;
};

/// llama-quantize's per-tensor type options (io/quantize_options.hpp).
gguf::TypeOverrides type_overrides(const QuantizeCliOptions& o) {
  gguf::TypeOverrides ov;
  ov.quantize_output = !o.leave_output_tensor;
  if (!o.output_tensor_type.empty()) {
    ov.output_type =
        io::ggml_type_option(o.output_tensor_type, "--output-tensor-type " + o.output_tensor_type);
  }
  if (!o.token_embedding_type.empty()) {
    ov.token_embedding_type = io::ggml_type_option(
        o.token_embedding_type, "--token-embedding-type " + o.token_embedding_type);
  }
  std::vector<std::string> entries = o.tensor_types;
  if (!o.tensor_type_file.empty()) {
    std::ifstream in(o.tensor_type_file);
    DSV4_CHECK(in.good(), InputError, "--tensor-type-file {}: cannot be read", o.tensor_type_file);
    for (std::string e; in >> e;) entries.push_back(e);
  }
  ov.tensor_type = io::tensor_type_matcher(entries);
  return ov;
}

void print_plan(const io::GgufFile& in, const io::QuantizePlan& plan) {
  for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
    const auto& t = plan.tensors[k];
    const auto& s = in.tensors()[plan.source[k]];
    fmt::print("{:<40} {:<18} {:>7} -> {:<7} {:>12}\n", t.name, io::gguf_shape_string(t.ne),
               gguf::type_name(s.type), gguf::type_name(t.type), human_bytes(double(t.n_bytes)));
  }
}

void run_quantize(const QuantizeCliOptions& o) {
  // usage errors (exit code 2): no file type, or two different ones
  if (o.type.empty() && o.type_arg.empty()) {
    throw CLI::ValidationError(
        "no file type (give it as the third argument or with --type; one of: " + file_type_list() +
            ")",
        CLI::ExitCodes::ValidationError);
  }
  if (!o.type.empty() && !o.type_arg.empty() && o.type != o.type_arg) {
    throw CLI::ValidationError(
        fmt::format("two file types, {} (argument) and --type {}", o.type_arg, o.type),
        CLI::ExitCodes::ValidationError);
  }
  const std::string type = o.type.empty() ? o.type_arg : o.type;
  const auto ft = gguf::file_type_from_name(type);
  DSV4_CHECK(ft.has_value(), InputError, "file type {}: unknown (expected one of: {})", type,
             file_type_list());
  io::QuantizeOptions opt;
  opt.file_type = *ft;
  opt.pure = o.pure;
  opt.allow_requantize = o.allow_requantize;
  opt.threads = o.threads;
  opt.overrides = type_overrides(o);
  for (const std::string& kv : o.override_kv) opt.kv_overrides.push_back(io::kv_override(kv));
  std::optional<io::Imatrix> imatrix;
  if (!o.imatrix.empty()) {
    imatrix = io::load_imatrix(o.imatrix);
    const std::size_t loaded = imatrix->entries.size();
    io::filter_imatrix(*imatrix, o.include_weights, o.exclude_weights);
    opt.imatrix = &*imatrix;
    opt.imatrix_file = o.imatrix;
    if (!o.quiet && !o.json) {
      fmt::print(
          stderr, "imatrix {}: {} of {} entries{}\n", o.imatrix, imatrix->entries.size(), loaded,
          imatrix->chunk_count > 0 ? fmt::format(", computed on {} chunks", imatrix->chunk_count)
                                   : std::string());
    }
  } else {
    DSV4_CHECK(o.include_weights.empty() && o.exclude_weights.empty(), InputError,
               "--include-weights and --exclude-weights select entries of an importance matrix; "
               "give one with --imatrix FILE");
  }
  opt.keep_split = o.keep_split;
  opt.split = split_limits(o.split_max_size, o.split_max_tensors);
  const bool split = opt.keep_split || opt.split.active();

  const auto t0 = std::chrono::steady_clock::now();
  if (o.dry_run) {
    const io::GgufFile in(o.input);
    const auto plan = io::plan_quantization(in, opt);
    print_plan(in, plan);
    fmt::print("{}: {} tensors, {} -> {} ({}{}){}\n", o.input, plan.tensors.size(),
               human_bytes(double(in.total_bytes())), human_bytes(double(plan.file_size)),
               gguf::file_type_name(*ft), o.pure ? ", pure" : "",
               plan.split_names ? fmt::format(" in {} files: {}", plan.shards.size(),
                                              output_names(o.output, plan.shards.size(), true))
                                : std::string());
    return;
  }

  const InterruptScope signals;  // from the first step: a signal during planning is honoured too
  if (!split) io::check_output_path(o.output, {o.input});
  const std::string not_written = o.output + " was not written";
  const bool bar = !o.quiet && !o.json && ::isatty(STDERR_FILENO) != 0;
  ProgressBar progress_bar;
  io::QuantizePlan plan;
  try {
    plan = io::quantize_gguf_file(o.input, o.output, opt, [&](const io::QuantizeProgress& p) {
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

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, int> counts;
  std::uint64_t elements = 0;
  for (const auto& t : plan.tensors) {
    ++counts[std::string(gguf::type_name(t.type))];
    elements += static_cast<std::uint64_t>(t.n_elements());
  }
  const double bpw = elements > 0 ? 8.0 * double(plan.file_size) / double(elements) : 0.0;
  if (o.json) {
    nlohmann::ordered_json j;
    j["input"] = o.input;
    j["output"] = o.output;
    std::vector<std::string> files;
    const std::string prefix = io::gguf_split_prefix(o.output);
    for (std::size_t k = 0; k < plan.shards.size(); ++k) {
      files.push_back(plan.split_names ? io::gguf_split_path(prefix, k, plan.shards.size())
                                       : o.output);
    }
    j["files"] = files;
    j["file_type"] = gguf::file_type_name(*ft);
    j["pure"] = o.pure;
    j["requantized"] = o.allow_requantize;
    if (imatrix) {
      j["imatrix"] = {{"file", o.imatrix},
                      {"entries", imatrix->entries.size()},
                      {"chunks", imatrix->chunk_count}};
    }
    j["tensors"] = plan.tensors.size();
    j["tensor_types"] = counts;
    j["bytes"] = plan.file_size;
    j["elements"] = elements;
    j["bits_per_weight"] = bpw;
    j["seconds"] = seconds;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  std::string types;
  for (const auto& [name, n] : counts)
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, n);
  fmt::print("{} -> {}: {} ({}{}), {} tensors ({}), {}, {:.2f} bits per weight, {:.1f} s\n",
             o.input, output_names(o.output, plan.shards.size(), plan.split_names),
             gguf::file_type_name(*ft), o.pure ? "pure" : "recipe",
             o.allow_requantize ? ", requantized" : "", plan.tensors.size(), types,
             human_bytes(double(plan.file_size)), bpw, seconds);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto opts = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Quantize a GGUF model with llama-quantize's per-tensor recipe (same bytes as llama.cpp)");
  cmd->add_option("input", opts->input, "input GGUF file (F32, F16 or BF16 weights)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("output", opts->output,
                  "output GGUF file (written to a temporary file first, renamed when complete)")
      ->required();
  cmd->add_option("type", opts->type_arg, "file type: " + file_type_list());
  cmd->add_option("--type", opts->type, "file type, instead of the third argument");
  cmd->add_flag("--pure", opts->pure,
                "every 2-D weight gets the requested type (no per-tensor mix; fallbacks remain)");
  cmd->add_flag("--allow-requantize", opts->allow_requantize,
                "allow re-quantizing tensors that are already quantized (loses accuracy)");
  cmd->add_option("-t,--threads", opts->threads, "worker threads (0: all cores)")
      ->capture_default_str();
  cmd->add_flag("--json", opts->json, "print the summary as JSON");
  cmd->add_flag("--quiet,-q", opts->quiet, "no progress bar and no summary");
  cmd->add_flag("--dry-run", opts->dry_run, "print every tensor's type and size, write nothing");
  cmd->add_flag("--leave-output-tensor", opts->leave_output_tensor,
                "leave output.weight in its input type (not quantized)");
  cmd->add_option("--output-tensor-type", opts->output_tensor_type,
                  "ggml type of output.weight (e.g. q8_0)");
  cmd->add_option("--token-embedding-type", opts->token_embedding_type,
                  "ggml type of token_embd.weight (e.g. q8_0)");
  cmd->add_option("--tensor-type", opts->tensor_types,
                  "NAME=TYPE: tensors whose name NAME (a regular expression, lower-cased) finds "
                  "get TYPE; repeatable, first match wins")
      ->allow_extra_args(false);
  cmd->add_option("--tensor-type-file", opts->tensor_type_file,
                  "a file of NAME=TYPE entries separated by white space");
  cmd->add_option("--override-kv", opts->override_kv,
                  "KEY=TYPE:VALUE (int, float, bool, str): set a key/value in the output; "
                  "repeatable")
      ->allow_extra_args(false);
  cmd->add_option("--imatrix", opts->imatrix,
                  "importance matrix of llama-imatrix (GGUF or legacy .dat): importance-weighted "
                  "quantization, the same bytes as llama-quantize --imatrix")
      ->check(CLI::ExistingFile);
  cmd->add_option("--include-weights", opts->include_weights,
                  "use the importance only for tensors whose name contains this; repeatable")
      ->allow_extra_args(false);
  cmd->add_option("--exclude-weights", opts->exclude_weights,
                  "no importance for tensors whose name contains this (e.g. attn_output_a: "
                  "llama-imatrix records the grouped output projection at o_groups times its "
                  "width); repeatable")
      ->allow_extra_args(false);
  cmd->add_flag("--keep-split", opts->keep_split,
                "quantize a split model into as many files, named OUT-00001-of-0000N.gguf "
                "(as llama-quantize --keep-split)");
  cmd->add_option("--split-max-size", opts->split_max_size,
                  "N(M|G): split the output into files of at most N megabytes or gigabytes of "
                  "tensors, named OUT-00001-of-0000K.gguf (as llama-gguf-split)");
  cmd->add_option("--split-max-tensors", opts->split_max_tensors,
                  "N: split the output into files of at most N tensors (as llama-gguf-split)");
  cmd->callback([opts] { run_quantize(*opts); });
}

}  // namespace dsv4::cli
