// Shared by the commands that stream a model into a new file (`quantize`, `convert`): Ctrl-C or
// SIGTERM asks the running job to stop at the next check (between stages, and at every tensor
// while writing); the job then throws Interrupted, which main() reports with exit code 130. A
// second signal ends the program at once. Also the help text listing the GGUF file types.
#pragma once

#include <csignal>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf_split.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace dsv4::cli {

/// Exit codes of the dsv4 program (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInterrupted = 130;

/// A job stopped because of SIGINT or SIGTERM; the message says what was not done.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline volatile std::sig_atomic_t interrupted_flag = 0;
extern "C" inline void on_interrupt_signal(int sig) {
  interrupted_flag = 1;
  std::signal(sig, SIG_DFL);  // a second signal ends the program at once
}
}  // namespace detail

/// Clears the flag and routes SIGINT and SIGTERM to it.
inline void install_interrupt_handlers() {
  detail::interrupted_flag = 0;
  std::signal(SIGINT, detail::on_interrupt_signal);
  std::signal(SIGTERM, detail::on_interrupt_signal);
}

/// Whether a signal arrived since install_interrupt_handlers().
inline bool interrupted() { return detail::interrupted_flag != 0; }

/// Throws Interrupted("<what>") when a signal arrived: a check between stages of a job.
inline void check_interrupted(const std::string& what) {
  if (interrupted()) throw Interrupted(what);
}

/// The handlers for the lifetime of a job (from its first step: reading the input, planning),
/// the default ones again afterwards.
class InterruptScope {
 public:
  InterruptScope() { install_interrupt_handlers(); }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  ~InterruptScope() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
};

/// --split-max-size N(M|G) and --split-max-tensors N (llama-gguf-split's options, for
/// `quantize` and `convert`); one at most.
inline io::GgufSplitLimits split_limits(const std::string& max_size, std::uint64_t max_tensors) {
  DSV4_CHECK(max_size.empty() || max_tensors == 0, InputError,
             "--split-max-size and --split-max-tensors: give one of them, not both");
  io::GgufSplitLimits l;
  if (!max_size.empty()) l.max_bytes = io::parse_split_size(max_size, "--split-max-size");
  l.max_tensors = max_tensors;
  return l;
}

/// The name(s) a writer wrote: OUT, or "PREFIX-00001-of-0000N.gguf ... -0000N-of-0000N.gguf".
inline std::string output_names(const std::string& out, std::size_t n, bool split_names) {
  if (!split_names) return out;
  const std::string prefix = io::gguf_split_prefix(out);
  if (n == 1) return io::gguf_split_path(prefix, 0, 1);
  return io::gguf_split_path(prefix, 0, n) + " ... " +
         std::filesystem::path(io::gguf_split_path(prefix, n - 1, n)).filename().string();
}

/// "F32, F16, ...": every GGUF file type a recipe exists for.
inline std::string file_type_list() {
  std::string s;
  for (const auto& i : gguf::kFileTypes) {
    if (!s.empty()) s += ", ";
    s += i.name;
  }
  return s;
}

}  // namespace dsv4::cli
