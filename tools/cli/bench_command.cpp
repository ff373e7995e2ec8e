// `dsv4 bench`: prompt-processing and generation speed in the manner of llama.cpp's llama-bench,
// so the same scripts read both tools.
//
//   dsv4 bench -m FILE [-m FILE ...] [-p N,..] [-n N,..] [-d N,..] [-t N,..] [-r N] [-o md|json|
//              csv|jsonl] [--backend cpu|reference] [--numerics NAME] [--no-warmup]
//   dsv4 bench --random CONFIG.json --type Q4_K_M [--seed S] [--random-out FILE.gguf] ...
//
// For every model × thread count × depth: a prompt test per -p value (pp512: N random tokens in
// batches of --batch-size, after `depth` untimed tokens; tokens/s = N / seconds) and a generation
// test per -n value (tg128: N one-token decode calls, after the depth). Each test runs once
// unmeasured (the warm-up) and then -r times, each time on a fresh sequence; the row is the mean
// and standard deviation of the per-run tokens/s. Progress goes to stderr, the table to stdout.
// `--random` makes a seeded random model of any V4 configuration, converted to a GGUF of the
// given type exactly as `dsv4 convert` writes it (with a stand-in tokenizer so that llama.cpp can
// load the same file); `--random-out` keeps that file, otherwise it is removed at the end.
#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/core/scratch.hpp>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/config_json.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_convert.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/any_model.hpp>
#include <dsv4/model/random_checkpoint.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"
#include "model_choice.hpp"
#include "model_loader.hpp"

namespace dsv4::cli {
namespace {

namespace fs = std::filesystem;

struct BenchCliOptions {
  std::vector<std::string> models;
  std::string prompts = "512";
  std::string gens = "128";
  std::string depths = "0";
  std::string threads;
  int reps = 5;
  std::string output = "md";
  std::string numerics = "llama.cpp";
  std::size_t batch = 2048;
  bool no_warmup = false;
  int repack = 1;
  BackendChoice backend;
  std::string random_config;
  std::string random_type = "Q4_K_M";
  std::string random_out;
  std::uint64_t seed = 20260807;
  bool allow_incompatible = false;
};

/// "512,1024" -> {512, 1024}; each a count >= `min`.
std::vector<std::int64_t> parse_list(const std::string& s, std::string_view option,
                                     std::int64_t min) {
  std::vector<std::int64_t> v;
  std::stringstream in(s);
  std::string word;
  while (std::getline(in, word, ',')) {
    std::size_t used = 0;
    long long x = -1;
    try {
      x = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DSV4_CHECK(used == word.size() && !word.empty() && x >= min && x <= (1LL << 30), InputError,
               "{} {}: '{}' is not a count (expected integers >= {}, separated by commas)", option,
               s, word, min);
    v.push_back(x);
  }
  DSV4_CHECK(!v.empty(), InputError, "{}: no value given", option);
  return v;
}

/// What a row says about its model.
struct ModelFacts {
  std::string filename;
  std::string type;  ///< "deepseek4 531M Q4_K_M"
  std::uint64_t size = 0;
  std::uint64_t n_params = 0;
};

std::string param_string(std::uint64_t n) {
  if (n >= 1000000000ULL) return fmt::format("{:.2f} B", double(n) / 1e9);
  return fmt::format("{:.2f} M", double(n) / 1e6);
}
std::string size_string(std::uint64_t n) {
  if (n >= (1ULL << 30)) return fmt::format("{:.2f} GiB", double(n) / double(1ULL << 30));
  return fmt::format("{:.2f} MiB", double(n) / double(1ULL << 20));
}
std::string short_params(std::uint64_t n) {
  if (n >= 1000000000ULL) return fmt::format("{:.0f}B", double(n) / 1e9);
  return fmt::format("{:.0f}M", double(n) / 1e6);
}

/// Size and parameters from the file's own tensors (GGUF) or safetensors shards (directory).
ModelFacts model_facts(const std::string& path) {
  ModelFacts f;
  f.filename = fs::path(path).filename().string();
  if (f.filename.empty()) f.filename = fs::path(path).parent_path().filename().string();
  std::string kind;
  if (fs::is_directory(path)) {
    const auto ckpt = io::Checkpoint::open(path);
    for (const auto& name : ckpt.names()) {
      const auto& t = ckpt.info(name);
      f.size += t.bytes.size();
      f.n_params += t.elements;
    }
    kind = "checkpoint";
  } else {
    const io::GgufFile g(path);
    for (const auto& t : g.tensors()) {
      f.size += t.n_bytes;
      f.n_params += static_cast<std::uint64_t>(t.n_elements());
    }
    kind = "GGUF";
    if (const auto* v = g.metadata().find("general.file_type")) {
      try {
        kind =
            std::string(gguf::file_type_name(static_cast<gguf::FileType>(v->get<std::uint32_t>())));
      } catch (const Error&) {
      }
    }
  }
  f.type = fmt::format("deepseek4 {} {}", short_params(f.n_params), kind);
  return f;
}

/// A stand-in byte-level tokenizer for a random model: V4's three special tokens, the 256 byte
/// tokens of GPT-2's byte-to-character map, and unused fillers up to the vocabulary size.
io::GgufTokenizer stand_in_tokenizer(std::int64_t vocab) {
  io::GgufTokenizer t;
  t.tokens = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"};
  t.token_types = {io::kTokenControl, io::kTokenControl, io::kTokenControl};
  int shifted = 0;
  for (int b = 0; b < 256; ++b) {
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to U+0100+.
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : 256 + shifted++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    t.tokens.push_back(s);
    t.token_types.push_back(io::kTokenNormal);
  }
  DSV4_CHECK(vocab >= static_cast<std::int64_t>(t.tokens.size()), InputError,
             "--random: vocab_size {} is below the stand-in tokenizer's {} ids", vocab,
             t.tokens.size());
  for (auto i = static_cast<std::int64_t>(t.tokens.size()); i < vocab; ++i) {
    t.tokens.push_back(fmt::format("<|dummy_{}|>", i));
    t.token_types.push_back(io::kTokenUnused);
  }
  t.bos = 0;
  t.eos = 1;
  t.pad = 2;
  t.add_bos = true;
  return t;
}

/// Writes a random model of `config` as a GGUF of `type` to `out`; returns the file's path.
void make_random_gguf(const std::string& config, const std::string& type, std::uint64_t seed,
                      bool allow_incompatible, const fs::path& out) {
  const auto ft = gguf::file_type_from_name(type);
  DSV4_CHECK(ft.has_value(), InputError, "--type {}: unknown file type", type);
  ModelConfig cfg = load_config(config);
  const fs::path dir = out.string() + ".checkpoint";
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};
  fmt::print(stderr, "bench: drawing a random model of {} (seed {})\n", config, seed);
  write_random_checkpoint(dir, cfg, seed);
  const auto ckpt = io::Checkpoint::open(dir);
  const io::GgufTokenizer tok = stand_in_tokenizer(ckpt.config().vocab_size);
  io::ConvertOptions opt;
  opt.file_type = *ft;
  opt.name = "dsv4-random-" + fs::path(config).stem().string();
  opt.tokenizer = &tok;
  opt.llama_cpp_compatible = !allow_incompatible;
  fmt::print(stderr, "bench: writing it as {} to {}\n", gguf::file_type_name(*ft), out.string());
  io::convert_to_gguf_file(ckpt, ckpt.config(), out, opt);
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto s = line.substr(colon + 1);
        s.erase(0, s.find_first_not_of(' '));
        return s;
      }
    }
  }
  return "unknown";
}

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss) * 1024;
}

/// The bytes of file mappings this process maps with 2 MiB pages (Linux's FilePmdMapped: the
/// weights where the kernel gave huge pages, see io/mmap.hpp); 0 where that is not known.
std::uint64_t file_huge_page_bytes() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("FilePmdMapped:", 0) == 0) {
      std::istringstream in(line.substr(14));
      std::uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

/// One test's result.
struct Row {
  ModelFacts model;
  std::string backend;
  int threads = 0;
  std::int64_t n_prompt = 0, n_gen = 0, n_depth = 0;
  std::vector<double> samples_ns;
  std::vector<double> samples_ts;
  std::string test_time;
  std::uint64_t peak_rss = 0;
  std::uint64_t scratch_bytes = 0;    ///< the most scratch block bytes held at once (activations)
  std::uint64_t pool_bytes = 0;       ///< what the scratch pool holds (idle blocks included)
  std::uint64_t kv_bytes = 0;         ///< a sequence's KV caches and index keys (max_seq_len rows)
  std::uint64_t huge_page_bytes = 0;  ///< file bytes mapped with 2 MiB pages after the test

  std::string test_name() const {
    std::string s = n_prompt > 0 ? fmt::format("pp{}", n_prompt) : fmt::format("tg{}", n_gen);
    if (n_depth > 0) s += fmt::format(" @ d{}", n_depth);
    return s;
  }
  static std::pair<double, double> mean_sd(const std::vector<double>& v) {
    if (v.empty()) return {0.0, 0.0};
    double m = 0;
    for (const double x : v) m += x;
    m /= double(v.size());
    double s = 0;
    for (const double x : v) s += (x - m) * (x - m);
    return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
  }
};

/// Runs `tokens` through the model in calls of at most `batch` tokens, continuing `st`.
void feed(const AnyModel& m, ModelState& st, std::span<const std::int32_t> tokens,
          std::size_t batch) {
  for (std::size_t i = 0; i < tokens.size(); i += batch) {
    const auto part = tokens.subspan(i, std::min(batch, tokens.size() - i));
    (void)m.forward(part, st.next_pos, st, /*all_logits=*/false, /*hidden=*/false);
  }
}

/// The bytes of a sequence's KV caches (window and compressed entries) and index keys, allocated
/// for max_seq_len positions (the compressors' running state, a few rows per layer, not counted).
std::uint64_t cache_bytes(const ModelState& st) {
  std::uint64_t b = 0;
  for (const auto* group : {&st.layers, &st.mtp}) {
    for (const AttentionState& a : *group) {
      b += a.cache().rows * a.cache().cols * sizeof(float);
      if (a.has_indexer()) b += a.indexer().keys().rows * a.indexer().keys().cols * sizeof(float);
    }
  }
  return b;
}

/// Seconds of one run of the test (after its untimed depth).
double run_once(const AnyModel& m, const Row& r, std::size_t batch, std::mt19937& rng) {
  const auto vocab = static_cast<std::int32_t>(m.vocab_size());
  std::uniform_int_distribution<std::int32_t> pick(0, vocab - 1);
  auto st = m.new_state();
  std::vector<std::int32_t> depth(static_cast<std::size_t>(r.n_depth));
  for (auto& t : depth) t = pick(rng);
  feed(m, st, depth, batch);
  using clock = std::chrono::steady_clock;
  if (r.n_prompt > 0) {
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(r.n_prompt));
    for (auto& t : prompt) t = pick(rng);
    const auto t0 = clock::now();
    feed(m, st, prompt, batch);
    return std::chrono::duration<double>(clock::now() - t0).count();
  }
  ModelOutput out;  // reused: no allocation per decoded token
  const auto t0 = clock::now();
  for (std::int64_t i = 0; i < r.n_gen; ++i) m.decode_into(pick(rng), st, out);
  return std::chrono::duration<double>(clock::now() - t0).count();
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::ordered_json row_json(const Row& r, const std::string& cpu, std::size_t batch,
                                const std::string& numerics) {
  const auto [avg_ns, sd_ns] = Row::mean_sd(r.samples_ns);
  const auto [avg_ts, sd_ts] = Row::mean_sd(r.samples_ts);
  nlohmann::ordered_json j;
  j["build_commit"] = "unknown";
  j["build_number"] = 0;
  j["cpu_info"] = cpu;
  j["gpu_info"] = "";
  j["backends"] = r.backend;
  j["model_filename"] = r.model.filename;
  j["model_type"] = r.model.type;
  j["model_size"] = r.model.size;
  j["model_n_params"] = r.model.n_params;
  j["n_batch"] = batch;
  j["n_ubatch"] = batch;
  j["n_threads"] = r.threads;
  j["numerics"] = numerics;
  j["load_mode"] = "mmap";
  j["n_prompt"] = r.n_prompt;
  j["n_gen"] = r.n_gen;
  j["n_depth"] = r.n_depth;
  j["test_time"] = r.test_time;
  j["avg_ns"] = static_cast<std::uint64_t>(avg_ns);
  j["stddev_ns"] = static_cast<std::uint64_t>(sd_ns);
  j["avg_ts"] = avg_ts;
  j["stddev_ts"] = sd_ts;
  std::vector<std::uint64_t> ns;
  for (const double x : r.samples_ns) ns.push_back(static_cast<std::uint64_t>(x));
  j["samples_ns"] = ns;
  j["samples_ts"] = r.samples_ts;
  j["peak_rss"] = r.peak_rss;
  j["scratch_bytes"] = r.scratch_bytes;
  j["scratch_pool_bytes"] = r.pool_bytes;
  j["kv_bytes"] = r.kv_bytes;
  j["huge_page_bytes"] = r.huge_page_bytes;
  return j;
}

void print_md_header() {
  fmt::print("| {:<30} | {:>10} | {:>10} | {:<9} | {:>7} | {:>15} | {:>20} |\n", "model", "size",
             "params", "backend", "threads", "test", "t/s");
  fmt::print("| {:-<30} | {:->9}: | {:->9}: | {:-<9} | {:->6}: | {:->14}: | {:->19}: |\n", "", "",
             "", "", "", "", "");
}

void print_md_row(const Row& r) {
  const auto [avg, sd] = Row::mean_sd(r.samples_ts);
  fmt::print("| {:<30} | {:>10} | {:>10} | {:<9} | {:>7} | {:>15} | {:>20} |\n", r.model.type,
             size_string(r.model.size), param_string(r.model.n_params), r.backend, r.threads,
             r.test_name(), fmt::format("{:.2f} ± {:.2f}", avg, sd));
  std::fflush(stdout);
}

std::string csv_quote(const std::string& s) {
  std::string q = "\"";
  for (const char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void run_bench(const BenchCliOptions& o) {
  DSV4_CHECK(o.output == "md" || o.output == "json" || o.output == "csv" || o.output == "jsonl",
             InputError, "-o {}: expected md, json, jsonl or csv", o.output);
  DSV4_CHECK(o.reps >= 1 && o.reps <= 1000, InputError, "-r {}: expected 1 to 1000 repetitions",
             o.reps);
  DSV4_CHECK(o.batch >= 1, InputError, "--batch-size {}: expected at least 1", o.batch);
  DSV4_CHECK(!o.models.empty() || !o.random_config.empty(), InputError,
             "give a model with -m FILE or a synthetic one with --random CONFIG.json");
  DSV4_CHECK(o.random_config.empty() || o.models.empty(), InputError,
             "-m and --random: give one of them");
  const auto prompts = parse_list(o.prompts, "-p", 0);
  const auto gens = parse_list(o.gens, "-n", 0);
  const auto depths = parse_list(o.depths, "-d", 0);
  check_backend_choice(o.backend);
  std::vector<std::int64_t> threads;
  if (o.threads.empty()) {
    threads.push_back(o.backend.name == "reference" ? 1 : 0);
  } else {
    threads = parse_list(o.threads, "-t", 1);
  }

  std::vector<std::string> models = o.models;
  std::optional<fs::path> temp_model;
  struct RemoveTemp {
    std::optional<fs::path>& p;
    ~RemoveTemp() {
      std::error_code ec;
      if (p) fs::remove(*p, ec);
    }
  } remove_temp{temp_model};
  if (!o.random_config.empty()) {
    fs::path out = o.random_out;
    if (out.empty()) {
      out = fs::temp_directory_path() /
            fmt::format("dsv4-bench-{}-{}.gguf", ::getpid(), o.random_type);
      temp_model = out;
    }
    make_random_gguf(o.random_config, o.random_type, o.seed, o.allow_incompatible, out);
    models.push_back(out.string());
  }

  const std::string cpu = cpu_name();
  std::vector<Row> rows;
  if (o.output == "md") print_md_header();
  if (o.output == "csv") {
    fmt::print(
        "build_commit,cpu_info,backends,model_filename,model_type,model_size,model_n_params,"
        "n_batch,n_threads,numerics,n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,"
        "stddev_ts,peak_rss,scratch_bytes,scratch_pool_bytes,kv_bytes,huge_page_bytes\n");
  }
  std::mt19937 rng(1234);
  for (const auto& path : models) {
    const ModelFacts facts = model_facts(path);
    for (const auto t : threads) {
      BackendChoice b = o.backend;
      b.no_repack = o.repack == 0;
      b.threads = o.backend.name == "reference" ? 0 : static_cast<int>(t);
      DSV4_CHECK(o.backend.name != "reference" || t == 1 || o.threads.empty(), InputError,
                 "-t {}: the reference backend runs on one thread", t);
      fmt::print(stderr, "bench: loading {} ({} backend, {} threads)\n", path, b.name,
                 b.name == "reference" ? std::string("1")
                 : b.threads == 0      ? std::string("all")
                                       : std::to_string(b.threads));
      const AnyModel m = load_any_model(path, b, o.numerics);
      const int shown_threads =
          b.name == "reference"
              ? 1
              : (b.threads > 0 ? b.threads
                               : static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN))));
      const std::uint64_t kv_bytes = cache_bytes(m.new_state());  // one state's, once per model
      for (const auto d : depths) {
        std::vector<Row> tests;
        for (const auto p : prompts) {
          if (p > 0)
            tests.push_back(Row{facts, m.label(), shown_threads, p, 0, d, {}, {}, {}, 0, 0, 0, 0});
        }
        for (const auto n : gens) {
          if (n > 0)
            tests.push_back(Row{facts, m.label(), shown_threads, 0, n, d, {}, {}, {}, 0, 0, 0, 0});
        }
        for (Row& r : tests) {
          const std::int64_t need = r.n_depth + r.n_prompt + r.n_gen;
          DSV4_CHECK(need <= m.config().max_seq_len, InputError,
                     "{} needs {} positions; {} holds {} (max_seq_len)", r.test_name(), need, path,
                     m.config().max_seq_len);
          r.test_time = utc_now();
          if (!o.no_warmup) {
            fmt::print(stderr, "bench: {} {}: warm-up\n", facts.filename, r.test_name());
            (void)run_once(m, r, o.batch, rng);
          }
          for (int k = 0; k < o.reps; ++k) {
            fmt::print(stderr, "bench: {} {}: run {}/{}\n", facts.filename, r.test_name(), k + 1,
                       o.reps);
            const double s = run_once(m, r, o.batch, rng);
            const double n = static_cast<double>(r.n_prompt + r.n_gen);
            r.samples_ns.push_back(s * 1e9);
            r.samples_ts.push_back(s > 0 ? n / s : 0.0);
          }
          r.peak_rss = peak_rss_bytes();
          r.scratch_bytes = scratch_peak_bytes();
          r.pool_bytes = scratch_pool_bytes();
          r.kv_bytes = kv_bytes;
          r.huge_page_bytes = file_huge_page_bytes();
          if (o.output == "md") print_md_row(r);
          if (o.output == "jsonl") {
            fmt::print("{}\n", row_json(r, cpu, o.batch, o.numerics).dump());
            std::fflush(stdout);
          }
          if (o.output == "csv") {
            const auto j = row_json(r, cpu, o.batch, o.numerics);
            fmt::print("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                       csv_quote("unknown"), csv_quote(cpu), csv_quote(r.backend),
                       csv_quote(r.model.filename), csv_quote(r.model.type), r.model.size,
                       r.model.n_params, o.batch, r.threads, csv_quote(o.numerics), r.n_prompt,
                       r.n_gen, r.n_depth, csv_quote(r.test_time), j["avg_ns"].dump(),
                       j["stddev_ns"].dump(), j["avg_ts"].dump(), j["stddev_ts"].dump(), r.peak_rss,
                       r.scratch_bytes, r.pool_bytes, r.kv_bytes, r.huge_page_bytes);
            std::fflush(stdout);
          }
          rows.push_back(std::move(r));
        }
      }
    }
  }
  if (o.output == "json") {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const Row& r : rows) a.push_back(row_json(r, cpu, o.batch, o.numerics));
    fmt::print("{}\n", a.dump(2));
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prompt and generation speed, as llama-bench measures it (same options and output)");
  cmd->add_option("-m,--model", o->models,
                  "a deepseek4 GGUF file or a checkpoint directory; repeatable");
  cmd->add_option("-p,--n-prompt", o->prompts, "prompt tokens per test, comma-separated (0: none)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->gens, "generated tokens per test, comma-separated (0: none)")
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", o->depths,
                  "tokens already in the context before each test, comma-separated")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads,
                  "threads, comma-separated (default: the physical cores)");
  cmd->add_option("-r,--repetitions", o->reps, "measured runs per test")->capture_default_str();
  cmd->add_option("-o,--output", o->output, "md, json, jsonl or csv")->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "tokens per forward call of a prompt test")
      ->capture_default_str();
  cmd->add_option("--backend", o->backend.name, "cpu (default) or reference");
  cmd->add_option("--numerics", o->numerics,
                  "numerics policy (default llama.cpp: fp32 activations, GGUF weights with "
                  "llama.cpp's dot products); see `dsv4 eval --help`")
      ->capture_default_str();
  cmd->add_flag("--no-warmup", o->no_warmup, "no unmeasured run before each test");
  cmd->add_option("--repack", o->repack,
                  "1: a GGUF's Q4_0, Q4_K and Q2_K weights in the orders of the kernels llama.cpp "
                  "repacks them for; 0: its vec_dot (llama-bench's --repack)")
      ->check(CLI::IsMember({0, 1}))
      ->capture_default_str();
  cmd->add_option("--random", o->random_config,
                  "time a seeded random model of this config.json (reference or Hugging Face "
                  "names) instead of -m");
  cmd->add_option("--type", o->random_type, "file type of the --random model")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the --random model")->capture_default_str();
  cmd->add_option("--random-out", o->random_out,
                  "keep the --random model as this GGUF file (llama-bench can run it too)");
  cmd->add_flag("--allow-incompatible", o->allow_incompatible,
                "let --random write a model llama.cpp cannot load (e.g. compress ratios other "
                "than 0, 4, 128)");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace dsv4::cli
