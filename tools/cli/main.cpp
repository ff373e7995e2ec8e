// The dsv4 command-line program.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <dsv4/core/error.hpp>
#include <exception>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"dsv4: DeepSeek-V4 as composable C++ templates"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsv4 0.1.0");
  dsv4::cli::add_plan_command(app);
  dsv4::cli::add_quantize_command(app);
  dsv4::cli::add_convert_command(app);
  dsv4::cli::add_inspect_command(app);
  dsv4::cli::add_tokenize_commands(app);
  dsv4::cli::add_eval_command(app);
  dsv4::cli::add_generate_command(app);
  dsv4::cli::add_chat_command(app);
  dsv4::cli::add_perplexity_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dsv4::Error& e) {
    fmt::print(stderr, "dsv4: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dsv4: unexpected error: {}\n", e.what());
    return 2;
  }
  return 0;
}
