// Token choice: greedy ties, temperature/top-p distributions, seeds, bad parameters.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <dsv4/model/sampling.hpp>
#include <limits>
#include <vector>

using dsv4::Sampler;
using dsv4::SamplingParams;

TEST_CASE("greedy picks the largest logit, the lowest id on ties") {
  Sampler s;
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  CHECK(s.sample(l) == 1);
  const std::vector<float> inf = {-std::numeric_limits<float>::infinity(), -3.0f};
  CHECK(s.sample(inf) == 1);
}

TEST_CASE("a seed gives the same tokens, different seeds differ") {
  std::vector<float> l(64);
  for (std::size_t i = 0; i < l.size(); ++i) l[i] = std::sin(static_cast<float>(i));
  auto run = [&](std::uint64_t seed) {
    Sampler s({1.0f, 1.0f, seed});
    std::vector<std::int64_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(l));
    return out;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
  // Pinned: the stream is platform-independent (mt19937_64, 53-bit mapping).
  Sampler s({1.0f, 1.0f, 42});
  std::array<std::int64_t, 5> first{};
  for (auto& t : first) t = s.sample(l);
  Sampler again({1.0f, 1.0f, 42});
  for (auto t : first) CHECK(again.sample(l) == t);
}

TEST_CASE("temperature sampling follows softmax(l / T) and top-p keeps the nucleus") {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const int n = 200000;
  {
    Sampler s({1.0f, 1.0f, 1});
    std::array<int, 4> count{};
    for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(s.sample(l))];
    const double want[] = {0.5, 0.3, 0.15, 0.05};
    for (std::size_t k = 0; k < 4; ++k)
      CHECK(static_cast<double>(count[k]) / n == doctest::Approx(want[k]).epsilon(0.03));
  }
  {
    // top_p 0.75: {0.5, 0.3} reaches it; renormalised to 0.625 / 0.375
    Sampler s({1.0f, 0.75f, 2});
    std::array<int, 4> count{};
    for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(s.sample(l))];
    CHECK(count[2] == 0);
    CHECK(count[3] == 0);
    CHECK(static_cast<double>(count[0]) / n == doctest::Approx(0.625).epsilon(0.03));
  }
  {
    // T = 0.5 squares the probabilities: 0.25 : 0.09 : 0.0225 : 0.0025
    Sampler s({0.5f, 1.0f, 3});
    int zero = 0;
    for (int i = 0; i < n; ++i) zero += s.sample(l) == 0;
    CHECK(static_cast<double>(zero) / n == doctest::Approx(0.25 / 0.365).epsilon(0.03));
  }
}

TEST_CASE("bad sampling parameters and logits are rejected") {
  CHECK_THROWS_AS(Sampler({-1.0f, 1.0f, 0}), dsv4::InputError);
  CHECK_THROWS_AS(Sampler({1.0f, 0.0f, 0}), dsv4::InputError);
  CHECK_THROWS_AS(Sampler({1.0f, 1.5f, 0}), dsv4::InputError);
  Sampler s({1.0f, 1.0f, 0});
  CHECK_THROWS_AS(s.sample(std::vector<float>{}), dsv4::ShapeError);
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f, std::nanf("")}), dsv4::InputError);
}
