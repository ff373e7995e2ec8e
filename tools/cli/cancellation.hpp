// Shared by the commands that stream a model into a new file (`quantize`, `convert`): Ctrl-C or
// SIGTERM asks the running job to stop at the next tensor (a second signal ends the program at
// once), and the help text listing the GGUF file types.
#pragma once

#include <csignal>
#include <dsv4/formats/gguf_recipe.hpp>
#include <string>

namespace dsv4::cli {

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
