// A device-shaped backend for the tests: the op set of a GPU backend, run by the reference
// backend's code on memory the host cannot touch.
//
// Every buffer it hands out (activations from alloc(), a sequence's caches from state_memory())
// lives in one arena that is mapped without access except while one of its ops runs, so memory
// behaves as a GPU's does for the model: a pointer it may pass around and offset, never
// dereference. A host read or write of that memory outside an op (a step of the model that no
// backend op covers) stops the process with a message naming the address; an op called by the
// model with an activation in host memory (a buffer that did not come from alloc()) throws.
// Token ids, positions and weights stay host data handed to the ops, as a GPU backend receives
// kernel arguments and uploads weights once.
//
// The ops that a host backend runs as host code around finer ops (the compressor, the indexer,
// the MoE, the residual mixing, ...) run here as that same code inside one op, as a GPU backend
// would run them as its own kernels. Single-threaded; one arena per backend object and its
// copies.
#pragma once

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/state_memory.hpp"
#include "dsv4/layers/attention.hpp"
#include "dsv4/layers/compressor.hpp"
#include "dsv4/layers/indexer.hpp"
#include "dsv4/layers/mhc.hpp"
#include "dsv4/layers/moe.hpp"
#include "dsv4/layers/routers.hpp"
#include "dsv4/ops/quant.hpp"

namespace dsv4::test {

/// The device memory: one reserved address range, handed out in blocks of power-of-two pages
/// (a freed block is kept for the next request of its size), readable and writable only while
/// open() is in effect.
class DeviceArena final : public DeviceMemory {
 public:
  explicit DeviceArena(std::size_t reserve_bytes = std::size_t{1} << 32) : reserve_(reserve_bytes) {
    void* p =
        ::mmap(nullptr, reserve_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("device arena: cannot reserve address space");
    base_ = static_cast<std::byte*>(p);
    try {
      install_handler(this);
    } catch (...) {
      ::munmap(base_, reserve_);
      throw;
    }
  }
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() override {
    remove_handler(this);
    ::munmap(base_, reserve_);
  }

  /// A zero-filled block of at least `bytes` bytes.
  void* allocate_bytes(std::size_t bytes) {
    const std::size_t size = std::bit_ceil(std::max<std::size_t>(bytes, kPage));
    void* p = nullptr;
    auto& free = free_[size];
    if (!free.empty()) {
      p = free.back();
      free.pop_back();
    } else {
      if (size > reserve_ - top_) throw std::bad_alloc();
      p = base_ + top_;
      top_ += size;
      if (depth_ > 0 && ::mprotect(p, size, PROT_READ | PROT_WRITE) != 0) throw std::bad_alloc();
    }
    sizes_[p] = size;
    const Scope open(*this);
    std::memset(p, 0, size);
    return p;
  }
  void release(void* p) noexcept {
    if (p == nullptr) return;
    const auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    free_[it->second].push_back(p);
    sizes_.erase(it);
  }
  /// Whether p points into a block of this arena.
  bool contains(const void* p) const noexcept {
    const auto* b = static_cast<const std::byte*>(p);
    return b >= base_ && b < base_ + top_;
  }

  /// While a Scope lives (nested scopes count), the arena is readable and writable.
  class Scope {
   public:
    explicit Scope(const DeviceArena& a) : a_(const_cast<DeviceArena&>(a)) { a_.open(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() { a_.close(); }

   private:
    DeviceArena& a_;
  };
  int depth() const noexcept { return depth_; }

  // DeviceMemory: a sequence's caches
  float* allocate(std::size_t n) override {
    return static_cast<float*>(allocate_bytes(n * sizeof(float)));
  }
  void deallocate(float* p, std::size_t) noexcept override { release(p); }
  void fill(float* p, std::size_t n, float value) override {
    const Scope open(*this);
    std::fill_n(p, n, value);
  }
  void copy(float* dst, const float* src, std::size_t n) override {
    const Scope open(*this);
    std::copy_n(src, n, dst);
  }

 private:
  static constexpr std::size_t kPage = 4096;

  void open() {
    if (depth_++ == 0 && top_ > 0) protect(PROT_READ | PROT_WRITE);
  }
  void close() noexcept {
    if (--depth_ == 0 && top_ > 0) protect(PROT_NONE);
  }
  void protect(int prot) const noexcept {
    if (::mprotect(base_, top_, prot) != 0) {
      static constexpr char msg[] = "device arena: mprotect failed\n";
      (void)!::write(2, msg, sizeof(msg) - 1);
      std::abort();
    }
  }

  // A fault inside an arena while no op runs is the host touching device memory: say so and
  // stop (with the stack, to find the step). Any other fault goes to the default handler.
  static constexpr std::size_t kMaxArenas = 64;
  static DeviceArena** live() {
    static DeviceArena* arenas[kMaxArenas] = {};
    return arenas;
  }
  static void on_fault(int sig, siginfo_t* info, void*) {
    const auto* addr = static_cast<const std::byte*>(info->si_addr);
    for (std::size_t i = 0; i < kMaxArenas; ++i) {
      const DeviceArena* a = live()[i];
      if (a == nullptr || addr < a->base_ || addr >= a->base_ + a->reserve_) continue;
      char msg[160];
      const int n = std::snprintf(msg, sizeof msg,
                                  "device-shaped backend: the host touched device memory at %p "
                                  "outside every backend op\n",
                                  info->si_addr);
      (void)!::write(2, msg, static_cast<std::size_t>(n));
      void* frames[32];
      ::backtrace_symbols_fd(frames, ::backtrace(frames, 32), 2);
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
    ::signal(sig, SIG_DFL);  // not ours: fault again with the default action
  }
  static void install_handler(DeviceArena* a) {
    // (again for every arena: a test framework may have put its own handler back meanwhile)
    struct sigaction sa {};
    sa.sa_sigaction = &DeviceArena::on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, nullptr);
    ::sigaction(SIGBUS, &sa, nullptr);
    for (std::size_t i = 0; i < kMaxArenas; ++i) {
      if (live()[i] == nullptr) {
        live()[i] = a;
        return;
      }
    }
    throw std::runtime_error("device arena: more than 64 arenas at once");
  }
  static void remove_handler(const DeviceArena* a) noexcept {
    for (std::size_t i = 0; i < kMaxArenas; ++i)
      if (live()[i] == a) live()[i] = nullptr;
  }

  std::byte* base_ = nullptr;
  std::size_t reserve_ = 0;
  std::size_t top_ = 0;
  int depth_ = 0;
  std::map<std::size_t, std::vector<void*>> free_;
  std::map<const void*, std::size_t> sizes_;
};

/// The backend. Copies share one arena.
class DeviceShapedBackend {
 public:
  static constexpr std::string_view name = "device-shaped";

  /// n values in the arena: movable, never dereferenced by the model (begin()/end()/data() are
  /// device pointers).
  template <class T>
  class buffer {
   public:
    using value_type = T;
    buffer() = default;
    buffer(DeviceArena* a, std::size_t n)
        : a_(a), p_(static_cast<T*>(a->allocate_bytes(n * sizeof(T)))), n_(n) {}
    buffer(buffer&& o) noexcept
        : a_(o.a_), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    buffer& operator=(buffer&& o) noexcept {
      std::swap(a_, o.a_);
      std::swap(p_, o.p_);
      std::swap(n_, o.n_);
      return *this;
    }
    ~buffer() {
      if (p_ != nullptr) a_->release(p_);
    }
    T* data() noexcept { return p_; }
    const T* data() const noexcept { return p_; }
    std::size_t size() const noexcept { return n_; }
    T* begin() noexcept { return p_; }
    T* end() noexcept { return p_ + n_; }
    const T* begin() const noexcept { return p_; }
    const T* end() const noexcept { return p_ + n_; }
    T& operator[](std::size_t i) noexcept { return p_[i]; }  // inside an op only
    const T& operator[](std::size_t i) const noexcept { return p_[i]; }

   private:
    DeviceArena* a_ = nullptr;
    T* p_ = nullptr;
    std::size_t n_ = 0;
  };

  DeviceShapedBackend() : arena_(std::make_shared<DeviceArena>()) {}

  DeviceArena& arena() const noexcept { return *arena_; }
  /// Ops the model called (not counting the ops they run inside).
  std::size_t op_calls() const noexcept { return *calls_; }

  // ---- memory ----
  template <class T>
  buffer<T> alloc(std::size_t n) const {
    return buffer<T>(arena_.get(), n);
  }
  DeviceMemory* state_memory() const noexcept { return arena_.get(); }
  template <class T>
  void copy(std::span<const T> src, std::span<T> dst) const {
    const Op op(*this, "copy", {src.data(), dst.data()});
    std::copy(src.begin(), src.end(), dst.begin());
  }
  template <class T>
  void upload(std::span<const T> host, std::span<T> dst) const {
    const Op op(*this, "upload", {dst.data()});
    std::copy(host.begin(), host.end(), dst.begin());
  }
  template <class T>
  void download(std::span<const T> src, std::span<T> host) const {
    const Op op(*this, "download", {src.data()});
    std::copy(src.begin(), src.end(), host.begin());
  }

  // ---- the Backend concept's ops ----
  template <NumericsPolicy N, LinearOp L>
  void linear(const L& w, ConstView2<float> x, View2<float> y) const {
    const Op op(*this, "linear", {x.data, y.data});
    ref_.linear<N>(w, x, y);
  }
  template <NumericsPolicy N>
  void rms_norm(std::span<const float> x, std::span<const float> weight, float eps,
                std::span<float> y) const {
    const Op op(*this, "rms_norm", {x.data(), y.data()});
    ref_.rms_norm<N>(x, weight, eps, y);
  }
  template <NumericsPolicy N>
  void head_rms_norm(std::span<float> x, std::size_t d, float eps) const {
    const Op op(*this, "head_rms_norm", {x.data()});
    ref_.head_rms_norm<N>(x, d, eps);
  }
  template <NumericsPolicy N>
  void rope(const Rope& table, float* x, std::size_t n_vec, std::size_t vec_len, std::int64_t pos,
            RopeDirection dir) const {
    const Op op(*this, "rope", {x});
    ref_.rope<N>(table, x, n_vec, vec_len, pos, dir);
  }
  template <NumericsPolicy N>
  void swiglu(View2<float> g, ConstView2<float> v, std::span<const float> row_weights,
              float limit) const {
    const Op op(*this, "swiglu", {g.data, v.data});
    ref_.swiglu<N>(g, v, row_weights, limit);
  }
  template <NumericsPolicy N>
  void mul_rows(View2<float> y, std::span<const float> w) const {
    const Op op(*this, "mul_rows", {y.data});
    ref_.mul_rows<N>(y, w);
  }
  template <NumericsPolicy N>
  void sparse_attention(const SparseAttentionArgs& a) const {
    const Op op(*this, "sparse_attention", {a.q, a.kv, a.idx, a.out});
    ref_.sparse_attention<N>(a);
  }
  void softmax_pool(const float* const* kv, const float* const* score, std::size_t m, std::size_t d,
                    float* y) const {
    const Op op(*this, "softmax_pool", {y});
    ref_.softmax_pool(kv, score, m, d, y);
  }
  template <NumericsPolicy N>
  void index_scores(ConstView2<float> q, ConstView2<float> keys, ConstView2<float> head_weights,
                    std::span<const std::size_t> visible, View2<float> scores) const {
    const Op op(*this, "index_scores", {q.data, keys.data, head_weights.data, scores.data});
    ref_.index_scores<N>(q, keys, head_weights, visible, scores);
  }
  void top_k(std::span<const float> s, std::span<std::int32_t> picks) const {
    const Op op(*this, "top_k", {s.data(), picks.data()});
    ref_.top_k(s, picks);
  }

  // ---- the steps host backends run as host code ----
  void embed(const AnyLinear& table, std::span<const std::int32_t> tokens,
             std::span<float> out) const {
    const Op op(*this, "embed", {out.data()});
    const std::size_t d = table.in_features();
    for (std::size_t r = 0; r < tokens.size(); ++r)
      table.dequantize_row(static_cast<std::size_t>(tokens[r]), out.data() + r * d);
  }
  void expand_streams(std::span<const float> e, std::size_t dim, std::size_t streams,
                      std::span<float> x) const {
    const Op op(*this, "expand_streams", {e.data(), x.data()});
    dsv4::expand_streams(ref_, e, dim, streams, x);
  }
  void act_quant(float* x, std::size_t n) const {
    const Op op(*this, "act_quant", {x});
    ops::act_quant_inplace(x, n);
  }
  void place_entries(std::span<const std::int32_t> entries, std::size_t k_width, std::size_t base,
                     std::span<std::int32_t> idx, std::size_t width, std::size_t col) const {
    const Op op(*this, "place_entries", {idx.data()});
    attention_detail::place_entries(ref_, entries, k_width, base, idx, width, col);
  }
  template <NumericsPolicy N>
  void add_to_streams(std::span<const float> ep, std::size_t dim, std::size_t streams,
                      std::span<float> x) const {
    const Op op(*this, "add_to_streams", {ep.data(), x.data()});
    for (std::size_t r = 0; r < ep.size() / dim; ++r) {
      for (std::size_t s = 0; s < streams; ++s) {
        float* xr = x.data() + (r * streams + s) * dim;
        for (std::size_t c = 0; c < dim; ++c) xr[c] = N::round(ep[r * dim + c] + xr[c]);
      }
    }
  }
  template <NumericsPolicy N, class R>
  void residual_pre(const R& r, std::span<const float> x, std::span<float> u,
                    typename R::Mix& mix) const {
    const Op op(*this, "residual_pre", {x.data(), u.data()});
    residual_pre_on_host<N>(*this, r, x, u, mix);
  }
  template <NumericsPolicy N, class R>
  void residual_post(const R& r, std::span<const float> f, std::span<const float> res,
                     const typename R::Mix& mix, std::span<float> out) const {
    const Op op(*this, "residual_post", {f.data(), res.data(), out.data()});
    r.template post<N>(f, res, mix, out);
  }
  template <NumericsPolicy N, class H>
  void head_collapse(const H& head, std::span<const float> x, std::span<float> y) const {
    const Op op(*this, "head_collapse", {x.data(), y.data()});
    if constexpr (requires { head.template collapse<N>(*this, x, y); }) {
      head.template collapse<N>(*this, x, y);
    } else {
      head.template collapse<N>(x, y);
    }
  }
  template <NumericsPolicy N>
  CompressorEmitted compressor(const CompressorWeights& w, const Rope& rope, ConstView2<float> x,
                               std::int64_t start_pos, CompressorState& st,
                               View2<float> entries) const {
    const Op op(*this, "compressor", {x.data, entries.data});
    return compressor_forward_on_host<N>(*this, w, rope, x, start_pos, st, entries);
  }
  template <NumericsPolicy N, LinearOp Lin>
  IndexerSelection indexer(const IndexerWeights<Lin>& w, const Rope& rope, ConstView2<float> x,
                           ConstView2<float> qr, std::int64_t start_pos, IndexerState& st) const {
    const Op op(*this, "indexer", {x.data, qr.data});
    return indexer_forward_on_host<N>(*this, w, rope, x, qr, start_pos, st);
  }
  template <NumericsPolicy N, class M>
  void moe(const M& layer, std::span<const float> x, std::span<const std::int32_t> tokens,
           std::span<float> out, Routing* routing) const {
    const Op op(*this, "moe", {x.data(), out.data()});
    layer.template forward_on_host<N>(*this, x, tokens, out, routing);
  }

 private:
  /// One op: the arena open while it runs; when the model calls it (not another op), every
  /// activation it names must be device memory.
  class Op {
   public:
    Op(const DeviceShapedBackend& b, const char* what, std::initializer_list<const void*> args)
        : scope_(*b.arena_) {
      if (b.arena_->depth() != 1) return;
      ++*b.calls_;
      for (const void* p : args) {
        if (p != nullptr && !b.arena_->contains(p)) {
          throw std::logic_error(std::string("device-shaped backend: op ") + what +
                                 " was given host memory as an activation");
        }
      }
    }

   private:
    DeviceArena::Scope scope_;
  };

  ReferenceBackend ref_;
  std::shared_ptr<DeviceArena> arena_;
  std::shared_ptr<std::size_t> calls_ = std::make_shared<std::size_t>(0);
};

static_assert(Backend<DeviceShapedBackend>);

}  // namespace dsv4::test
