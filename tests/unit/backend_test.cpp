// The Backend concept and the reference backend (include/dsv4/backend/): what satisfies the
// concept, that the model runs its hot ops through the backend it holds (a backend derived from
// the reference one, counting calls, gives the reference's logits bit for bit), that weight
// formats are opt-in per backend, and the semantics of the ops the reference backend defines.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dsv4/backend/concept.hpp>
#include <dsv4/backend/reference.hpp>
#include <dsv4/formats/registry.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/layers/linear.hpp>
#include <dsv4/model/model.hpp>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

namespace d = dsv4;

/// Counts the calls of every op, then does what the reference backend does.
struct CountingBackend : d::ReferenceBackend {
  static constexpr std::string_view name = "counting";
  std::shared_ptr<std::map<std::string, int>> calls =
      std::make_shared<std::map<std::string, int>>();

  void count(const char* op) const { ++(*calls)[op]; }

  template <d::NumericsPolicy N, d::LinearOp L>
  void linear(const L& w, d::ConstView2<float> x, d::View2<float> y) const {
    count("linear");
    d::ReferenceBackend::linear<N>(w, x, y);
  }
  template <d::NumericsPolicy N>
  void rms_norm(std::span<const float> x, std::span<const float> w, float eps,
                std::span<float> y) const {
    count("rms_norm");
    d::ReferenceBackend::rms_norm<N>(x, w, eps, y);
  }
  template <d::NumericsPolicy N>
  void head_rms_norm(std::span<float> x, std::size_t n, float eps) const {
    count("head_rms_norm");
    d::ReferenceBackend::head_rms_norm<N>(x, n, eps);
  }
  template <d::NumericsPolicy N>
  void rope(const d::Rope& r, float* x, std::size_t n, std::size_t len, std::int64_t pos,
            d::RopeDirection dir) const {
    count("rope");
    d::ReferenceBackend::rope<N>(r, x, n, len, pos, dir);
  }
  template <d::NumericsPolicy N>
  void swiglu(d::View2<float> g, d::ConstView2<float> v, std::span<const float> w,
              float limit) const {
    count("swiglu");
    d::ReferenceBackend::swiglu<N>(g, v, w, limit);
  }
  template <d::NumericsPolicy N>
  void sparse_attention(const d::SparseAttentionArgs& a) const {
    count("sparse_attention");
    d::ReferenceBackend::sparse_attention<N>(a);
  }
  void softmax_pool(const float* const* kv, const float* const* s, std::size_t m, std::size_t n,
                    float* y) const {
    count("softmax_pool");
    d::ReferenceBackend::softmax_pool(kv, s, m, n, y);
  }
  template <d::NumericsPolicy N>
  void index_scores(d::ConstView2<float> q, d::ConstView2<float> k, d::ConstView2<float> w,
                    std::span<const std::size_t> vis, d::View2<float> out) const {
    count("index_scores");
    d::ReferenceBackend::index_scores<N>(q, k, w, vis, out);
  }
  void top_k(std::span<const float> s, std::span<std::int32_t> picks) const {
    count("top_k");
    d::ReferenceBackend::top_k(s, picks);
  }
};

/// A backend with dense kernels only: quantized weight types are not available on it.
struct DenseOnlyBackend : d::ReferenceBackend {
  template <d::NumericsPolicy N, class T>
  void linear(const d::DenseLinear<T>& w, d::ConstView2<float> x, d::View2<float> y) const {
    w.template forward<N>(x, y);
  }
};

static_assert(d::Backend<d::ReferenceBackend>);
static_assert(d::Backend<CountingBackend>);
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

TEST_CASE("the model runs its hot ops on the backend it holds") {
  using N = d::ReferenceNumerics;
  const auto ckpt = checkpoint("tiny_b");  // SWA, CSA and HCA blocks, hash and scored MoE, MTP
  const auto ref = d::ReferenceModel<N>::load(ckpt);
  CountingBackend counting;
  const auto m = d::Model<CountingBackend, N>::load(ckpt, counting);
  CHECK(m.backend().name == "counting");
  const std::vector<std::int32_t> tokens = {5, 17, 99, 3, 42, 7, 8, 100, 12, 13, 60, 61, 62, 1, 2};
  auto s1 = ref.new_state();
  auto s2 = m.new_state();
  const auto want = ref.prefill(tokens, s1);
  const auto got = m.prefill(tokens, s2);
  CHECK(got.logits == want.logits);
  CHECK(m.decode(9, s2).logits == ref.decode(9, s1).logits);
  CHECK(m.mtp_forward(got.hidden, tokens, 0, s2).logits ==
        ref.mtp_forward(want.hidden, tokens, 0, s1).logits);
  for (const char* op : {"linear", "rms_norm", "head_rms_norm", "rope", "swiglu",
                         "sparse_attention", "softmax_pool", "index_scores", "top_k"}) {
    CAPTURE(op);
    CHECK((*counting.calls)[op] > 0);
  }
}

TEST_CASE("reference backend ops") {
  const d::ReferenceBackend b;
  SUBCASE("alloc: zero-filled buffers") {
    const auto v = b.alloc<float>(5);
    CHECK(v.size() == 5);
    CHECK(v == std::vector<float>(5, 0.0f));
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
