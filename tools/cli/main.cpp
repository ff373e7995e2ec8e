// The dsv4 command-line program. Every error is one line "dsv4: error: ..." on stderr; the exit
// codes are 0 (success), 1 (an error), 2 (a usage error: unknown command or option, a missing
// or malformed argument) and 130 (interrupted by SIGINT or SIGTERM); docs/cli.md.
#include <fmt/core.h>

#include <CLI/CLI.hpp>

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <algorithm>
#include <dsv4/core/error.hpp>
#include <exception>
#include <ios>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "cancellation.hpp"
#include "commands.hpp"

namespace {

using namespace dsv4::cli;

/// The message on one line (a message never spans lines: newlines become "; ").
std::string one_line(std::string_view msg) {
  std::string out;
  for (const char ch : msg) {
    if (ch == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else {
      out += ch;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

int report(std::string_view msg, int code) {
  fmt::print(stderr, "dsv4: error: {}\n", one_line(msg));
  return code;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// The candidate closest to `word` when it is close enough to be a likely misspelling.
std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = 0;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (best.empty() || d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return !best.empty() && best_d <= std::max<std::size_t>(2, word.size() / 3) ? best : "";
}

std::vector<std::string> option_names(const CLI::App& cmd) {
  std::vector<std::string> out{"--help", "-h"};
  for (const CLI::Option* o : cmd.get_options()) {
    for (const std::string& n : o->get_lnames()) out.push_back("--" + n);
    for (const std::string& n : o->get_snames()) out.push_back("-" + n);
  }
  return out;
}

/// Usage errors CLI11 leaves vague, checked before parsing: an unknown command (named, with the
/// closest command) and an unknown option of a known command (named, with the closest option).
std::string usage_problem(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) return "";
  const std::string first = argv[1];
  if (first.empty() || first[0] == '-') return "";
  const CLI::App* cmd = nullptr;
  std::vector<std::string> names;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(s->get_name());
    if (s->get_name() == first) cmd = s;
  }
  if (cmd == nullptr) {
    const std::string near = closest(first, names);
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    return fmt::format("unknown command '{}'{} (commands: {})", first,
                       near.empty() ? "" : fmt::format("; did you mean '{}'?", near), all);
  }
  const std::vector<std::string> known = option_names(*cmd);
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9')) continue;
    if (const auto eq = arg.find('='); eq != std::string::npos) arg.resize(eq);
    if (arg.size() > 2 && arg[1] != '-') arg.resize(2);  // -t8: the short option -t
    if (std::find(known.begin(), known.end(), arg) != known.end()) continue;
    const std::string near = closest(arg, known);
    return fmt::format("{}: unknown option '{}'{} (see dsv4 {} --help)", first, arg,
                       near.empty() ? "" : fmt::format("; did you mean '{}'?", near), first);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // Buffers of 128 KiB and more always come from mmap and go back to the system when freed.
  // glibc otherwise raises its threshold after the first such free, and a sequence state
  // (hundreds of MB of caches) freed on the heap stays resident next to the next one: +33 MB of
  // peak RSS on the benchmark model, none of it in use.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
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
  dsv4::cli::add_bench_command(app);
  try {
    if (const std::string p = usage_problem(app, argc, argv); !p.empty())
      return report(p, kExitUsage);
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    const std::string sub = argc > 1 && argv[1][0] != '-' ? argv[1] : "";
    if (msg == "A subcommand is required")
      msg = "no command given (see dsv4 --help)";
    else if (!sub.empty())
      msg = fmt::format("{}: {} (see dsv4 {} --help)", sub, msg, sub);
    return report(msg, kExitUsage);
  } catch (const Interrupted& e) {
    fmt::print(stderr, "dsv4: interrupted: {}\n", one_line(e.what()));
    return kExitInterrupted;
  } catch (const dsv4::Error& e) {
    return report(e.what(), kExitError);
  } catch (const std::bad_alloc&) {
    return report(
        "out of memory: the input asks for more memory than this machine can give (a model too "
        "large for it, or sizes in a file that are wrong)",
        kExitError);
  } catch (const std::ios_base::failure& e) {
    return report(fmt::format("a file could not be read or written: {}", e.code().message()),
                  kExitError);
  } catch (const std::exception& e) {
    return report(e.what(), kExitError);
  }
  return kExitOk;
}
