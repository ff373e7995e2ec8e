// ScratchBuffer and its pool (core/scratch.hpp): zero-filled like a std::vector, sizes kept
// through resize and copies, blocks reused once a size has been seen, and a size too large for
// any block refused.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <dsv4/core/scratch.hpp>
#include <limits>
#include <stdexcept>
#include <utility>

TEST_CASE("ScratchBuffer: zero-filled, resized, copied and moved like a vector") {
  dsv4::ScratchBuffer<float> a(5);
  REQUIRE(a.size() == 5);
  for (const float v : a) CHECK(v == 0.0f);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i + 1);
  a.resize(40);  // grows past the 64-byte block: the values move, the new ones are zero
  REQUIRE(a.size() == 40);
  CHECK(a[0] == 1.0f);
  CHECK(a[4] == 5.0f);
  CHECK(a[5] == 0.0f);
  CHECK(a[39] == 0.0f);
  a.resize(3);
  CHECK(a.size() == 3);
  a.resize(6);  // within the block: the tail is zero-filled again
  CHECK(a[2] == 3.0f);
  CHECK(a[3] == 0.0f);
  const dsv4::ScratchBuffer<float> b = a;
  REQUIRE(b.size() == 6);
  CHECK(b.data() != a.data());
  CHECK(b[1] == 2.0f);
  dsv4::ScratchBuffer<float> c = std::move(a);
  CHECK(a.empty());
  CHECK(c[2] == 3.0f);
  c.assign(4, 7.0f);
  CHECK(c.size() == 4);
  CHECK(c[3] == 7.0f);
  const dsv4::ScratchBuffer<std::int32_t> d(3, -1);
  CHECK(d[0] == -1);
  CHECK(d[2] == -1);
}

TEST_CASE("ScratchBuffer: a size seen before takes no new memory") {
  dsv4::release_scratch();
  { const dsv4::ScratchBuffer<float> warm(1000); }
  const std::size_t held = dsv4::scratch_pool_bytes();
  CHECK(held >= 4000);
  const float* first = nullptr;
  {
    const dsv4::ScratchBuffer<float> again(900);  // the same power-of-two class
    first = again.data();
    CHECK(dsv4::scratch_pool_bytes() == held);
  }
  const dsv4::ScratchBuffer<float> third(1000);
  CHECK(third.data() == first);
  CHECK(dsv4::scratch_pool_bytes() == held);
}

TEST_CASE(
    "ScratchBuffer: a small class's first use brings blocks for threads holding some at once") {
  // (tiles running on several threads take blocks of the same class in whatever overlap the
  // scheduling gives; four per hardware thread are there after the first use)
  dsv4::release_scratch();
  { const dsv4::ScratchBuffer<float> warm(100); }
  const std::size_t held = dsv4::scratch_pool_bytes();
  {
    const dsv4::ScratchBuffer<float> a(100), b(100), c(100), d(100);
    CHECK(dsv4::scratch_pool_bytes() == held);
  }
  // a large class: one block at a time
  dsv4::release_scratch();
  { const dsv4::ScratchBuffer<float> big(std::size_t{1} << 20); }
  CHECK(dsv4::scratch_pool_bytes() == (std::size_t{4} << 20));
}

TEST_CASE("ScratchBuffer: the peak of the bytes held at once") {
  const std::size_t before = dsv4::scratch_peak_bytes();
  {
    const dsv4::ScratchBuffer<float> a(std::size_t{1} << 22);  // 16 MiB blocks
    const dsv4::ScratchBuffer<float> b(std::size_t{1} << 22);
    CHECK(dsv4::scratch_peak_bytes() >= (std::size_t{32} << 20));
  }
  const std::size_t peak = dsv4::scratch_peak_bytes();
  CHECK(peak >= before);
  { const dsv4::ScratchBuffer<float> c(std::size_t{1} << 22); }  // one at a time: no new peak
  CHECK(dsv4::scratch_peak_bytes() == peak);
}

TEST_CASE("ScratchBuffer: a size no block holds is a length_error") {
  CHECK_THROWS_AS(dsv4::ScratchBuffer<float>(std::numeric_limits<std::size_t>::max() / 2),
                  std::length_error);
}
