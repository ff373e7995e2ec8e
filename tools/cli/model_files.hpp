// What the model commands (generate, chat, perplexity, tokenize -m) share: finding the embedded
// default model, opening a model (a deepseek4 GGUF file or a checkpoint directory) with its
// tokenizer, streaming text token by token, and progress lines on stderr.
//
// The default model is the GGUF in dsv4's model folder: <prefix>/share/dsv4/ next to an installed
// <prefix>/bin/dsv4, else the source tree's models/ when the program runs from its build folder.
// A folder holding several GGUF files gives DSV4_DEFAULT_MODEL_NAME when it is among them, else
// the first in name order.
#pragma once

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_tokenizer.hpp>
#include <dsv4/model/any_model.hpp>
#include <dsv4/text/chat.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <dsv4/text/utf8.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "backend_choice.hpp"

namespace dsv4::cli {

namespace fs = std::filesystem;

/// The folders searched for the default model, in order.
inline std::vector<fs::path> default_model_dirs() {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path().parent_path() / "share" / "dsv4");
    out.push_back(exe.parent_path() / "share" / "dsv4");
  }
#ifdef DSV4_SOURCE_MODELS_DIR
  out.emplace_back(DSV4_SOURCE_MODELS_DIR);
#endif
  return out;
}

/// The embedded model's file; InputError naming the folders searched when there is none.
inline fs::path default_model_path() {
  std::string tried;
  for (const fs::path& dir : default_model_dirs()) {
    std::error_code ec;
    tried += fmt::format("{}{}", tried.empty() ? "" : ", ", dir.string());
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_regular_file(ec) && e.path().extension() == ".gguf") found.push_back(e.path());
    }
    if (found.empty()) continue;
    std::sort(found.begin(), found.end());
#ifdef DSV4_DEFAULT_MODEL_NAME
    for (const fs::path& p : found) {
      if (p.filename() == DSV4_DEFAULT_MODEL_NAME) return p;
    }
#endif
    return found.front();
  }
  throw InputError(fmt::format(
      "no default model: no .gguf file in {}; pass a model with -m FILE (a deepseek4 GGUF file "
      "or a checkpoint directory)",
      tried.empty() ? std::string("(no folder to search)") : tried));
}

/// `path`, or the default model when empty.
inline fs::path model_path_or_default(const std::string& path) {
  if (!path.empty()) return path;
  return default_model_path();
}

/// A tokenizer with the ids a model's text needs (BOS, EOS).
using TextTokenizer = io::TextTokenizer;

/// The tokenizer of a model: inside a GGUF file, or the tokenizer.json of a checkpoint directory.
inline TextTokenizer open_model_tokenizer(const fs::path& model) {
  std::error_code ec;
  DSV4_CHECK(fs::exists(model, ec), InputError, "{}: no such file or directory", model.string());
  if (fs::is_directory(model, ec)) {
    const fs::path json = model / "tokenizer.json";
    DSV4_CHECK(fs::is_regular_file(json, ec), InputError,
               "{}: the checkpoint directory has no tokenizer.json", model.string());
    TextTokenizer t{text::Tokenizer::load(json), std::nullopt, std::nullopt, true};
    t.bos = t.tokenizer.token_to_id(text::chat::bos_token);
    t.eos = t.tokenizer.token_to_id(text::chat::eos_token);
    t.add_bos = t.bos.has_value();
    return t;
  }
  if (model.extension() == ".json") {
    TextTokenizer t{text::Tokenizer::load(model), std::nullopt, std::nullopt, true};
    t.bos = t.tokenizer.token_to_id(text::chat::bos_token);
    t.eos = t.tokenizer.token_to_id(text::chat::eos_token);
    t.add_bos = t.bos.has_value();
    return t;
  }
  const io::GgufFile f(model);
  return io::text_tokenizer_from_gguf(f);
}

/// A model and its tokenizer.
struct OpenModel {
  fs::path path;
  AnyModel model;
  TextTokenizer tok;
  double load_seconds = 0.0;
};

/// Opens `path` (a GGUF file or a checkpoint directory) on the chosen backend with the model
/// commands' numerics (fp32 activations, GGUF weights with llama.cpp's dot products, checkpoint
/// weights as stored). Prints the time taken on stderr when over a second. (model_loader.cpp)
OpenModel open_model(const fs::path& path, const BackendChoice& backend);

/// The token ids of a prompt text: BOS first when the tokenizer asks for it.
inline std::vector<std::int32_t> prompt_ids(const TextTokenizer& t, const std::string& text) {
  std::vector<std::int32_t> ids;
  if (t.add_bos && t.bos) ids.push_back(*t.bos);
  t.tokenizer.encode(text, ids);
  return ids;
}

/// Reads a whole file, or stdin for "-".
inline std::string read_text_file(const std::string& path, std::string_view option) {
  if (path == "-") {
    return std::string((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  DSV4_CHECK(in.good(), InputError, "{} {}: cannot open", option, path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Turns the bytes of tokens into text as they come: complete UTF-8 characters are released at
/// once, a character split across tokens when its last byte arrives; invalid bytes become U+FFFD.
class Utf8Stream {
 public:
  /// Appends bytes; returns the text that is complete now.
  std::string push(std::string_view bytes) {
    pending_.append(bytes);
    // Keep a trailing sequence that may still be completed (at most 3 bytes).
    std::size_t cut = pending_.size();
    for (std::size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
      const auto c = static_cast<unsigned char>(pending_[pending_.size() - back]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
      const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (need > back) cut = pending_.size() - back;
      break;
    }
    std::string out = text::utf8_lossy(pending_.substr(0, cut));
    pending_.erase(0, cut);
    return out;
  }
  /// What remains (an unfinished character becomes U+FFFD).
  std::string flush() {
    std::string out = text::utf8_lossy(pending_);
    pending_.clear();
    return out;
  }

 private:
  std::string pending_;
};

/// Progress on stderr for a step counted in units (tokens, chunks): shown only once the step has
/// taken over a second; a redrawn line with a bar, the rate and the time left on a terminal, a
/// plain line every few seconds otherwise.
class Progress {
 public:
  Progress(std::string label, std::string unit)
      : label_(std::move(label)), unit_(std::move(unit)), tty_(::isatty(STDERR_FILENO) != 0) {}
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() { finish(); }

  void update(std::size_t done, std::size_t total) {
    const auto now = clock::now();
    const double elapsed = seconds(start_, now);
    if (elapsed < 1.0 && done < total) return;
    if (!shown_ && done >= total && elapsed < 1.0) return;
    const double wait = tty_ ? 0.1 : 5.0;
    if (shown_ && done < total && seconds(last_, now) < wait) return;
    last_ = now;
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const double left = rate > 0 ? static_cast<double>(total - std::min(done, total)) / rate : 0.0;
    const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const std::string stats = fmt::format("{} {}/{} {}, {:.1f} {}/s, {} left", label_, done, total,
                                          unit_, rate, unit_, clock_string(left));
    if (tty_) {
      constexpr int kBar = 20;
      const int filled = static_cast<int>(frac * kBar);
      fmt::print(stderr, "\r\033[K[{}{}] {:3.0f}% {}", std::string(filled, '#'),
                 std::string(kBar - filled, '.'), 100 * frac, stats);
    } else {
      fmt::print(stderr, "{:3.0f}% {}\n", 100 * frac, stats);
    }
    std::fflush(stderr);
    shown_ = true;
  }
  void finish() {
    if (shown_ && tty_) fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  static std::string clock_string(double s) {
    const auto t = static_cast<long>(s + 0.5);
    return fmt::format("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  }
  std::string label_, unit_;
  bool tty_;
  bool shown_ = false;
  clock::time_point start_ = clock::now(), last_{};
};

}  // namespace dsv4::cli
