// Opening models as users download them: a checkpoint directory in the official release layout
// (config.json, model.safetensors.index.json, safetensors shards) and a llama.cpp deepseek4 GGUF
// file. Both read as tensor sources under the reference's tensor names; the program lists them
// and runs the first transformer block of each on a few positions.
//
//   example_load_checkpoint CHECKPOINT_DIR MODEL.gguf
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdint>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/model.hpp>
#include <exception>
#include <random>
#include <string>
#include <vector>

namespace {

using Model =
    dsv4::Model<dsv4::ReferenceBackend,
                dsv4::WithLinear<dsv4::AnyLinear, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;

/// Lists a few tensors of `src`, then runs its block 0 on 4 positions of random input.
template <class Src>
void show(const Src& src, const dsv4::ModelConfig& cfg) {
  const auto names = src.names();
  fmt::print("{}: {} tensors, {} layers, dim {}, vocab {}\n", src.label(), names.size(),
             cfg.n_layers, cfg.dim, cfg.vocab_size);
  for (std::size_t i = 0; i < names.size() && i < 5; ++i) {
    fmt::print("  {} {}\n", names[i], src.info(names[i]).shape);
  }

  const auto block = Model::block_type::load(src, "layers.0", cfg, 0);
  auto state = block.make_state(cfg);
  const std::vector<std::int32_t> tokens = {0, 5, 7, 9};  // hash routing reads the token ids
  const auto width = Model::streams * static_cast<std::size_t>(cfg.dim);
  std::vector<float> x(tokens.size() * width);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  block.template forward<dsv4::PlainFp32Numerics>(dsv4::ReferenceBackend{}, std::span<float>(x),
                                                  tokens,
                                                  /*start_pos=*/0, state);
  double norm = 0.0;
  for (const float v : x) norm += static_cast<double>(v) * v;
  fmt::print("  block 0 on {} positions: output [{}, {}, {}], rms {:.4f}\n", tokens.size(),
             tokens.size(), Model::streams, cfg.dim,
             std::sqrt(norm / static_cast<double>(x.size())));
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 3) {
    fmt::print(stderr, "usage: {} CHECKPOINT_DIR MODEL.gguf\n", argv[0]);
    return 2;
  }
  const auto ckpt = dsv4::io::Checkpoint::open(argv[1]);  // release layout or reference names
  show(ckpt, ckpt.config());
  const dsv4::io::GgufModel gguf(argv[2]);  // deepseek4 GGUF, read under reference names
  show(gguf, gguf.config());
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
