// Composing a Model from a policy bundle (include/dsv4/model/model.hpp): what the bundle's
// placeholders resolve to, a user FFN that forwards to the V4 MoE reproducing the default model
// bit for bit, and a model whose blocks hold another MoE (a softmax router choosing 3 of 5
// experts, no shared expert) continuing a sequence by decode steps exactly as one longer prefill
// computes it. tiny_b (SWA, CSA and HCA blocks, an MTP block).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/any_model.hpp>
#include <dsv4/model/model.hpp>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "device_backend.hpp"
#include "reference_data.hpp"

namespace {

namespace d = dsv4;

// ---- the bundle's placeholders -----------------------------------------------------------------

static_assert(std::is_same_v<d::Model<>::ffn_type, d::V4Moe<d::DenseLinear<d::bf16>>>);
static_assert(
    std::is_same_v<d::Model<>::attention_type, d::AttentionLayer<d::DenseLinear<d::bf16>>>);
static_assert(std::is_same_v<d::Model<>::numerics, d::ReferenceNumerics>);
// Overriding `linear` moves the experts and the attention with it, as the positional default
// ExpertLin = Lin did.
using AnyLin =
    d::ReferenceModel<d::WithLinear<d::AnyLinear, d::WithNumerics<d::PlainFp32Numerics>>>;
static_assert(std::is_same_v<AnyLin::expert_linear_type, d::AnyLinear>);
static_assert(std::is_same_v<AnyLin::ffn_type, d::V4Moe<d::AnyLinear>>);
static_assert(std::is_same_v<AnyLin::attention_type, d::AttentionLayer<d::AnyLinear>>);
static_assert(std::is_same_v<AnyLin::numerics, d::PlainFp32Numerics>);
struct OwnExperts : d::WithLinear<d::AnyLinear> {
  using expert_linear = d::DenseLinear<float>;
};
static_assert(
    std::is_same_v<d::ReferenceModel<OwnExperts>::ffn_type, d::V4Moe<d::DenseLinear<float>>>);
static_assert(d::BlockFfn<d::V4Moe<>> && !d::BlockFfn<int>);
static_assert(!d::ModelPolicies<d::ReferenceNumerics>);

// ---- user FFNs ---------------------------------------------------------------------------------

/// A user FFN holding V4's MoE and counting its calls.
class CountingV4Moe {
 public:
  explicit CountingV4Moe(d::V4Moe<> moe) : moe_(std::move(moe)) {}
  template <d::io::TensorSource Src>
  static CountingV4Moe load(const Src& src, const std::string& prefix, const d::ModelConfig& cfg,
                            int layer) {
    return CountingV4Moe(d::V4Moe<>::load(src, prefix, cfg, layer));
  }
  template <d::NumericsPolicy N, d::Backend B>
  void forward(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
               std::span<float> out, d::Routing* routing) const {
    ++calls;
    moe_.forward<N>(b, x, tokens, out, routing);
  }
  static inline int calls = 0;

 private:
  d::V4Moe<> moe_;
};

constexpr std::size_t kExperts = 5, kTopK = 3;
using SoftmaxLayer = d::Moe<d::TopKRouter<d::Softmax>, d::DenseLinear<float>>;

/// The V4 tensors of a block's first 5 experts under a softmax gate choosing 3 (no bias, no
/// shared expert, no clamp). A dsv4::Moe with a loader of its own, by FfnLoader specialisation.
SoftmaxLayer load_softmax_layer(const d::io::Checkpoint& src, const std::string& prefix,
                                const d::ModelConfig& cfg) {
  const auto dim = static_cast<std::size_t>(cfg.dim);
  const auto inter = static_cast<std::size_t>(cfg.moe_inter_dim);
  std::vector<float> gate = d::io::load_float(
      src, prefix + ".gate.weight", {static_cast<std::uint64_t>(cfg.n_routed_experts), dim});
  gate.resize(kExperts * dim);
  std::vector<d::Expert<d::DenseLinear<float>>> experts;
  for (std::size_t e = 0; e < kExperts; ++e) {
    using L = d::DenseLinear<float>;
    const std::string p = prefix + ".experts." + std::to_string(e);
    experts.emplace_back(d::io::load_linear<L>(src, p + ".w1.weight", inter, dim),
                         d::io::load_linear<L>(src, p + ".w2.weight", dim, inter),
                         d::io::load_linear<L>(src, p + ".w3.weight", inter, dim), 0.0f);
  }
  return SoftmaxLayer(
      d::TopKRouter<d::Softmax>(d::f32_linear(gate, kExperts, dim), {}, kTopK, 1.0f),
      std::move(experts), std::nullopt);
}

}  // namespace

template <>
struct dsv4::FfnLoader<SoftmaxLayer> {
  static SoftmaxLayer load(const io::Checkpoint& src, const std::string& prefix,
                           const ModelConfig& cfg, int /*layer*/) {
    return load_softmax_layer(src, prefix, cfg);
  }
};

namespace {

static_assert(d::BlockFfn<CountingV4Moe> && d::BlockFfn<SoftmaxLayer>);

struct CountingPolicies : d::WithNumerics<d::ReferenceFp32Numerics> {
  using ffn = CountingV4Moe;
};
struct SoftmaxPolicies : d::WithNumerics<d::ReferenceFp32Numerics> {
  using ffn = SoftmaxLayer;
};

d::io::Checkpoint tiny_b() {
  const auto dir = d::test::data_path("reference/tiny_b");
  return {dir / "config.json", {dir / "weights.safetensors"}};
}

std::vector<std::int32_t> tokens(std::size_t n) {
  const auto t =
      d::test::read_i32(*d::test::reference_case("tiny_b").file("golden_fp32"), "tokens");
  REQUIRE(t.size() >= n);
  return {t.begin(), t.begin() + static_cast<std::ptrdiff_t>(n)};
}

std::vector<float> rows(const std::vector<float>& v, std::size_t first, std::size_t n,
                        std::size_t width) {
  return {v.begin() + static_cast<std::ptrdiff_t>(first * width),
          v.begin() + static_cast<std::ptrdiff_t>((first + n) * width)};
}

}  // namespace

TEST_CASE("a user FFN forwarding to V4's MoE computes the default model bit for bit") {
  const auto ckpt = tiny_b();
  const auto v4 = d::ReferenceModel<d::WithNumerics<d::ReferenceFp32Numerics>>::load(ckpt);
  const auto user = d::ReferenceModel<CountingPolicies>::load(ckpt);
  CHECK(std::is_same_v<std::remove_cvref_t<decltype(user.block(0).ffn())>, CountingV4Moe>);
  const auto seq = tokens(24);
  auto s1 = v4.new_state();
  auto s2 = user.new_state();
  CountingV4Moe::calls = 0;
  const auto a = v4.prefill(seq, s1);
  const auto b = user.prefill(seq, s2);
  CHECK(CountingV4Moe::calls == v4.config().n_layers);  // one call per block, every row at once
  CHECK(b.logits == a.logits);
  CHECK(b.hidden == a.hidden);
  // The MTP block holds the user FFN too.
  const std::span<const std::int32_t> next(seq.data() + 1, seq.size() - 1);
  const std::span<const float> h(a.hidden.data(), next.size() * 4 * v4.dim());
  CHECK(user.mtp_forward(h, next, 0, s2).logits == v4.mtp_forward(h, next, 0, s1).logits);
}

TEST_CASE("a model with another MoE: decode after prefill equals one longer prefill") {
  const auto m = d::ReferenceModel<SoftmaxPolicies>::load(tiny_b());
  const std::size_t v = m.vocab_size();
  const auto seq = tokens(40);
  auto st = m.new_state();
  d::ForwardTrace trace;
  const auto full = m.forward(seq, 0, st, true, &trace);
  // Every block routed every row to 3 distinct experts of the 5.
  REQUIRE(trace.routing.size() == static_cast<std::size_t>(m.config().n_layers));
  for (const d::Routing& r : trace.routing) {
    REQUIRE(r.tokens == seq.size());
    REQUIRE(r.k == kTopK);
    for (std::size_t t = 0; t < r.tokens; ++t) {
      std::vector<std::int32_t> e(r.experts.begin() + static_cast<std::ptrdiff_t>(t * kTopK),
                                  r.experts.begin() + static_cast<std::ptrdiff_t>((t + 1) * kTopK));
      std::sort(e.begin(), e.end());
      CHECK(e.front() >= 0);
      CHECK(e.back() < static_cast<std::int32_t>(kExperts));
      CHECK(std::adjacent_find(e.begin(), e.end()) == e.end());
    }
  }
  // It is another model than V4's.
  const auto v4 = d::ReferenceModel<d::WithNumerics<d::ReferenceFp32Numerics>>::load(tiny_b());
  auto sv = v4.new_state();
  CHECK(v4.prefill(seq, sv).logits != full.logits);

  // Prefill of 30, then one token per call: every row as the prefill of 40 computes it (measured
  // max difference 0).
  auto st2 = m.new_state();
  const std::span<const std::int32_t> all(seq);
  const auto pre = m.prefill(all.first(30), st2);
  CHECK(pre.logits == rows(full.logits, 0, 30, v));
  for (std::size_t i = 30; i < seq.size(); ++i) {
    CAPTURE(i);
    const auto step = m.decode(seq[i], st2);
    CHECK(step.logits == rows(full.logits, i, 1, v));
  }
  CHECK(st2.next_pos == 40);
  // A multi-token continuation, and the model behind AnyModel.
  auto st3 = m.new_state();
  m.prefill(all.first(25), st3);
  CHECK(m.forward(all.subspan(25), 25, st3).logits == rows(full.logits, 25, 15, v));
  const d::AnyModel any(d::ReferenceModel<SoftmaxPolicies>::load(tiny_b()), "reference");
  auto st4 = any.new_state();
  CHECK(any.prefill(seq, st4).logits == full.logits);
  // forward_into / decode_into behind AnyModel, without the hidden copy: the same logits
  auto st5 = any.new_state();
  d::ModelOutput out;
  any.forward_into(all.first(30), 0, st5, out, /*all_logits=*/false, /*hidden=*/false);
  CHECK(out.hidden.empty());
  CHECK(out.logits == rows(full.logits, 29, 1, v));
  any.decode_into(seq[30], st5, out);
  CHECK(out.logits == rows(full.logits, 30, 1, v));
  CHECK(out.hidden.size() == 4 * any.dim());
}

TEST_CASE("a model with another MoE runs on the device-shaped backend, bit for bit") {
  // The same model definition with the user's softmax-routed MoE, its activations and caches in
  // memory the host cannot touch outside the backend's ops: prefill and decode equal the
  // reference backend's.
  using Dev = d::Model<d::test::DeviceShapedBackend, SoftmaxPolicies>;
  const auto ckpt = tiny_b();
  const auto ref = d::ReferenceModel<SoftmaxPolicies>::load(ckpt);
  const d::test::DeviceShapedBackend backend;
  const auto dev = Dev::load(ckpt, backend);
  const auto seq = tokens(32);
  const std::span<const std::int32_t> all(seq);
  auto s1 = ref.new_state();
  auto s2 = dev.new_state();
  CHECK(dev.prefill(all.first(24), s2).logits == ref.prefill(all.first(24), s1).logits);
  for (std::size_t i = 24; i < seq.size(); ++i)
    CHECK(dev.decode(seq[i], s2).logits == ref.decode(seq[i], s1).logits);
  CHECK(dev.backend().op_calls() > 0);
}
