// The Backend concept and the reference backend (include/dsv4/backend/): what satisfies the
// concept, that the model runs every op through the backend it holds (a backend derived from the
// reference one gives the reference's logits bit for bit, and changing the result of any one op
// changes the logits), that weight formats are opt-in per backend, and the semantics of the ops
// the reference backend defines.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dsv4/backend/concept.hpp>
#include <dsv4/backend/reference.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/formats/registry.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/model.hpp>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace d = dsv4;

/// Does what the reference backend does, counting the calls of every op, except that the one op
/// named `target` then changes its result. The model runs an op through its backend at every call
/// site only if nudging that op changes the logits; each op below is one entry of kPerturbedOps.
struct PerturbingBackend : d::ReferenceBackend {
  static constexpr std::string_view name = "perturbing";
  /// The op whose results change (empty: none); shared by the copies, so that the backend a
  /// model holds can be switched after loading.
  std::shared_ptr<std::string> target = std::make_shared<std::string>();
  std::shared_ptr<std::map<std::string, int, std::less<>>> calls =
      std::make_shared<std::map<std::string, int, std::less<>>>();

  /// Counts a call of `op`; true when its result is to change.
  bool hit(std::string_view op) const {
    ++(*calls)[std::string(op)];
    return op == *target;
  }
  /// A change far above any rounding: alternately up and down by a quarter plus a quarter of |v|.
  static void nudge(float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      y[i] += (i % 2 == 0 ? 0.25f : -0.25f) * (1.0f + std::fabs(y[i]));
  }
  static void nudge(d::View2<float> y) {
    for (std::size_t r = 0; r < y.rows; ++r) nudge(y.data + r * y.stride, y.cols);
  }

  template <class T>
  buffer<T> alloc(std::size_t n) const {
    (void)hit("alloc");  // zero-filled scratch the model overwrites: counted, not nudged
    return d::ReferenceBackend::alloc<T>(n);
  }
  template <d::NumericsPolicy N, d::LinearOp L>
  void linear(const L& w, d::ConstView2<float> x, d::View2<float> y) const {
    d::ReferenceBackend::linear<N>(w, x, y);
    if (hit("linear")) nudge(y);
  }
  template <d::NumericsPolicy N>
  void rms_norm(std::span<const float> x, std::span<const float> w, float eps,
                std::span<float> y) const {
    d::ReferenceBackend::rms_norm<N>(x, w, eps, y);
    if (hit("rms_norm")) nudge(y.data(), y.size());
  }
  template <d::NumericsPolicy N>
  void head_rms_norm(std::span<float> x, std::size_t n, float eps) const {
    d::ReferenceBackend::head_rms_norm<N>(x, n, eps);
    if (hit("head_rms_norm")) nudge(x.data(), x.size());
  }
  template <d::NumericsPolicy N>
  void rope(const d::Rope& r, float* x, std::size_t n, std::size_t len, std::int64_t pos,
            d::RopeDirection dir) const {
    d::ReferenceBackend::rope<N>(r, x, n, len, pos, dir);
    if (hit("rope")) nudge(x, n * len);
  }
  template <d::NumericsPolicy N>
  void swiglu(d::View2<float> g, d::ConstView2<float> v, std::span<const float> w,
              float limit) const {
    d::ReferenceBackend::swiglu<N>(g, v, w, limit);
    if (hit("swiglu")) nudge(g);
  }
  template <d::NumericsPolicy N>
  void mul_rows(d::View2<float> y, std::span<const float> w) const {
    d::ReferenceBackend::mul_rows<N>(y, w);
    if (hit("mul_rows")) nudge(y);
  }
  template <d::NumericsPolicy N>
  void sparse_attention(const d::SparseAttentionArgs& a) const {
    d::ReferenceBackend::sparse_attention<N>(a);
    if (hit("sparse_attention")) nudge(a.out, a.tokens * a.heads * a.head_dim);
  }
  void softmax_pool(const float* const* kv, const float* const* s, std::size_t m, std::size_t n,
                    float* y) const {
    d::ReferenceBackend::softmax_pool(kv, s, m, n, y);
    if (hit("softmax_pool")) nudge(y, n);
  }
  template <d::NumericsPolicy N>
  void index_scores(d::ConstView2<float> q, d::ConstView2<float> k, d::ConstView2<float> w,
                    std::span<const std::size_t> vis, d::View2<float> out) const {
    d::ReferenceBackend::index_scores<N>(q, k, w, vis, out);
    if (!hit("index_scores")) return;
    // the scores only rank entries: reverse the ranking of the visible ones
    for (std::size_t r = 0; r < out.rows; ++r) {
      for (std::size_t j = 0; j < out.cols; ++j)
        if (std::isfinite(out(r, j))) out(r, j) = -out(r, j);
    }
  }
  void top_k(std::span<const float> s, std::span<std::int32_t> picks) const {
    d::ReferenceBackend::top_k(s, picks);
    if (!hit("top_k") || picks.empty() || picks.size() == s.size()) return;
    // swap the last pick for the lowest-ranked value
    std::vector<std::int32_t> all(s.size());
    d::ReferenceBackend::top_k(s, all);
    picks.back() = all.back();
  }
};

/// The ops PerturbingBackend changes under the reference's numerics, one entry each: a new op of
/// the Backend concept gets a member above and a line here (mul_rows, used only in llama.cpp's
/// MoE order, has its own test case).
constexpr const char* kPerturbedOps[] = {"linear",       "rms_norm",     "head_rms_norm",
                                         "rope",         "swiglu",       "sparse_attention",
                                         "softmax_pool", "index_scores", "top_k"};

/// A backend with dense kernels only: quantized weight types are not available on it.
struct DenseOnlyBackend : d::ReferenceBackend {
  template <d::NumericsPolicy N, class T>
  void linear(const d::DenseLinear<T>& w, d::ConstView2<float> x, d::View2<float> y) const {
    w.template forward<N>(x, y);
  }
};

static_assert(d::Backend<d::ReferenceBackend>);
static_assert(d::Backend<PerturbingBackend>);
static_assert(d::Backend<DenseOnlyBackend>);
static_assert(d::SupportsLinear<d::ReferenceBackend, d::Linear<d::Q4_K>>);
static_assert(d::SupportsLinear<d::ReferenceBackend, d::AnyLinear>);
static_assert(!d::SupportsLinear<DenseOnlyBackend, d::Linear<d::Q4_K>>);
static_assert(!d::Backend<int>);

d::io::Checkpoint checkpoint(const std::string& name) {
  const auto dir = d::test::data_path("reference/" + name);
  return {dir / "config.json", {dir / "weights.safetensors"}};
}

}  // namespace

TEST_CASE("the model runs every op through the backend it holds") {
  using N = d::ReferenceNumerics;
  using M = d::Model<PerturbingBackend, d::WithNumerics<N>>;
  const auto ckpt = checkpoint("tiny_b");  // SWA, CSA and HCA blocks, hash and scored MoE, MTP
  // 95 tokens: the indexers (top-21 of the ratio-4 entries) have more entries than picks, and the
  // decoded position 95 completes a block of every compressor (ratios 4, 16 and 32).
  std::vector<std::int32_t> tokens(95);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<std::int32_t>((i * 37 + 5) % 512);
  const std::int32_t next = 9;
  const PerturbingBackend backend;
  const M m = M::load(ckpt, backend);
  CHECK(m.backend().name == "perturbing");
  auto after_prefill = m.new_state();
  const auto pre = m.prefill(tokens, after_prefill);
  auto st = after_prefill;
  const auto dec = m.decode(next, st).logits;
  auto mst = m.new_state();
  const auto mtp = m.mtp_forward(pre.hidden, tokens, 0, mst).logits;
  {  // unperturbed, it is the reference backend: the reference model's logits bit for bit
    const auto ref = d::ReferenceModel<d::WithNumerics<N>>::load(ckpt);
    auto s1 = ref.new_state();
    const auto want = ref.prefill(tokens, s1);
    CHECK(pre.logits == want.logits);
    CHECK(pre.hidden == want.hidden);
    CHECK(dec == ref.decode(next, s1).logits);
    auto s2 = ref.new_state();
    CHECK(mtp == ref.mtp_forward(want.hidden, tokens, 0, s2).logits);
  }
  CHECK((*backend.calls)["alloc"] > 0);
  // Each op changed in turn: the prefill, a decode step on the unchanged prefill's caches and the
  // MTP block on the unchanged trunk output each give other logits.
  for (const std::string op : kPerturbedOps) {
    CAPTURE(op);
    *backend.target = op;
    const int before = (*backend.calls)[op];
    auto s1 = m.new_state();
    CHECK(m.prefill(tokens, s1).logits != pre.logits);
    auto s2 = after_prefill;
    CHECK(m.decode(next, s2).logits != dec);
    auto s3 = m.new_state();
    CHECK(m.mtp_forward(pre.hidden, tokens, 0, s3).logits != mtp);
    CHECK((*backend.calls)[op] > before);
  }
  *backend.target = "";
}

TEST_CASE("llama.cpp's MoE order scales the routed experts' outputs through the backend") {
  // PlainFp32Numerics runs the MoE in ggml's order: w2's outputs times the routing weights
  // (mul_rows), summed in slot order; the reference's numerics never call mul_rows.
  using M = d::Model<PerturbingBackend, d::WithNumerics<d::PlainFp32Numerics>>;
  const auto ckpt = checkpoint("tiny_b");
  std::vector<std::int32_t> tokens(40);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<std::int32_t>((i * 37 + 5) % 512);
  const PerturbingBackend backend;
  const M m = M::load(ckpt, backend);
  auto s0 = m.new_state();
  const auto pre = m.prefill(tokens, s0).logits;
  CHECK((*backend.calls)["mul_rows"] > 0);
  {  // the same logits as the reference backend's, bit for bit
    const auto ref = d::ReferenceModel<d::WithNumerics<d::PlainFp32Numerics>>::load(ckpt);
    auto s1 = ref.new_state();
    CHECK(ref.prefill(tokens, s1).logits == pre);
  }
  *backend.target = "mul_rows";
  auto s2 = m.new_state();
  CHECK(m.prefill(tokens, s2).logits != pre);
  *backend.target = "";
  const auto calls = (*backend.calls)["mul_rows"];
  using R = d::Model<PerturbingBackend, d::WithNumerics<d::ReferenceFp32Numerics>>;
  const R r = R::load(ckpt, backend);
  auto s3 = r.new_state();
  (void)r.prefill(tokens, s3);
  CHECK((*backend.calls)["mul_rows"] == calls);
}

TEST_CASE("reference backend ops") {
  const d::ReferenceBackend b;
  SUBCASE("alloc: zero-filled buffers") {
    const auto v = b.alloc<float>(5);
    CHECK(v.size() == 5);
    CHECK(std::vector<float>(v.begin(), v.end()) == std::vector<float>(5, 0.0f));
  }
  SUBCASE("top_k: descending, ties to the lower index") {
    const std::vector<float> s = {1.0f, 3.0f, 3.0f, -std::numeric_limits<float>::infinity(), 3.0f};
    std::vector<std::int32_t> picks(5);
    b.top_k(s, picks);
    CHECK(picks == std::vector<std::int32_t>{1, 2, 4, 0, 3});
    std::vector<std::int32_t> too_many(6);
    CHECK_THROWS_AS(b.top_k(s, too_many), d::ShapeError);
  }
  SUBCASE("softmax_pool: per-channel softmax weights") {
    const float kv0[2] = {1.0f, 10.0f}, kv1[2] = {3.0f, 20.0f};
    const float s0[2] = {0.0f, 0.0f}, s1[2] = {0.0f, -std::numeric_limits<float>::infinity()};
    const float* kv[2] = {kv0, kv1};
    const float* sc[2] = {s0, s1};
    float y[2];
    b.softmax_pool(kv, sc, 2, 2, y);
    CHECK(y[0] == 2.0f);   // equal scores: the mean
    CHECK(y[1] == 10.0f);  // a member at −∞ weighs nothing
  }
  SUBCASE("index_scores: entries a query cannot see score −∞") {
    const std::vector<float> q = {1.0f, 0.0f, 0.0f, 1.0f};       // [1, Hi=2 · Di=2]
    const std::vector<float> keys = {2.0f, -1.0f, -3.0f, 0.5f};  // [2, 2]
    const std::vector<float> w = {0.5f, 2.0f};                   // [1, 2]
    const std::vector<std::size_t> visible = {1};
    std::vector<float> scores(2);
    b.index_scores<d::PlainFp32Numerics>(
        d::ConstView2<float>(q.data(), 1, 4), d::ConstView2<float>(keys.data(), 2, 2),
        d::ConstView2<float>(w.data(), 1, 2), visible, d::View2<float>(scores.data(), 1, 2));
    CHECK(scores[0] == 2.0f * 0.5f + 0.0f);  // relu(2)·0.5 + relu(−1)·2
    CHECK(scores[1] == -std::numeric_limits<float>::infinity());
  }
  SUBCASE("swiglu: the clamp bounds the gate from above and the up projection both ways") {
    std::vector<float> g = {10.0f, -1.0f};
    const std::vector<float> v = {-5.0f, 0.5f};
    b.swiglu<d::PlainFp32Numerics>(d::View2<float>(g.data(), 1, 2),
                                   d::ConstView2<float>(v.data(), 1, 2), {}, 1.5f);
    CHECK(g[0] == doctest::Approx(1.5f / (1.0f + std::exp(-1.5f)) * -1.5f));
    CHECK(g[1] == doctest::Approx(-1.0f / (1.0f + std::exp(1.0f)) * 0.5f));
  }
}
