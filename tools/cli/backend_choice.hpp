// The command line's choice of backend: `--backend cpu|reference` (default cpu) and
// `--threads N` / `-t N` (default 0: the machine's physical cores), and the one place where that
// choice is checked; model_loader.hpp turns it into a backend type. A build without the CPU backend
// (DSV4_CPU=OFF) runs the reference backend and refuses `cpu`.
#pragma once

#include <CLI/CLI.hpp>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <string>
#include <utility>

namespace dsv4::cli {

struct BackendChoice {
  std::string name = DSV4_CLI_HAVE_CPU ? "cpu" : "reference";  ///< "cpu" or "reference"
  int threads = 0;  ///< cpu threads; 0 = the physical cores
  /// GGUF Q4_0 / Q4_K / Q2_K weights by llama.cpp's vec_dot, as its --no-repack (default: the
  /// orders of the kernels its CPU backend repacks them for, io::GgufModel)
  bool no_repack = false;
};

/// Adds --backend and --threads/-t to a command.
inline void add_backend_options(CLI::App* cmd, BackendChoice& c) {
  cmd->add_option("--backend", c.name,
                  "cpu (SIMD kernels on several threads; default) or reference (the scalar, "
                  "single-threaded oracle)");
  cmd->add_option("-t,--threads", c.threads,
                  "threads of the cpu backend (default: the machine's physical cores)");
  cmd->add_flag("--no-repack", c.no_repack,
                "llama.cpp numerics: multiply a GGUF's Q4_0, Q4_K and Q2_K weights as llama.cpp "
                "does with --no-repack (its vec_dot), not in the orders of its repacked kernels");
}

/// Checks the choice: InputError naming the option.
inline void check_backend_choice(const BackendChoice& c) {
  DSV4_CHECK(c.name == "cpu" || c.name == "reference", InputError,
             "--backend {}: expected cpu or reference", c.name);
  DSV4_CHECK(c.threads >= 0 && c.threads <= 4096, InputError,
             "--threads {}: expected 0 (the physical cores) up to 4096", c.threads);
  DSV4_CHECK(c.name == "cpu" || c.threads == 0, InputError,
             "--threads {}: the reference backend runs on one thread", c.threads);
}

}  // namespace dsv4::cli
