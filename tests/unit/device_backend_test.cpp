// The device-shaped backend (tests/device_backend.hpp): the whole model, unchanged, on a backend
// whose memory the host cannot touch, bit for bit with the reference backend on every golden case
// (the official reference's tiny_a / tiny_b in fp32 and bf16, the FP8/FP4 release layouts
// tiny_fp8 and wide_fp8, llama.cpp's F32 GGUF and a Q4_K_M GGUF quantized from it): prefill of
// every position, prefill of a prefix then decode one token at a time, and the MTP block. That no
// step of the model touches activations or caches outside a backend op is what the backend's
// protected memory checks; the two last cases check that it does.
#include "device_backend.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <dsv4/model/model.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference_data.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
using d::test::DeviceShapedBackend;

d::io::Checkpoint reference_checkpoint(const std::string& name) {
  const auto dir = d::test::data_path("reference/" + name);
  return {dir / "config.json", {dir / "weights.safetensors"}};
}

/// What a model computes on `tokens`: the prefill's logits of every position, the logits of a
/// prefix of `prefix` tokens followed by one decode step per remaining token, and (when the model
/// has an MTP block) the MTP block's logits on the prefill's output.
struct Logits {
  std::vector<float> prefill;
  std::vector<float> decode;
  std::vector<float> mtp;
};

template <class M>
Logits run(const M& m, std::span<const std::int32_t> tokens, std::size_t prefix) {
  Logits out;
  auto st = m.new_state();
  const auto pre = m.prefill(tokens, st);
  out.prefill = pre.logits;
  if (m.n_mtp() > 0) {
    const std::size_t row = pre.hidden.size() / tokens.size();  // streams · dim
    out.mtp = m.mtp_forward(std::span<const float>(pre.hidden).first((tokens.size() - 1) * row),
                            tokens.subspan(1), 0, st)
                  .logits;
  }
  auto st2 = m.new_state();
  (void)m.prefill(tokens.first(prefix), st2, false);
  typename M::Output step;
  for (std::size_t i = prefix; i < tokens.size(); ++i) {
    m.decode_into(tokens[i], st2, step);
    out.decode.insert(out.decode.end(), step.logits.begin(), step.logits.end());
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

/// The device-shaped model's logits equal the reference backend's bit for bit; returns them.
template <class P, class Src, class... Cfg>
Logits check_same(const Src& src, std::span<const std::int32_t> tokens, std::size_t prefix,
                  const Cfg&... cfg) {
  using Ref = d::Model<d::ReferenceBackend, P>;
  using Dev = d::Model<DeviceShapedBackend, P>;
  const Ref ref = Ref::load(src, cfg...);
  const DeviceShapedBackend backend;
  const Dev dev = Dev::load(src, cfg..., backend);
  const Logits want = run(ref, tokens, prefix);
  const Logits got = run(dev, tokens, prefix);
  CHECK(!got.prefill.empty());
  CHECK(same_bits(got.prefill, want.prefill));
  CHECK(same_bits(got.decode, want.decode));
  CHECK(same_bits(got.mtp, want.mtp));
  MESSAGE(fmt::format("{} backend ops called by the model", dev.backend().op_calls()));
  return got;
}

template <class N>
using Numerics = d::WithNumerics<N>;
template <class N>
using AnyLinearNumerics = d::WithLinear<d::AnyLinear, d::WithNumerics<N>>;

}  // namespace

TEST_CASE("device-shaped backend: the official reference's golden cases, bit for bit") {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    const auto ckpt = reference_checkpoint(name);
    const auto& rc = d::test::reference_case(name);
    const auto* fp32 = rc.file("golden_fp32");
    const auto* bf16 = rc.file("golden_bf16");
    REQUIRE(fp32 != nullptr);
    REQUIRE(bf16 != nullptr);
    const auto tokens = d::test::read_i32(*fp32, "tokens");
    {
      const Logits got = check_same<Numerics<d::ReferenceFp32Numerics>>(ckpt, tokens, 20);
      MESSAGE(name, " fp32 prefill against the official reference: ",
              d::test::compare(got.prefill, fp32->to_float("prefill.logits_all")).str());
    }
    {
      const Logits got = check_same<Numerics<d::ReferenceTorch1Numerics>>(ckpt, tokens, 20);
      MESSAGE(name, " bf16 prefill against the official reference: ",
              d::test::compare(got.prefill, bf16->to_float("prefill.logits_all")).str());
    }
    if (name == "tiny_b") (void)check_same<Numerics<d::ReferenceNumerics>>(ckpt, tokens, 40);
  }
}

TEST_CASE("device-shaped backend: the FP8/FP4 release layouts, bit for bit") {
  for (const std::string name : {"tiny_fp8", "wide_fp8"}) {
    CAPTURE(name);
    const auto ckpt = d::io::Checkpoint::open(d::test::data_path("reference/" + name + "/hf"));
    const d::io::SafetensorsFile golden(
        d::test::data_path("reference/" + name + "/golden_logits.safetensors"));
    const auto tokens = d::test::read_i32(golden, "tokens");
    const Logits got = check_same<AnyLinearNumerics<d::ReferenceNumerics>>(ckpt, tokens, 40);
    MESSAGE(name, " prefill against the official reference: ",
            d::test::compare(got.prefill, golden.to_float("prefill.logits_all")).str());
  }
}

TEST_CASE("device-shaped backend: llama.cpp's F32 GGUF and a Q4_K_M GGUF, bit for bit") {
  namespace io = d::io;
  const auto f32 = std::make_shared<const io::GgufFile>(
      d::test::data_path("llamacpp/models/dsv4-tiny-f32.gguf"));
  // the first 64 of the 300 tokens (each row of llama.cpp's logits depends on the tokens up to it)
  const auto all_tokens = d::test::read_raw<std::int32_t>("llamacpp/tokens300.i32");
  const std::span<const std::int32_t> tokens = std::span(all_tokens).first(64);
  const auto llama = [&](const char* file) {
    auto v = d::test::read_raw<float>(std::string("llamacpp/logits/") + file);
    v.resize(tokens.size() * 512);
    return v;
  };
  {
    const io::GgufModel src(f32);
    const Logits got =
        check_same<AnyLinearNumerics<d::PlainFp32Numerics>>(src, tokens, 56, src.config());
    MESSAGE("F32 GGUF prefill against llama.cpp: ",
            d::test::compare(got.prefill, llama("tiny-f32.prefill.f32")).str());
  }
  io::QuantizeOptions opt;
  opt.file_type = *d::gguf::file_type_from_name("Q4_K_M");
  const auto plan = io::plan_quantization(*f32, opt);
  std::vector<std::byte> bytes;
  io::quantize_gguf(
      *f32, plan,
      [&](std::span<const std::byte> s) { bytes.insert(bytes.end(), s.begin(), s.end()); }, opt);
  const io::GgufModel src(std::make_shared<const io::GgufFile>(std::move(bytes), "Q4_K_M"));
  const Logits got =
      check_same<AnyLinearNumerics<d::PlainFp32Numerics>>(src, tokens, 56, src.config());
  MESSAGE("Q4_K_M GGUF prefill against llama.cpp: ",
          d::test::compare(got.prefill, llama("tiny-q4_k_m.prefill.f32")).str());
}

TEST_CASE("device-shaped backend: a sequence's caches live in device memory") {
  using Dev = d::Model<DeviceShapedBackend, Numerics<d::ReferenceFp32Numerics>>;
  const DeviceShapedBackend backend;
  const Dev m = Dev::load(reference_checkpoint("tiny_b"), backend);
  const auto st = m.new_state();
  for (const auto& layer : st.layers) CHECK(backend.arena().contains(layer.cache().data));
  for (const auto& layer : st.mtp) CHECK(backend.arena().contains(layer.cache().data));
}

TEST_CASE("device-shaped backend: an op given host memory as an activation throws") {
  const DeviceShapedBackend b;
  std::vector<float> host(8, 1.0f);
  const std::vector<float> weight(8, 1.0f);
  CHECK_THROWS_AS(b.rms_norm<d::PlainFp32Numerics>(host, weight, 1e-6f, host), std::logic_error);
  auto dev = b.alloc<float>(8);
  CHECK_NOTHROW(b.rms_norm<d::PlainFp32Numerics>(dev, weight, 1e-6f, dev));
}

TEST_CASE(
    "device-shaped backend: the host touching device memory outside an op stops the process") {
  const DeviceShapedBackend b;
  auto dev = b.alloc<float>(8);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(2);            // the child's message is not part of the test output
    dev.data()[3] = 1.0f;  // a host write: must not return
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGABRT);
}
