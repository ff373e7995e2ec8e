// A custom mixture of experts composed from dsv4's policies: a DeepSeek-V2-style softmax router
// choosing 3 of 5 experts, no selection bias, no shared expert, float weights, and no SwiGLU
// clamp. V4's own layer is `Moe<TopKRouter<SqrtSoftplus>>` / `Moe<HashRouter<>>` with a shared
// expert (include/dsv4/layers/moe.hpp).
#include <fmt/format.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <dsv4/layers/moe.hpp>
#include <exception>
#include <vector>

namespace {

void run() {
  constexpr std::size_t dim = 8, inter = 16, n_experts = 5, top_k = 3, tokens = 4;
  auto weight = [seed = 0.0f](std::size_t out, std::size_t in) mutable {
    std::vector<float> w(out * in);
    for (float& v : w) v = 0.3f * std::sin(seed += 0.77f);
    return dsv4::DenseLinear<float>(w, out, in);
  };
  using Router = dsv4::TopKRouter<dsv4::Softmax>;
  std::vector<dsv4::Expert<dsv4::DenseLinear<float>>> experts;
  for (std::size_t e = 0; e < n_experts; ++e) {
    experts.emplace_back(weight(inter, dim), weight(dim, inter), weight(inter, dim),
                         /*swiglu_limit=*/0.0f);
  }
  const dsv4::Moe<Router, dsv4::DenseLinear<float>> moe(
      Router(weight(n_experts, dim), /*bias=*/{}, top_k, /*route_scale=*/1.0f), std::move(experts),
      /*shared=*/std::nullopt);

  std::vector<float> x(tokens * dim), y(tokens * dim);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.5f * static_cast<float>(i));
  dsv4::Routing routing;
  moe.forward<dsv4::PlainFp32Numerics>(x, /*tokens=*/{}, y, &routing);
  for (std::size_t t = 0; t < tokens; ++t) {
    fmt::print("token {}: experts", t);
    for (std::size_t j = 0; j < top_k; ++j) {
      fmt::print(" {} ({:.3f})", routing.experts[t * top_k + j], routing.weights[t * top_k + j]);
    }
    fmt::print(", y[0] = {:.5f}\n", y[t * dim]);
  }
}

}  // namespace

int main() {
  try {
    run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "custom_moe: {}\n", e.what());
    return 1;
  }
  return 0;
}
