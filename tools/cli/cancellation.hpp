// Shared by the commands that stream a model into a new file (`quantize`, `convert`): Ctrl-C or
// SIGTERM asks the running job to stop at the next check (between stages, and at every tensor
// while writing); the job then throws Interrupted, which main() reports with exit code 130. A
// second signal ends the program at once. Also the help text listing the GGUF file types.
#pragma once

#include <csignal>
#include <dsv4/formats/gguf_recipe.hpp>
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
