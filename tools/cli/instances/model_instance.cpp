// The command line's model types on one backend, every numerics policy (model_loader.hpp);
// compiled once per backend with DSV4_INSTANCE_BACKEND (reference or cpu) defined by CMake. The
// numerics share one translation unit because most of the work (loading, the weight formats'
// kernels) does not depend on them.
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/layers/linear.hpp>
#include <dsv4/model/model.hpp>
#include <string>
#include <utility>

#include "../model_choice.hpp"
#include "../model_loader.hpp"

#define DSV4_CONCAT_(a, b, c) a##_##b##_##c
#define DSV4_CONCAT(a, b, c) DSV4_CONCAT_(a, b, c)

// Each backend name maps to its type and its constructor from a thread count; the cpu one exists
// only in builds with the CPU backend (model_loader.cpp refuses it otherwise).
#define DSV4_BACKEND_reference 1
#define DSV4_BACKEND_cpu 2
#define DSV4_ID_(kind, name) DSV4_##kind##_##name
#define DSV4_ID(kind, name) DSV4_ID_(kind, name)

#if DSV4_ID(BACKEND, DSV4_INSTANCE_BACKEND) == 2
#include <dsv4/cpu/backend.hpp>
#endif

namespace dsv4::cli::instances {
namespace {

#if DSV4_ID(BACKEND, DSV4_INSTANCE_BACKEND) == 2
using B = cpu::Backend;
B make_backend(int threads) { return B(threads); }
constexpr const char* kLabel = "cpu";
#else
using B = ReferenceBackend;
B make_backend(int) { return B{}; }
constexpr const char* kLabel = "reference";
#endif

template <class N>
AnyModel load_as(const std::string& path, io::GgufLinearSemantics semantics, int threads) {
  using M = Model<B, N, HyperConnection<4>, AnyLinear>;
  AnyModel out;
  visit_model_source(path, semantics, [&](const auto& src, const ModelConfig& cfg) {
    out = AnyModel(M::load(src, cfg, make_backend(threads)), kLabel);
  });
  return out;
}

}  // namespace

AnyModel DSV4_CONCAT(load, DSV4_INSTANCE_BACKEND,
                     model)(const std::string& path, ModelNumerics numerics,
                            io::GgufLinearSemantics semantics, int threads) {
  switch (numerics) {
    case ModelNumerics::reference:
      return load_as<ReferenceNumerics>(path, semantics, threads);
    case ModelNumerics::reference_torch1:
      return load_as<ReferenceTorch1Numerics>(path, semantics, threads);
    case ModelNumerics::reference_fp32:
      return load_as<ReferenceFp32Numerics>(path, semantics, threads);
    case ModelNumerics::fp32:
      break;
  }
  return load_as<PlainFp32Numerics>(path, semantics, threads);
}

}  // namespace dsv4::cli::instances
