// `dsv4 perplexity [-m MODEL] -f TEXT [--ctx N] [--chunks N] [--json] [--save-base FILE |
// --kl-base FILE]`: perplexity over chunks of N tokens as llama.cpp's llama-perplexity computes
// it (model/perplexity.hpp). --save-base writes the model's log-probabilities of the scored
// positions; --kl-base reads such a file (made from an unquantized base model on the same text)
// and adds the KL divergence of this model from the base and their top-1 agreement.
//
// Base file (little-endian): "DSV4KLB1", u32 n_ctx, u32 n_vocab, u32 n_chunks, u32 scored rows
// per chunk (n_ctx - n_ctx/2 - 1), int32 tokens [n_chunks][n_ctx] (as evaluated), then the
// log-probabilities of the scored rows as IEEE float16 [n_chunks][rows][n_vocab].
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/check.hpp>
#include <dsv4/core/numeric.hpp>
#include <dsv4/io/output_file.hpp>
#include <dsv4/model/perplexity.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"
#include "model_files.hpp"

namespace dsv4::cli {
namespace {

constexpr char kBaseMagic[8] = {'D', 'S', 'V', '4', 'K', 'L', 'B', '1'};

struct PerplexityCliOptions {
  std::string model;
  std::string text_file;
  std::size_t ctx = 512;
  std::size_t chunks = 0;
  BackendChoice backend;
  bool json = false;
  std::string save_base;
  std::string kl_base;
};

struct BaseHeader {
  std::uint32_t n_ctx = 0, n_vocab = 0, n_chunks = 0, rows = 0;
};

/// The base file being read: header, tokens, and row-by-row log-probabilities.
class BaseReader {
 public:
  explicit BaseReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    DSV4_CHECK(in_.good(), InputError, "--kl-base {}: cannot open", path);
    char magic[8] = {};
    in_.read(magic, 8);
    DSV4_CHECK(in_.good() && std::memcmp(magic, kBaseMagic, 8) == 0, InputError,
               "--kl-base {}: not a dsv4 base log-probability file (no DSV4KLB1 magic)", path);
    in_.read(reinterpret_cast<char*>(&h_), sizeof(h_));
    DSV4_CHECK(in_.good() && h_.n_ctx >= 4 && h_.n_vocab > 0 && h_.n_chunks > 0 &&
                   h_.rows == h_.n_ctx - h_.n_ctx / 2 - 1,
               InputError, "--kl-base {}: a bad header", path);
    tokens_.resize(std::size_t{h_.n_ctx} * h_.n_chunks);
    in_.read(reinterpret_cast<char*>(tokens_.data()),
             static_cast<std::streamsize>(tokens_.size() * sizeof(std::int32_t)));
    DSV4_CHECK(in_.good(), InputError, "--kl-base {}: truncated (tokens)", path);
  }
  const BaseHeader& header() const { return h_; }
  const std::vector<std::int32_t>& tokens() const { return tokens_; }
  /// The next row of log-probabilities.
  void next_row(std::vector<double>& out) {
    row_.resize(h_.n_vocab);
    in_.read(reinterpret_cast<char*>(row_.data()),
             static_cast<std::streamsize>(row_.size() * sizeof(std::uint16_t)));
    DSV4_CHECK(in_.good(), InputError, "--kl-base {}: truncated (log-probabilities)", path_);
    // Renormalised after the float16 rounding, so the base is a distribution (KL >= 0).
    std::vector<float> v(h_.n_vocab);
    for (std::size_t i = 0; i < row_.size(); ++i) v[i] = f16::from_bits(row_[i]).to_float();
    out = log_softmax(v);
  }

 private:
  std::string path_;
  std::ifstream in_;
  BaseHeader h_;
  std::vector<std::int32_t> tokens_;
  std::vector<std::uint16_t> row_;
};

void run_perplexity(const PerplexityCliOptions& o) {
  DSV4_CHECK(o.save_base.empty() || o.kl_base.empty(), InputError,
             "--save-base and --kl-base are exclusive");
  const std::string text = read_text_file(o.text_file, "-f");
  const auto m = open_model(model_path_or_default(o.model), o.backend);
  const auto tokens = prompt_ids(m.tok, text);
  const std::size_t vocab = m.model.vocab_size();

  PerplexityOptions opt;
  opt.n_ctx = o.ctx;
  opt.max_chunks = o.chunks;
  if (m.tok.add_bos && m.tok.bos) opt.bos = *m.tok.bos;
  const std::size_t n_chunks =
      std::min(tokens.size() / o.ctx, o.chunks > 0 ? o.chunks : tokens.size());
  const std::size_t rows = o.ctx - o.ctx / 2 - 1;

  std::unique_ptr<BaseReader> base;
  if (!o.kl_base.empty()) {
    base = std::make_unique<BaseReader>(o.kl_base);
    const BaseHeader& h = base->header();
    DSV4_CHECK(h.n_ctx == o.ctx && h.n_vocab == vocab && h.n_chunks >= n_chunks, InputError,
               "--kl-base {}: made with --ctx {}, {} ids and {} chunks; this run has --ctx {}, {} "
               "ids and {} chunks",
               o.kl_base, h.n_ctx, h.n_vocab, h.n_chunks, o.ctx, vocab, n_chunks);
  }
  std::vector<std::byte> saved;
  if (!o.save_base.empty()) {
    const auto put = [&](const void* p, std::size_t n) {
      const auto* b = static_cast<const std::byte*>(p);
      saved.insert(saved.end(), b, b + n);
    };
    put(kBaseMagic, 8);
    const BaseHeader h{static_cast<std::uint32_t>(o.ctx), static_cast<std::uint32_t>(vocab),
                       static_cast<std::uint32_t>(n_chunks), static_cast<std::uint32_t>(rows)};
    put(&h, sizeof(h));
    saved.resize(saved.size() + n_chunks * o.ctx * sizeof(std::int32_t));
  }
  const std::size_t tokens_at = 8 + sizeof(BaseHeader);

  double kl_sum = 0.0;
  std::size_t kl_rows = 0, top1_same = 0;
  Progress progress("perplexity", "chunks");
  opt.on_chunk = [&](const PerplexityChunk& c) {
    progress.update(c.index + 1, n_chunks);
    if (!o.save_base.empty()) {
      std::memcpy(saved.data() + tokens_at + c.index * o.ctx * sizeof(std::int32_t),
                  c.tokens.data(), o.ctx * sizeof(std::int32_t));
    }
    if (base) {
      const auto* want = base->tokens().data() + c.index * o.ctx;
      DSV4_CHECK(std::equal(c.tokens.begin(), c.tokens.end(), want), InputError,
                 "--kl-base {}: chunk {} holds other tokens than this text gives (a different "
                 "text or tokenizer)",
                 o.kl_base, c.index);
    }
    std::vector<double> base_lp;
    for (std::size_t j = c.first; j + 1 < o.ctx; ++j) {
      const auto lp = log_softmax(c.logits.subspan(j * vocab, vocab));
      if (!o.save_base.empty()) {
        for (const double v : lp) {
          const std::uint16_t bits = f16(static_cast<float>(std::max(v, -65000.0))).bits;
          const auto* b = reinterpret_cast<const std::byte*>(&bits);
          saved.insert(saved.end(), b, b + 2);
        }
      }
      if (base) {
        base->next_row(base_lp);
        double kl = 0.0;
        std::size_t a_best = 0, b_best = 0;
        for (std::size_t i = 0; i < vocab; ++i) {
          kl += std::exp(base_lp[i]) * (base_lp[i] - lp[i]);
          if (lp[i] > lp[a_best]) a_best = i;
          if (base_lp[i] > base_lp[b_best]) b_best = i;
        }
        kl_sum += kl;
        ++kl_rows;
        if (a_best == b_best) ++top1_same;
      }
    }
  };
  const PerplexityResult r = perplexity(m.model, std::span<const std::int32_t>(tokens), opt);
  progress.finish();
  if (!o.save_base.empty()) {
    io::AtomicOutputFile out(o.save_base);
    out.write(saved);
    out.commit();
  }
  const double kl = kl_rows > 0 ? kl_sum / static_cast<double>(kl_rows) : 0.0;
  const double top1 =
      kl_rows > 0 ? static_cast<double>(top1_same) / static_cast<double>(kl_rows) : 0.0;
  if (o.json) {
    nlohmann::json j;
    j["perplexity"] = r.perplexity;
    j["tokens"] = r.tokens;
    j["chunks"] = r.chunks;
    j["ctx"] = o.ctx;
    j["text_tokens"] = tokens.size();
    if (base) {
      j["kl_divergence"] = kl;
      j["top1_agreement"] = top1;
    }
    fmt::print("{}\n", j.dump());
    return;
  }
  for (std::size_t c = 0; c < r.running_ppl.size(); ++c) {
    fmt::print("[{}]{:.4f}{}", c + 1, r.running_ppl[c], c + 1 < r.running_ppl.size() ? "," : "\n");
  }
  fmt::print("perplexity: {:.4f} over {} tokens in {} chunks of {} ({} text tokens)\n",
             r.perplexity, r.tokens, r.chunks, o.ctx, tokens.size());
  if (base) {
    fmt::print("KL divergence from {}: {:.6f}; top-1 agreement {:.2f}%\n", o.kl_base, kl,
               100 * top1);
  }
  if (!o.save_base.empty()) {
    fmt::print("{}: base log-probabilities of {} chunks x {} rows x {} ids\n", o.save_base,
               r.chunks, rows, vocab);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity", "Perplexity of a model on a text, chunked as llama-perplexity does");
  cmd->add_option("-m,--model", o->model,
                  "a deepseek4 GGUF file or a checkpoint directory (default: the embedded model)");
  cmd->add_option("-f,--file", o->text_file, "the text ('-': stdin)")->required();
  cmd->add_option("-c,--ctx", o->ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many chunks (0: all)");
  add_backend_options(cmd, o->backend);
  cmd->add_flag("--json", o->json, "print one JSON object (perplexity, tokens, chunks, ...)");
  cmd->add_option("--save-base", o->save_base,
                  "write this model's log-probabilities, the base for --kl-base");
  cmd->add_option("--kl-base", o->kl_base,
                  "KL divergence and top-1 agreement against a --save-base file");
  cmd->callback([o] { run_perplexity(*o); });
}

}  // namespace dsv4::cli
