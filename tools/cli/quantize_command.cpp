// `dsv4 quantize IN.gguf OUT.gguf --type Q4_K_M [--pure]`: llama-quantize's per-tensor recipe
// for a GGUF model, written byte for byte as llama-quantize writes it (io/gguf_quantize.hpp,
// formats/gguf_recipe.hpp). Streams tensor by tensor; OUT appears only when the run succeeded.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <map>
#include <memory>
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
  std::string type;
  bool pure = false;
  bool allow_requantize = false;
  unsigned threads = 0;
  bool quiet = false;
  bool dry_run = false;
};

void print_plan(const io::GgufFile& in, const io::QuantizePlan& plan) {
  for (std::size_t k = 0; k < plan.tensors.size(); ++k) {
    const auto& t = plan.tensors[k];
    const auto& s = in.tensors()[plan.source[k]];
    fmt::print("{:<40} {:<18} {:>7} -> {:<7} {:>12}\n", t.name, io::gguf_shape_string(t.ne),
               gguf::type_name(s.type), gguf::type_name(t.type), human_bytes(double(t.n_bytes)));
  }
}

void run_quantize(const QuantizeCliOptions& o) {
  const auto ft = gguf::file_type_from_name(o.type);
  DSV4_CHECK(ft.has_value(), InputError, "--type {}: unknown file type (expected one of: {})",
             o.type, file_type_list());
  io::QuantizeOptions opt;
  opt.file_type = *ft;
  opt.pure = o.pure;
  opt.allow_requantize = o.allow_requantize;
  opt.threads = o.threads;

  const auto t0 = std::chrono::steady_clock::now();
  if (o.dry_run) {
    const io::GgufFile in(o.input);
    const auto plan = io::plan_quantization(in, opt);
    print_plan(in, plan);
    fmt::print("{}: {} tensors, {} -> {} ({}{})\n", o.input, plan.tensors.size(),
               human_bytes(double(in.bytes().size())), human_bytes(double(plan.file_size)),
               gguf::file_type_name(*ft), o.pure ? ", pure" : "");
    return;
  }

  const bool bar = !o.quiet && ::isatty(STDERR_FILENO) != 0;
  ProgressBar progress_bar;
  install_interrupt_handlers();
  io::QuantizePlan plan;
  try {
    plan = io::quantize_gguf_file(o.input, o.output, opt, [&](const io::QuantizeProgress& p) {
      // cancelling = throwing from here: the output's temporary file is removed on the way out
      if (interrupted()) throw InputError("interrupted; " + o.output + " was not written");
      if (bar) progress_bar.update(p);
    });
  } catch (...) {
    progress_bar.clear();
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    throw;
  }
  progress_bar.clear();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (o.quiet) return;

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
  fmt::print("{} -> {}: {} ({}{}), {} tensors ({}), {}, {:.2f} bits per weight, {:.1f} s\n",
             o.input, o.output, gguf::file_type_name(*ft), o.pure ? "pure" : "recipe",
             o.allow_requantize ? ", requantized" : "", plan.tensors.size(), types,
             human_bytes(double(plan.file_size)),
             elements > 0 ? 8.0 * double(plan.file_size) / double(elements) : 0.0, seconds);
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
  cmd->add_option("--type,-t", opts->type, "file type: " + file_type_list())->required();
  cmd->add_flag("--pure", opts->pure,
                "every 2-D weight gets the requested type (no per-tensor mix; fallbacks remain)");
  cmd->add_flag("--allow-requantize", opts->allow_requantize,
                "allow re-quantizing tensors that are already quantized (loses accuracy)");
  cmd->add_option("--threads", opts->threads, "worker threads (0: all cores)")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", opts->quiet, "no progress bar and no summary");
  cmd->add_flag("--dry-run", opts->dry_run, "print every tensor's type and size, write nothing");
  cmd->callback([opts] { run_quantize(*opts); });
}

}  // namespace dsv4::cli
