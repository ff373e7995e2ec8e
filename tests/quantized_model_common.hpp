// The fixture of the quantized-model tests (unit/quantized_model_test.cpp, the fast subset, and
// unit/quantized_model_slow_test.cpp, the full table): the tiny256 checkpoint of
// model/random_checkpoint.hpp written once per process into a temporary directory, seeded prompts,
// the logits of the unquantized model (fp32 activations, no FP8/FP4 activation simulation), and a
// check of measured logit distances against bounds.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <dsv4/model/quantized_load.hpp>
#include <dsv4/model/random_checkpoint.hpp>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace dsv4::test {

/// The model type every quantized-model test runs.
using QModel = QuantizedModel<>;

/// Seed of the tiny256 weights (the prompts use seed + 1).
inline constexpr std::uint64_t kTiny256Seed = 20260807;

/// tiny256 with `n_prompts` prompts of `n_tokens` seeded random tokens and the unquantized logits.
class Tiny256 {
 public:
  Tiny256(std::size_t n_prompts, std::size_t n_tokens) {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("dsv4_quantized_model_{}_{}x{}", ::getpid(), n_prompts, n_tokens);
    write_random_checkpoint(dir_, tiny256_config(), kTiny256Seed);
    ckpt_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(dir_));
    vocab_ = static_cast<std::size_t>(ckpt_->config().vocab_size);
    std::mt19937_64 rng(kTiny256Seed + 1);
    prompts_.assign(n_prompts, std::vector<std::int32_t>(n_tokens));
    for (auto& p : prompts_) {
      for (auto& t : p) t = static_cast<std::int32_t>(rng() % vocab_);
    }
    want_ =
        logits(load_quantized<QModel>(*ckpt_, uniform_plan(FormatId::f32, DotSemantics::dequant)));
  }
  ~Tiny256() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Tiny256(const Tiny256&) = delete;
  Tiny256& operator=(const Tiny256&) = delete;

  const io::Checkpoint& checkpoint() const { return *ckpt_; }
  const ModelConfig& config() const { return ckpt_->config(); }
  std::size_t vocab() const { return vocab_; }
  /// The unquantized model's logits, prompts concatenated: [prompts · tokens, vocab].
  const std::vector<float>& want() const { return want_; }

  /// Prefill logits of every prompt, concatenated.
  template <class M>
  std::vector<float> logits(const M& m) const {
    std::vector<float> out;
    for (const auto& p : prompts_) {
      auto st = m.new_state();
      const auto o = m.prefill(p, st);
      out.insert(out.end(), o.logits.begin(), o.logits.end());
    }
    return out;
  }

  /// Loads the model with `plan` and measures its logits against the unquantized ones.
  LogitDistance run(const WeightPlan& plan, QuantizationReport* report = nullptr) const {
    const QModel m = load_quantized<QModel>(*ckpt_, plan, report);
    return logit_distance(logits(m), want_, vocab_);
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<io::Checkpoint> ckpt_;
  std::vector<std::vector<std::int32_t>> prompts_;
  std::vector<float> want_;
  std::size_t vocab_ = 0;
};

/// Bounds on a LogitDistance.
struct LogitBound {
  double max_abs;
  double mean_abs;
  double rel_l2;
  double min_top1;
};

/// Prints the measured distance and checks it against `b`.
inline void check_within(const std::string& what, const LogitDistance& got, const LogitBound& b,
                         double bits) {
  MESSAGE(
      fmt::format("{:<28} {:6.3f} bits/weight: max {:.3g}  mean {:.3g}  rel-L2 {:.3g}  "
                  "top-1 {:.3f}",
                  what, bits, got.max_abs, got.mean_abs, got.rel_l2, got.top1));
  CAPTURE(what);
  CHECK(got.max_abs <= b.max_abs);
  CHECK(got.mean_abs <= b.mean_abs);
  CHECK(got.rel_l2 <= b.rel_l2);
  CHECK(got.top1 >= b.min_top1);
}

}  // namespace dsv4::test
