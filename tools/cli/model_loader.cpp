// load_any_model: checks the command line's backend and numerics choice and calls the one
// instantiation that serves it (instances/model_instance.cpp).
#include "model_loader.hpp"

#include <fmt/core.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <filesystem>
#include <string>
#include <system_error>

#include "model_choice.hpp"
#include "model_files.hpp"

namespace dsv4::cli {

AnyModel load_any_model(const std::string& path, const BackendChoice& c,
                        std::string_view numerics) {
  check_backend_choice(c);
  const auto sem = gguf_semantics(numerics);
  const bool cpu = c.name == "cpu";
#if !DSV4_CLI_HAVE_CPU
  DSV4_CHECK(!cpu, InputError, "--backend cpu: this build has no CPU backend");
#endif
  instances::ModelNumerics n{};
  if (numerics == "reference") {
    n = instances::ModelNumerics::reference;
  } else if (numerics == "reference-torch1") {
    n = instances::ModelNumerics::reference_torch1;
  } else if (numerics == "reference-fp32") {
    n = instances::ModelNumerics::reference_fp32;
  } else if (numerics == "fp32" || numerics == "llama.cpp") {
    n = instances::ModelNumerics::fp32;
  } else {
    throw InputError("--numerics " + std::string(numerics) + ": expected one of " +
                     numerics_list());
  }
  Progress progress("loading", "MiB");
  const io::LoadMeter::Callback on_read = [&](std::uint64_t done, std::uint64_t total) {
    progress.update(static_cast<std::size_t>(done >> 20), static_cast<std::size_t>(total >> 20));
  };
#if DSV4_CLI_HAVE_CPU
  if (cpu) return instances::load_cpu_model(path, n, sem, !c.no_repack, c.threads, on_read);
#endif
  return instances::load_reference_model(path, n, sem, !c.no_repack, c.threads, on_read);
}

OpenModel open_model(const fs::path& path, const BackendChoice& backend) {
  std::error_code ec;
  DSV4_CHECK(fs::exists(path, ec), InputError, "{}: no such file or directory", path.string());
  const auto t0 = std::chrono::steady_clock::now();
  OpenModel m{path, {}, open_model_tokenizer(path), 0.0};
  m.model = load_any_model(path.string(), backend, "llama.cpp");
  DSV4_CHECK(m.tok.tokenizer.vocab_size() <= m.model.config().vocab_size, FormatError,
             "{}: the tokenizer has {} ids but the model's vocabulary only {}", path.string(),
             m.tok.tokenizer.vocab_size(), m.model.config().vocab_size);
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (m.load_seconds > 1.0) {
    fmt::print(stderr, "loaded {} in {:.1f} s\n", path.string(), m.load_seconds);
  }
  return m;
}

}  // namespace dsv4::cli
