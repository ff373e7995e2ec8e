// The command line's model types on one backend, every numerics policy (model_loader.hpp);
// compiled once per backend, with DSV4_INSTANCE_CPU 1 (the CPU backend) or 0 (the reference). The
// numerics share one translation unit because most of the work (loading, the weight formats'
// kernels) does not depend on them.
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/model/model.hpp>
#include <string>
#include <utility>

#include "../model_choice.hpp"
#include "../model_loader.hpp"

#if DSV4_INSTANCE_CPU
#include <dsv4/cpu/backend.hpp>
#endif

namespace dsv4::cli::instances {
namespace {

#if DSV4_INSTANCE_CPU
using B = cpu::Backend;
B make_backend(int threads) { return B(threads); }
constexpr const char* kLabel = "cpu";
#else
using B = ReferenceBackend;
B make_backend(int) { return B{}; }
constexpr const char* kLabel = "reference";
#endif

template <class N>
AnyModel load_as(const std::string& path, io::GgufLinearSemantics semantics, bool repack,
                 int threads, const io::LoadMeter::Callback& on_read) {
  using M = Model<B, WithLinear<AnyLinear, WithNumerics<N>>>;
  AnyModel out;
  visit_model_source(
      path, semantics,
      [&](const auto& src, const ModelConfig& cfg) {
        out = AnyModel(M::load(src, cfg, make_backend(threads)), kLabel);
      },
      on_read, repack);
  return out;
}

}  // namespace

#if DSV4_INSTANCE_CPU
AnyModel load_cpu_model(const std::string& path, ModelNumerics numerics,
                        io::GgufLinearSemantics semantics, bool repack, int threads,
                        const io::LoadMeter::Callback& on_read) {
#else
AnyModel load_reference_model(const std::string& path, ModelNumerics numerics,
                              io::GgufLinearSemantics semantics, bool repack, int threads,
                              const io::LoadMeter::Callback& on_read) {
#endif
  switch (numerics) {
    case ModelNumerics::reference:
      return load_as<ReferenceNumerics>(path, semantics, repack, threads, on_read);
    case ModelNumerics::reference_torch1:
      return load_as<ReferenceTorch1Numerics>(path, semantics, repack, threads, on_read);
    case ModelNumerics::reference_fp32:
      return load_as<ReferenceFp32Numerics>(path, semantics, repack, threads, on_read);
    case ModelNumerics::fp32:
      break;
  }
  return load_as<PlainFp32Numerics>(path, semantics, repack, threads, on_read);
}

}  // namespace dsv4::cli::instances
