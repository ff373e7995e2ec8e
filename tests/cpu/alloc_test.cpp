// No allocation per decoded token once a sequence is warm: the activations of every layer and
// backend op live in pooled scratch memory (core/scratch.hpp), the caches in the sequence's state,
// and the logits in the caller's ModelOutput (decode_into). This executable replaces the C
// allocator's entry points (malloc, calloc, realloc, aligned_alloc, posix_memalign, memalign;
// operator new and oneTBB's internal allocations go through them) with counting wrappers, and
// counts the calls during decode steps after a prefill and a few warm-up steps: on the reference
// backend and on the CPU backend with 1 and 2 threads; for the release's FP8/FP4 layout
// (tiny_fp8), a bf16 checkpoint (tiny_b) and llama.cpp's F32 GGUF. The tiny models' windows and
// compress ratios (4 and 128 for tiny_fp8) make the 96 steps cross entry and window boundaries.
#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <dsv4/cpu/backend.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/model.hpp>
#include <memory>
#include <span>
#include <vector>

#include "test_data.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
void count() noexcept {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  count();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  count();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}

namespace {

namespace d = dsv4;

struct Counts {
  long first = 0;   ///< allocations of the decode steps of a sequence's first run
  long second = 0;  ///< the same steps of a second sequence
};

/// Prefills a prompt of `prompt` tokens and decodes `warm` steps, then counts the allocations of
/// `steps` further decode steps into one reused output; twice, with two sequences of the same
/// tokens. In the first, a buffer whose size grows with the context (the indexer's scores, the
/// compressed candidate lists) takes a larger pooled block when it crosses a power of two; the
/// second finds every block in the pool.
template <class M>
Counts decode_allocations(const M& m, std::size_t prompt, std::size_t warm, std::size_t steps) {
  const auto vocab = static_cast<std::int32_t>(m.vocab_size());
  std::vector<std::int32_t> tokens(prompt);
  for (std::size_t i = 0; i < prompt; ++i) tokens[i] = static_cast<std::int32_t>(i * 7 + 3) % vocab;
  Counts c;
  for (long* counted : {&c.first, &c.second}) {
    auto st = m.new_state();
    typename M::Output out;
    m.forward_into(tokens, 0, st, out, false);
    for (std::size_t i = 0; i < warm; ++i)
      m.decode_into(static_cast<std::int32_t>(i * 11 + 5) % vocab, st, out);
    g_allocations = 0;
    g_counting = true;
    for (std::size_t i = 0; i < steps; ++i)
      m.decode_into(static_cast<std::int32_t>(i * 13 + 1) % vocab, st, out);
    g_counting = false;
    *counted = g_allocations.load();
  }
  return c;
}

// 96 decode steps from position 28 (the tiny models hold 128 positions): none allocates in a second
// sequence, and in the first only the few steps where a context-sized buffer crosses a power of two
// do (measured: at most 4)
template <class M>
void check_decode(const M& m) {
  d::release_scratch();  // every model starts from an empty pool
  const Counts c = decode_allocations(m, 24, 4, 96);
  MESSAGE("allocations in 96 decode steps: first sequence ", c.first, ", second ", c.second);
  CHECK(c.second == 0);
  CHECK(c.first <= 16);
}

template <class N, class B>
using CkptModel = d::Model<B, d::WithLinear<d::AnyLinear, d::WithNumerics<N>>>;

}  // namespace

TEST_CASE("no allocation per decoded token: the release's FP8/FP4 layout (tiny_fp8)") {
  const auto ckpt = d::io::Checkpoint::open(d::test::data_path("reference/tiny_fp8/hf"));
  {
    const auto m = CkptModel<d::ReferenceNumerics, d::ReferenceBackend>::load(ckpt);
    check_decode(m);
  }
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    const auto m =
        CkptModel<d::ReferenceNumerics, d::cpu::Backend>::load(ckpt, d::cpu::Backend(threads));
    check_decode(m);
  }
}

TEST_CASE("no allocation per decoded token: a bf16 checkpoint and llama.cpp's F32 GGUF") {
  const auto dir = d::test::data_path("reference/tiny_b");
  const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  const d::io::GgufModel gguf(std::make_shared<const d::io::GgufFile>(
      d::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf")));
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    const auto m = d::Model<d::cpu::Backend, d::WithNumerics<d::ReferenceFp32Numerics>>::load(
        ckpt, d::cpu::Backend(threads));
    check_decode(m);
    const auto g = CkptModel<d::PlainFp32Numerics, d::cpu::Backend>::load(gguf, gguf.config(),
                                                                          d::cpu::Backend(threads));
    check_decode(g);
  }
}

TEST_CASE("no allocation per MTP step: the MTP block drafting one token at a time") {
  const auto dir = d::test::data_path("reference/tiny_b");
  const d::io::Checkpoint ckpt(dir / "config.json", {dir / "weights.safetensors"});
  const auto m = d::Model<d::cpu::Backend, d::WithNumerics<d::ReferenceFp32Numerics>>::load(
      ckpt, d::cpu::Backend(2));
  REQUIRE(m.n_mtp() > 0);
  const auto vocab = static_cast<std::int32_t>(m.vocab_size());
  d::release_scratch();
  long counted[2] = {0, 0};
  for (long& c : counted) {  // a first sequence, then a second over the same positions
    auto st = m.new_state();
    std::vector<std::int32_t> prompt(24);
    for (std::size_t i = 0; i < prompt.size(); ++i)
      prompt[i] = static_cast<std::int32_t>(i * 7 + 3) % vocab;
    d::ModelOutput trunk;
    d::ModelOutput draft;
    m.forward_into(prompt, 0, st, trunk, false);
    std::vector<float> hidden(
        trunk.hidden.end() - static_cast<std::ptrdiff_t>(trunk.hidden.size() / prompt.size()),
        trunk.hidden.end());
    std::int64_t pos = 0;
    const auto step = [&](std::int32_t token) {
      m.mtp_forward_into(hidden, std::span<const std::int32_t>(&token, 1), pos, st, draft, 0,
                         false);
      ++pos;
    };
    for (int i = 0; i < 4; ++i) step(static_cast<std::int32_t>(i * 11 + 5) % vocab);  // warm-up
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 48; ++i) step(static_cast<std::int32_t>(i * 13 + 1) % vocab);
    g_counting = false;
    c = g_allocations.load();
  }
  MESSAGE("allocations in 48 MTP steps: first sequence ", counted[0], ", second ", counted[1]);
  CHECK(counted[1] == 0);
  CHECK(counted[0] <= 8);
}
