// The embedded trained model (models/dsv4-tiny-kjv.gguf, made by tools/train/): dsv4 reproduces
// the trainer's logits and MTP logits on held-out text, the file carries its tokenizer (equal to
// the tokenizer.json it was trained with) and its corpus metadata, and convert's extra metadata
// keys. Data: tests/data/trained (the trainer's held-out tokens and logits, the tokenizer.json).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dsv4/formats/linear.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_convert.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/model.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <fstream>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

namespace io = dsv4::io;
using io::GgufFile;
using io::GgufModel;
using io::GgufValue;

std::filesystem::path model_path() {
  return dsv4::test::data_path("../../models/dsv4-tiny-kjv.gguf");
}

const GgufModel& trained() {
  static const GgufModel m(std::make_shared<const GgufFile>(model_path()));
  return m;
}

/// Largest |a - b| over rows `rows` of `got` ([T, vocab]) against `want` ([rows, vocab]).
double max_row_error(const std::vector<float>& got, std::span<const std::int32_t> rows,
                     const std::vector<float>& want, std::size_t vocab) {
  REQUIRE(want.size() == rows.size() * vocab);
  double e = 0;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto r = static_cast<std::size_t>(rows[k]);
    REQUIRE((r + 1) * vocab <= got.size());
    for (std::size_t v = 0; v < vocab; ++v)
      e = std::max(e, std::abs(static_cast<double>(got[r * vocab + v]) - want[k * vocab + v]));
  }
  return e;
}

/// Errors of a model type against the trainer's reference on the held-out tokens.
struct TrainedErrors {
  double logits = 0, logprob = 0, median_logprob = 0, mtp = 0, loss = 0;
};

template <class Model>
TrainedErrors trained_errors() {
  const GgufModel& src = trained();
  const Model model = Model::load(src, src.config());
  const auto tokens = dsv4::test::read_raw<std::int32_t>("trained/heldout.tokens.i32");
  const auto rows = dsv4::test::read_raw<std::int32_t>("trained/heldout.rows.i32");
  const auto vocab = static_cast<std::size_t>(src.config().vocab_size);
  REQUIRE(tokens.size() == 256);
  auto st = model.new_state();
  const auto out = model.prefill(tokens, st);
  REQUIRE(out.logits.size() == tokens.size() * vocab);
  TrainedErrors e;
  e.logits = max_row_error(out.logits, rows,
                           dsv4::test::read_raw<float>("trained/heldout.logits.f32"), vocab);
  // log-probability of the actual next token at every position
  const auto want_lp = dsv4::test::read_raw<float>("trained/heldout.logprob.f32");
  REQUIRE(want_lp.size() == tokens.size() - 1);
  std::vector<double> lp_errors;
  for (std::size_t p = 0; p + 1 < tokens.size(); ++p) {
    const float* row = out.logits.data() + p * vocab;
    const float mx = *std::max_element(row, row + vocab);
    double z = 0;
    for (std::size_t v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(row[v]) - mx);
    const double lp =
        static_cast<double>(row[static_cast<std::size_t>(tokens[p + 1])]) - mx - std::log(z);
    e.logprob = std::max(e.logprob, std::abs(lp - want_lp[p]));
    lp_errors.push_back(std::abs(lp - want_lp[p]));
    e.loss -= lp;
  }
  e.loss /= static_cast<double>(tokens.size() - 1);
  std::sort(lp_errors.begin(), lp_errors.end());
  e.median_logprob = lp_errors[lp_errors.size() / 2];
  // MTP: trunk state at position i with token i+1 predicts token i+2
  const std::size_t t1 = tokens.size() - 1;
  const std::size_t per_token = out.hidden.size() / tokens.size();
  const auto mtp = model.mtp_forward(std::span<const float>(out.hidden.data(), t1 * per_token),
                                     std::span<const std::int32_t>(tokens).subspan(1), 0, st);
  std::vector<std::int32_t> mrows;
  for (const auto r : rows)
    if (static_cast<std::size_t>(r) < t1) mrows.push_back(r);
  e.mtp = max_row_error(mtp.logits, mrows,
                        dsv4::test::read_raw<float>("trained/heldout.mtp_logits.f32"), vocab);
  MESSAGE("logits max abs error ", e.logits, ", next-token log-prob max ", e.logprob, " median ",
          e.median_logprob, ", MTP logits ", e.mtp, "; held-out loss ", e.loss);
  return e;
}

}  // namespace

TEST_CASE("trained model: dsv4 reproduces the trainer's logits and MTP logits on held-out text") {
  // The trainer rounded its weights to float16 before computing the reference, so the F16 file
  // holds exactly its weights. Float32 activations, no FP8/FP4 activation simulation (the
  // trainer's HF model, docs/oracles.md); weights dequantized to float: only the order of float32
  // operations differs.
  using Exact = dsv4::ReferenceModel<
      dsv4::WithLinear<dsv4::DenseLinear<float>, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;
  const auto e = trained_errors<Exact>();
  // measured: logits max 0.054 (row 223; rows 15-95 <= 2e-3, rows 111-255 up to 0.054),
  // next-token log-prob max 0.137 (position 222; all others <= 0.04) and median 1.7e-4, MTP
  // logits 0.048, held-out loss 3.963 on these tokens
  CHECK(e.logits < 0.5);
  CHECK(e.logprob < 1.0);
  CHECK(e.median_logprob < 1.5e-3);
  CHECK(e.mtp < 0.4);
  CHECK(e.loss < 4.5);  // trained: far below ln(4096) = 8.3 of a uniform guess
}

TEST_CASE("trained model: the F16 file as llama.cpp runs it (activations rounded to f16)") {
  // AnyLinear runs F16 weights as ggml's vec_dot_f16 does: the activations are rounded to f16
  // before each product, which moves the logits by far more than float32 reordering
  using Ggml = dsv4::ReferenceModel<
      dsv4::WithLinear<dsv4::AnyLinear, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;
  const auto e = trained_errors<Ggml>();
  // measured: logits max 0.053, log-prob max 0.137, median 3.1e-4, MTP logits 0.048
  CHECK(e.logits < 0.5);
  CHECK(e.logprob < 1.0);
  CHECK(e.median_logprob < 3e-3);
  CHECK(e.mtp < 0.4);
}

TEST_CASE("trained model: the GGUF carries the tokenizer it was trained with and its corpus") {
  const GgufModel& src = trained();
  const auto tok = src.tokenizer();
  REQUIRE(tok.has_value());
  const auto path = dsv4::test::data_path("trained/tokenizer.json");
  const auto want = io::gguf_tokenizer_from_json(path, src.config().vocab_size);
  CHECK(tok->model == "gpt2");
  CHECK(tok->pre == "deepseek-v3");
  CHECK(tok->tokens == want.tokens);
  CHECK(tok->token_types == want.token_types);
  CHECK(tok->merges == want.merges);
  CHECK(tok->bos == want.bos);
  CHECK(tok->eos == want.eos);
  CHECK(tok->add_bos == want.add_bos);
  CHECK(tok->bos == std::uint32_t{0});
  CHECK(tok->eos == std::uint32_t{1});
  // the chat format's markers are single tokens of the vocabulary
  const auto text_tok = dsv4::text::Tokenizer::load(path);
  for (const char* s :
       {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜latest_reminder｜>"})
    CHECK(text_tok.encode(s).size() == 1);
  const auto& meta = src.file().metadata();
  REQUIRE(meta.contains("general.license"));
  CHECK(meta.at("general.description").str().find("King James") != std::string::npos);
}

TEST_CASE("convert: extra metadata keys follow the converter's, its own keys are refused") {
  const GgufModel& src = trained();
  io::ConvertOptions opt;
  opt.extra_metadata = {{"general.license", GgufValue(std::string("CC0-1.0"))},
                        {"general.dataset.count", GgufValue(std::uint32_t{1})}};
  const auto plan = io::plan_conversion(src.config(), opt);
  CHECK(plan.metadata.at("general.license").str() == "CC0-1.0");
  CHECK(plan.metadata.at("general.dataset.count").get<std::uint32_t>() == 1);
  for (const char* own : {"general.name", "general.architecture", "deepseek4.block_count",
                          "general.quantization_version"}) {
    CAPTURE(own);
    io::ConvertOptions bad;
    bad.extra_metadata = {{own, GgufValue(std::string("x"))}};
    CHECK_THROWS_WITH_AS((void)io::plan_conversion(src.config(), bad),
                         doctest::Contains("is written by the converter itself"),
                         dsv4::ConfigError);
  }
}
