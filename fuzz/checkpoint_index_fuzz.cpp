// Fuzzes model.safetensors.index.json through Checkpoint::open (io/checkpoint.hpp), the only
// way the index is read: each input is written as the index of a scratch checkpoint directory
// that holds config.json (tests/data/configs/tiny.json) and the two shards below, and the
// directory is opened. Any index either opens or is rejected with a dsv4::Error naming the
// directory; a checkpoint that opens must serve every tensor it lists (ASan checks the views).
// The seeds (fuzz/corpus/checkpoint_index/, tools/gen_fuzz_seeds.py) list these shards.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/error.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/checkpoint.hpp"
#include "dsv4/io/safetensors_writer.hpp"
#include "fuzz_util.hpp"

namespace {

namespace fs = std::filesystem;

void require(bool ok) {
  if (!ok) std::abort();
}

/// The scratch directory, made once per process and removed at exit.
struct Scratch {
  fs::path dir;

  Scratch() {
    dir = fs::temp_directory_path() / ("dsv4_fuzz_checkpoint_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(fs::path(DSV4_SOURCE_DIR) / "tests/data/configs/tiny.json", dir / "config.json");
    write_shard("model-00001-of-00002.safetensors",
                {{"embed.weight", dsv4::DType::F32, 16}, {"norm.weight", dsv4::DType::F32, 4}});
    write_shard("model-00002-of-00002.safetensors",
                {{"head.weight", dsv4::DType::BF16, 32},
                 {"layers.0.attn_norm.weight", dsv4::DType::F32, 4}});
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

 private:
  struct Tensor {
    const char* name;
    dsv4::DType dtype;
    std::uint64_t n;
  };
  void write_shard(const char* file, std::vector<Tensor> tensors) const {
    dsv4::io::SafetensorsWriter w;
    std::uint8_t value = 1;
    for (const Tensor& t : tensors) {
      std::vector<std::byte> data(t.n * dsv4::dtype_bits(t.dtype) / 8);
      for (auto& b : data) b = std::byte{value++};
      w.add(t.name, t.dtype, {t.n}, data);
    }
    w.write(dir / file);
  }
};

const Scratch& scratch() {
  static const Scratch s;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path& dir = scratch().dir;
  {
    std::ofstream out(dir / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    require(out.good());
  }
  std::optional<dsv4::io::Checkpoint> opened;
  try {
    opened.emplace(dsv4::io::Checkpoint::open(dir));
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, dir.string());
    return 0;
  }
  const dsv4::io::Checkpoint& c = *opened;
  require(c.index().has_value() && !c.shards().empty() && c.config().n_layers == 5);
  if (c.index()->total_size) require(*c.index()->total_size == c.total_bytes());
  for (const auto& [k, v] : c.index()->metadata) dsv4::fuzz::keep(k.size() + v.size());
  std::uint64_t total = 0;
  for (const auto& t : c.tensors()) {
    require(t.shard < c.shards().size() && t.info != nullptr && t.info->name == t.name);
    total += t.info->bytes.size();
    dsv4::fuzz::keep(dsv4::fuzz::touch(t.info->bytes));
  }
  require(total == c.total_bytes());
  const std::vector<std::string> names = c.names();
  require(names.size() == c.size());
  for (const std::string& name : names) {
    require(c.has(name) && c.stored(name).reference == name && c.keep_alive(name) != nullptr);
    const auto& info = c.info(name);
    require(c.bytes(name).data() == info.bytes.data());
    require(c.to_float(name).size() == info.elements);
  }
  return 0;
}
