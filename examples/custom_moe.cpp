// A custom mixture of experts composed from dsv4's policies: a DeepSeek-V2-style softmax router
// choosing 3 of 5 experts, no selection bias, no shared expert, float weights, and no SwiGLU
// clamp. V4's own layer is `Moe<TopKRouter<SqrtSoftplus>>` / `Moe<HashRouter<>>` with a shared
// expert (include/dsv4/layers/moe.hpp), which a Model's blocks hold as `V4Moe`.
//
// First the layer alone on a few rows; then a whole Model whose blocks use it as their
// feed-forward network (a policy bundle deriving from V4Policies with `ffn` replaced), loaded
// from a V4 checkpoint directory (CHECKPOINT_DIR/config.json and weights.safetensors: the custom
// layer takes the first 5 experts of each block and their rows of the gate), which generates a
// few tokens with dsv4::generate. The run checks what it can: the tokens are ids of the
// vocabulary, greedy decoding chose each one as the argmax of one forward pass over the whole
// sequence, and every block routed every position to 3 distinct experts of 5.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/layers/moe.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/model/model.hpp>
#include <exception>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr std::size_t kExperts = 5, kTopK = 3;
using Router = dsv4::TopKRouter<dsv4::Softmax>;
using SoftmaxMoeLayer = dsv4::Moe<Router, dsv4::DenseLinear<float>>;

void run_layer() {
  constexpr std::size_t dim = 8, inter = 16, tokens = 4;
  auto weight = [seed = 0.0f](std::size_t out, std::size_t in) mutable {
    std::vector<float> w(out * in);
    for (float& v : w) v = 0.3f * std::sin(seed += 0.77f);
    return dsv4::DenseLinear<float>(w, out, in);
  };
  std::vector<dsv4::Expert<dsv4::DenseLinear<float>>> experts;
  for (std::size_t e = 0; e < kExperts; ++e) {
    experts.emplace_back(weight(inter, dim), weight(dim, inter), weight(inter, dim),
                         /*swiglu_limit=*/0.0f);
  }
  const SoftmaxMoeLayer moe(Router(dsv4::f32_linear(weight(kExperts, dim).weight(), kExperts, dim),
                                   /*bias=*/{}, kTopK, /*route_scale=*/1.0f),
                            std::move(experts),
                            /*shared=*/std::nullopt);

  std::vector<float> x(tokens * dim), y(tokens * dim);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.5f * static_cast<float>(i));
  dsv4::Routing routing;
  moe.forward<dsv4::PlainFp32Numerics>(x, /*tokens=*/{}, y, &routing);
  for (std::size_t t = 0; t < tokens; ++t) {
    fmt::print("token {}: experts", t);
    for (std::size_t j = 0; j < kTopK; ++j) {
      fmt::print(" {} ({:.3f})", routing.experts[t * kTopK + j], routing.weights[t * kTopK + j]);
    }
    fmt::print(", y[0] = {:.5f}\n", y[t * dim]);
  }
}

/// The same layer as a block's feed-forward network (dsv4::BlockFfn): a forward over the rows of
/// a call and a loader for block `layer`. It reads the V4 tensor names under `prefix`
/// ("layers.3.ffn"): the first 5 rows of gate.weight and experts 0-4; V4's selection bias,
/// hash table and shared expert are left unread.
class SoftmaxMoe {
 public:
  explicit SoftmaxMoe(SoftmaxMoeLayer moe) : moe_(std::move(moe)) {}

  template <dsv4::io::TensorSource Src>
  static SoftmaxMoe load(const Src& src, const std::string& prefix, const dsv4::ModelConfig& cfg,
                         int /*layer*/) {
    DSV4_CHECK(cfg.n_routed_experts >= static_cast<std::int64_t>(kExperts), dsv4::ConfigError,
               "{}: {} routed experts; the custom MoE takes the first {}", src.label(),
               cfg.n_routed_experts, kExperts);
    const auto d = static_cast<std::size_t>(cfg.dim);
    const auto inter = static_cast<std::size_t>(cfg.moe_inter_dim);
    std::vector<float> gate = dsv4::io::load_float(
        src, prefix + ".gate.weight", {static_cast<std::uint64_t>(cfg.n_routed_experts), d});
    gate.resize(kExperts * d);  // rows 0-4
    std::vector<dsv4::Expert<dsv4::DenseLinear<float>>> experts;
    for (std::size_t e = 0; e < kExperts; ++e) {
      const std::string p = fmt::format("{}.experts.{}", prefix, e);
      using L = dsv4::DenseLinear<float>;
      experts.emplace_back(dsv4::io::load_linear<L>(src, p + ".w1.weight", inter, d),
                           dsv4::io::load_linear<L>(src, p + ".w2.weight", d, inter),
                           dsv4::io::load_linear<L>(src, p + ".w3.weight", inter, d),
                           /*swiglu_limit=*/0.0f);
    }
    return SoftmaxMoe(SoftmaxMoeLayer(
        Router(dsv4::f32_linear(gate, kExperts, d), /*bias=*/{}, kTopK, /*route_scale=*/1.0f),
        std::move(experts), /*shared=*/std::nullopt));
  }

  template <dsv4::NumericsPolicy N, dsv4::Backend B>
  void forward(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
               std::span<float> out, dsv4::Routing* routing) const {
    moe_.forward<N>(b, x, tokens, out, routing);
  }

 private:
  SoftmaxMoeLayer moe_;
};
static_assert(dsv4::BlockFfn<SoftmaxMoe>);

/// V4 with the custom MoE in every block, float32 activations.
struct CustomPolicies : dsv4::V4Policies {
  using numerics = dsv4::PlainFp32Numerics;
  using ffn = SoftmaxMoe;
};
using CustomModel = dsv4::Model<dsv4::ReferenceBackend, CustomPolicies>;

/// One line naming what failed.
void require(bool ok, const std::string& what) {
  DSV4_CHECK(ok, dsv4::Error, "check failed: {}", what);
}

void run_model(const std::filesystem::path& dir) {
  const dsv4::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  const CustomModel model = CustomModel::load(ckpt);
  const auto vocab = static_cast<std::int32_t>(model.vocab_size());

  const std::vector<std::int32_t> prompt = {0, 17, 42, 7, 99, 3};
  dsv4::GenerateOptions opt;
  opt.max_new_tokens = 6;  // greedy (temperature 0), no stop token
  const dsv4::GenerateResult out = dsv4::generate(model, prompt, opt);
  fmt::print("model ({} blocks, {}-of-{} softmax MoE): generated", model.config().n_layers, kTopK,
             kExperts);
  for (const std::int32_t t : out.tokens) fmt::print(" {}", t);
  fmt::print("\n");
  require(out.tokens.size() == opt.max_new_tokens,
          fmt::format("{} tokens generated, {} asked for", out.tokens.size(), opt.max_new_tokens));
  for (const std::int32_t t : out.tokens) {
    require(t >= 0 && t < vocab, fmt::format("token {} outside the vocabulary [0, {})", t, vocab));
  }

  // One forward pass over the prompt and the generated tokens, traced.
  std::vector<std::int32_t> seq = prompt;
  seq.insert(seq.end(), out.tokens.begin(), out.tokens.end() - 1);
  auto st = model.new_state();
  dsv4::ForwardTrace trace;
  const auto full = model.forward(seq, 0, st, /*all_logits=*/true, &trace);
  const auto v = static_cast<std::size_t>(vocab);
  for (std::size_t i = 0; i < out.tokens.size(); ++i) {
    const float* row = full.logits.data() + (prompt.size() - 1 + i) * v;
    const auto best = static_cast<std::int32_t>(std::max_element(row, row + v) - row);
    require(best == out.tokens[i], fmt::format("generated token {} is {}, the argmax of its "
                                               "position's logits {}",
                                               i, out.tokens[i], best));
  }
  require(trace.routing.size() == static_cast<std::size_t>(model.config().n_layers),
          "one routing decision per block");
  for (std::size_t b = 0; b < trace.routing.size(); ++b) {
    const dsv4::Routing& r = trace.routing[b];
    require(r.tokens == seq.size() && r.k == kTopK,
            fmt::format("block {}: [{}, {}] routing, expected [{}, {}]", b, r.tokens, r.k,
                        seq.size(), kTopK));
    for (std::size_t t = 0; t < r.tokens; ++t) {
      std::vector<std::int32_t> chosen(
          r.experts.begin() + static_cast<std::ptrdiff_t>(t * kTopK),
          r.experts.begin() + static_cast<std::ptrdiff_t>((t + 1) * kTopK));
      std::sort(chosen.begin(), chosen.end());
      require(chosen.front() >= 0 && chosen.back() < static_cast<std::int32_t>(kExperts) &&
                  std::adjacent_find(chosen.begin(), chosen.end()) == chosen.end(),
              fmt::format("block {} position {}: experts are not 3 distinct of 5", b, t));
      float sum = 0.0f;  // softmax weights of 3 of 5 experts, not renormalised
      for (std::size_t j = 0; j < kTopK; ++j) sum += r.weights[t * kTopK + j];
      require(sum > 0.0f && sum <= 1.0f + 1e-6f,
              fmt::format("block {} position {}: routing weights sum to {}", b, t, sum));
    }
  }
  fmt::print("every block routed each of {} positions to 3 distinct experts of 5\n", seq.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: {} CHECKPOINT_DIR\n", argv[0]);
    return 2;
  }
  try {
    run_layer();
    run_model(argv[1]);
  } catch (const std::exception& e) {
    fmt::print(stderr, "custom_moe: {}\n", e.what());
    return 1;
  }
  return 0;
}
