// `dsv4 inspect PATH [--json]`: what a downloaded model holds. PATH is a checkpoint directory
// (config.json + safetensors shards, with or without model.safetensors.index.json;
// io/checkpoint.hpp validates it on opening), a single .safetensors file, or a GGUF file (its
// key/values, and for deepseek4 files the config and the reference tensors of each GGUF tensor,
// io/gguf_model.hpp). Prints
// the configuration summary, the index and shards, whether the tensors are the release layout the
// config implies (io/checkpoint_layout.hpp), and every tensor: name (with the reference's name
// when the file spells it differently), dtype, shape, bytes and shard.
#include <fmt/core.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dsv4/core/check.hpp>
#include <dsv4/core/config.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/checkpoint_layout.hpp>
#include <dsv4/io/config_json.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/io/safetensors.hpp>
#include <dsv4/io/tensor_names.hpp>
#include <dsv4/model/plan.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"

namespace dsv4::cli {
namespace {

namespace fs = std::filesystem;

struct InspectOptions {
  std::string path;
  bool json = false;
};

std::string grouped(std::uint64_t v) {
  const std::string digits = fmt::format("{}", v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// ---- the configuration ----

nlohmann::ordered_json config_json(const ModelConfig& c) {
  const plan::ParamSheet p = plan::count_parameters(c);
  return {{"vocab_size", c.vocab_size},
          {"dim", c.dim},
          {"n_layers", c.n_layers},
          {"n_mtp_layers", c.n_mtp_layers},
          {"n_hash_layers", c.n_hash_layers},
          {"n_heads", c.n_heads},
          {"head_dim", c.head_dim},
          {"rope_head_dim", c.rope_head_dim},
          {"q_lora_rank", c.q_lora_rank},
          {"o_groups", c.o_groups},
          {"o_lora_rank", c.o_lora_rank},
          {"window_size", c.window_size},
          {"compress_ratios", c.compress_ratios},
          {"n_routed_experts", c.n_routed_experts},
          {"n_activated_experts", c.n_activated_experts},
          {"n_shared_experts", c.n_shared_experts},
          {"moe_inter_dim", c.moe_inter_dim},
          {"score_func", c.score_func},
          {"hc_mult", c.hc_mult},
          {"dtype", weight_dtype_name(c.dtype)},
          {"expert_dtype", weight_dtype_name(c.expert_dtype)},
          {"max_seq_len", c.max_seq_len},
          {"parameters", p.total_params()},
          {"parameters_with_mtp", p.total_with_mtp()},
          {"active_parameters", p.active_params()}};
}

void print_config(const ModelConfig& c) {
  const plan::ParamSheet p = plan::count_parameters(c);
  std::string layers;
  for (int l = 0; l < c.n_blocks(); ++l) {
    if (l == c.n_layers) layers += " | MTP:";
    const int r = c.compress_ratio(l);
    layers += r == 0 ? " SWA" : r == 4 ? " CSA" : fmt::format(" HCA-{}", r);
  }
  fmt::print("config: dim {}, {} layers + {} MTP, vocab {}, {} parameters ({} active)\n", c.dim,
             c.n_layers, c.n_mtp_layers, c.vocab_size,
             grouped(static_cast<std::uint64_t>(p.total_params())),
             grouped(static_cast<std::uint64_t>(p.active_params())));
  fmt::print("  attention: {} heads x {} (rope {}), q_lora {}, output {} groups x {}, window {}\n",
             c.n_heads, c.head_dim, c.rope_head_dim, c.q_lora_rank, c.o_groups, c.o_lora_rank,
             c.window_size);
  fmt::print("  blocks:{}\n", layers);
  fmt::print("  MoE: {} routed experts (top {}, {}) + {} shared, inter {}; {} hash-routed layers\n",
             c.n_routed_experts, c.n_activated_experts, c.score_func, c.n_shared_experts,
             c.moe_inter_dim, c.n_hash_layers);
  fmt::print("  hyper-connections: {} streams; weights {}, routed experts {}\n", c.hc_mult,
             weight_dtype_name(c.dtype), weight_dtype_name(c.expert_dtype));
}

// ---- the release layout the config implies ----

struct LayoutCheck {
  std::size_t expected = 0;
  std::vector<std::string> missing;
  std::vector<std::string> differing;  // "name: dtype [shape], expected dtype [shape]"
  std::vector<std::string> unexpected;
};

LayoutCheck check_layout(const io::Checkpoint& ckpt) {
  LayoutCheck out;
  std::map<std::string, const ReleaseTensor*> want;
  const std::vector<ReleaseTensor> release = release_tensors(ckpt.config());
  for (const ReleaseTensor& t : release) want[t.name] = &t;
  out.expected = release.size();
  for (const auto& [name, t] : want) {
    if (!ckpt.has(name)) {
      out.missing.push_back(name);
      continue;
    }
    const io::TensorInfo& ti = ckpt.info(name);
    const std::vector<std::uint64_t> shape(t->shape.begin(), t->shape.end());
    if (dtype_name(ti.dtype) != release_dtype_name(t->dtype) || ti.shape != shape) {
      out.differing.push_back(fmt::format("{}: {} {}, expected {} {}", name, dtype_name(ti.dtype),
                                          shape_text(ti.shape), release_dtype_name(t->dtype),
                                          shape_text(shape)));
    }
  }
  for (const std::string& n : ckpt.names()) {
    if (want.count(n) == 0) out.unexpected.push_back(n);
  }
  return out;
}

void print_list(const char* what, const std::vector<std::string>& v) {
  if (v.empty()) return;
  fmt::print("  {} {}:\n", v.size(), what);
  for (std::size_t i = 0; i < v.size() && i < 8; ++i) fmt::print("    {}\n", v[i]);
  if (v.size() > 8) fmt::print("    ... ({} more)\n", v.size() - 8);
}

// ---- a checkpoint directory ----

void inspect_checkpoint(const fs::path& dir, bool json) {
  const io::Checkpoint ckpt = io::Checkpoint::open(dir);
  const LayoutCheck layout = check_layout(ckpt);
  std::vector<std::size_t> per_shard(ckpt.shards().size(), 0);
  std::vector<std::uint64_t> shard_bytes(ckpt.shards().size(), 0);
  for (const auto& t : ckpt.tensors()) {
    ++per_shard[t.shard];
    shard_bytes[t.shard] += t.info->bytes.size();
  }
  if (json) {
    nlohmann::ordered_json j;
    j["path"] = dir.string();
    j["kind"] = "checkpoint";
    j["config"] = config_json(ckpt.config());
    if (ckpt.index()) {
      j["index"] = {{"file", ckpt.index()->path.filename().string()}};
      if (ckpt.index()->total_size) j["index"]["total_size"] = *ckpt.index()->total_size;
    }
    for (std::size_t s = 0; s < ckpt.shards().size(); ++s) {
      j["shards"].push_back({{"file", ckpt.shards()[s].filename().string()},
                             {"tensors", per_shard[s]},
                             {"bytes", shard_bytes[s]}});
    }
    j["total_bytes"] = ckpt.total_bytes();
    j["release_layout"] = {{"expected", layout.expected},
                           {"missing", layout.missing},
                           {"differing", layout.differing},
                           {"unexpected", layout.unexpected}};
    j["tensors"] = nlohmann::ordered_json::array();
    for (const auto& t : ckpt.tensors()) {
      nlohmann::ordered_json e = {{"name", t.name},
                                  {"dtype", std::string(dtype_name(t.info->dtype))},
                                  {"shape", t.info->shape},
                                  {"bytes", t.info->bytes.size()},
                                  {"shard", t.shard}};
      if (t.reference != t.name) e["reference"] = t.reference;  // "" when dropped
      j["tensors"].push_back(std::move(e));
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("checkpoint {}\n", dir.string());
  print_config(ckpt.config());
  if (ckpt.index()) {
    fmt::print("index: {}{}\n", ckpt.index()->path.filename().string(),
               ckpt.index()->total_size
                   ? fmt::format(", total_size {} bytes (equals the shards' tensors)",
                                 grouped(*ckpt.index()->total_size))
                   : std::string());
  } else {
    fmt::print("index: none (every *.safetensors file of the directory)\n");
  }
  fmt::print("shards: {}\n", ckpt.shards().size());
  for (std::size_t s = 0; s < ckpt.shards().size(); ++s) {
    fmt::print("  [{}] {}  {} tensors, {} bytes\n", s, ckpt.shards()[s].filename().string(),
               per_shard[s], grouped(shard_bytes[s]));
  }
  if (layout.missing.empty() && layout.differing.empty() && layout.unexpected.empty()) {
    fmt::print("release layout: all {} tensors the config implies, with their dtypes and shapes\n",
               layout.expected);
  } else {
    fmt::print("release layout: differs from the {} tensors the config implies\n", layout.expected);
    print_list("missing", layout.missing);
    print_list("with another dtype or shape", layout.differing);
    print_list("not in the release layout", layout.unexpected);
  }
  fmt::print("tensors: {}, {} bytes\n", ckpt.tensors().size(), grouped(ckpt.total_bytes()));
  std::size_t width = 4;
  for (const auto& t : ckpt.tensors()) width = std::max(width, t.name.size());
  fmt::print("  {:<{}}  {:<7}  {:<16}  {:>14}  shard\n", "name", width, "dtype", "shape", "bytes");
  for (const auto& t : ckpt.tensors()) {
    std::string note;
    if (t.reference.empty())
      note = "  (dropped: the MTP block uses the shared tensor)";
    else if (t.reference != t.name)
      note = "  -> " + t.reference;
    fmt::print("  {:<{}}  {:<7}  {:<16}  {:>14}  {}{}\n", t.name, width, dtype_name(t.info->dtype),
               shape_text(t.info->shape), grouped(t.info->bytes.size()), t.shard, note);
  }
}

// ---- one safetensors file ----

void inspect_safetensors(const fs::path& file, bool json) {
  const io::SafetensorsFile f(file);
  std::uint64_t total = 0;
  for (const std::string& n : f.names()) total += f.info(n).bytes.size();
  if (json) {
    nlohmann::ordered_json j;
    j["path"] = file.string();
    j["kind"] = "safetensors";
    j["metadata"] = f.metadata();
    j["total_bytes"] = total;
    j["tensors"] = nlohmann::ordered_json::array();
    for (const std::string& n : f.names()) {
      const io::TensorInfo& ti = f.info(n);
      j["tensors"].push_back({{"name", n},
                              {"dtype", std::string(dtype_name(ti.dtype))},
                              {"shape", ti.shape},
                              {"bytes", ti.bytes.size()}});
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("safetensors {}\n", file.string());
  for (const auto& [k, v] : f.metadata()) fmt::print("metadata: {} = {}\n", k, v);
  fmt::print("tensors: {}, {} bytes\n", f.size(), grouped(total));
  std::size_t width = 4;
  for (const std::string& n : f.names()) width = std::max(width, n.size());
  fmt::print("  {:<{}}  {:<7}  {:<16}  {:>14}\n", "name", width, "dtype", "shape", "bytes");
  for (const std::string& n : f.names()) {
    const io::TensorInfo& ti = f.info(n);
    fmt::print("  {:<{}}  {:<7}  {:<16}  {:>14}\n", n, width, dtype_name(ti.dtype),
               shape_text(ti.shape), grouped(ti.bytes.size()));
  }
}

// ---- GGUF ----

/// A key's value as text: scalars as they are, strings quoted, arrays as their first 8 elements.
std::string gguf_value_text(const io::GgufValue& v) {
  constexpr std::uint64_t kShown = 8;
  auto element = [&](std::uint64_t i) -> std::string {
    if (v.type() == io::GgufType::string) {
      return fmt::format("\"{}\"", v.is_array() ? v.strings()[i] : v.str());
    }
    if (const auto n = v.element_as_int(i); n.has_value()) return fmt::format("{}", *n);
    const auto raw = v.raw();
    const std::size_t size = io::gguf_type_size(v.type());
    switch (v.type()) {
      case io::GgufType::float32: {
        float f;
        std::memcpy(&f, raw.data() + i * size, size);
        return fmt::format("{}", f);
      }
      case io::GgufType::float64: {
        double d;
        std::memcpy(&d, raw.data() + i * size, size);
        return fmt::format("{}", d);
      }
      case io::GgufType::boolean:
        return raw[i] != std::byte{0} ? "true" : "false";
      default:
        return "?";
    }
  };
  if (!v.is_array()) return element(0);
  std::string out = "[";
  for (std::uint64_t i = 0; i < std::min(v.size(), kShown); ++i) {
    out += (i > 0 ? ", " : "") + element(i);
  }
  if (v.size() > kShown) out += fmt::format(", ... ({} in all)", v.size());
  return out + "]";
}

/// A key's value as typed JSON: numbers, booleans and strings as such, arrays as JSON arrays
/// (the first kJsonArrayMax elements; "count" gives the length).
nlohmann::ordered_json gguf_value_json(const io::GgufValue& v) {
  constexpr std::uint64_t kJsonArrayMax = 1024;
  auto element = [&](std::uint64_t i) -> nlohmann::ordered_json {
    if (v.type() == io::GgufType::string) return v.is_array() ? v.strings()[i] : v.str();
    const auto raw = v.raw();
    const std::size_t size = io::gguf_type_size(v.type());
    switch (v.type()) {
      case io::GgufType::float32: {
        float f;
        std::memcpy(&f, raw.data() + i * size, size);
        return f;
      }
      case io::GgufType::float64: {
        double d;
        std::memcpy(&d, raw.data() + i * size, size);
        return d;
      }
      case io::GgufType::boolean:
        return raw[i] != std::byte{0};
      case io::GgufType::uint64: {
        std::uint64_t u;
        std::memcpy(&u, raw.data() + i * size, size);
        return u;
      }
      default:
        if (const auto n = v.element_as_int(i); n.has_value()) return *n;
        return nullptr;
    }
  };
  if (!v.is_array()) return element(0);
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (std::uint64_t i = 0; i < std::min(v.size(), kJsonArrayMax); ++i) a.push_back(element(i));
  return a;
}

/// A GGUF file: header, key/values, the deepseek4 config and tensor layout (io/gguf_model.hpp)
/// when the architecture is deepseek4, and every tensor with the reference tensors it holds.
void inspect_gguf(const fs::path& file, bool json) {
  const auto f = std::make_shared<const io::GgufFile>(file);
  // the reference names of each GGUF tensor, when the file is a valid deepseek4 model
  std::optional<ModelConfig> cfg;
  std::string layout_error;
  std::map<std::string, std::string> refs;
  const io::GgufValue* arch = f->metadata().find("general.architecture");
  if (arch != nullptr && !arch->is_array() && arch->type() == io::GgufType::string &&
      arch->str() == io::kGgufArchitecture) {
    try {
      const io::GgufModel model(f);
      cfg = model.config();
      for (const auto& m : io::gguf_tensor_map(*cfg, true)) {
        refs[m.gguf] =
            m.reference.size() == 1 ? m.reference.front()
            : m.packing == io::GgufPacking::experts
                ? fmt::format("{} experts: {} ...", m.reference.size(), m.reference.front())
                : fmt::format("{} | {}", m.reference[0], m.reference[1]);
      }
    } catch (const Error& e) {
      layout_error = e.what();
    }
  }
  std::uint64_t total = 0;
  std::vector<std::size_t> per_shard(f->shard_count(), 0);
  for (const auto& t : f->tensors()) {
    total += t.n_bytes;
    ++per_shard[f->shard_of(t)];
  }
  if (json) {
    nlohmann::ordered_json j;
    j["file"] = file.string();
    j["format"] = "gguf";
    j["version"] = f->version();
    j["alignment"] = f->alignment();
    j["data_offset"] = f->data_offset();
    j["size"] = f->total_bytes();
    nlohmann::ordered_json files = nlohmann::ordered_json::array();
    for (std::size_t k = 0; k < f->shard_count(); ++k) {
      files.push_back({{"file", f->shard(k).label()},
                       {"bytes", f->shard(k).bytes().size()},
                       {"tensors", per_shard[k]}});
    }
    j["shards"] = files;
    nlohmann::ordered_json kv = nlohmann::ordered_json::array();
    for (const auto& [k, v] : f->metadata()) {
      nlohmann::ordered_json e = {{"key", k}, {"type", v.type_string()}};
      if (v.is_array()) e["count"] = v.size();
      e["value"] = gguf_value_json(v);
      kv.push_back(std::move(e));
    }
    j["metadata"] = kv;
    j["config"] = cfg ? config_json(*cfg) : nlohmann::ordered_json(nullptr);
    if (!layout_error.empty()) j["layout_error"] = layout_error;
    j["tensor_bytes"] = total;
    nlohmann::ordered_json ts = nlohmann::ordered_json::array();
    for (const auto& t : f->tensors()) {
      const auto r = refs.find(t.name);
      ts.push_back({{"name", t.name},
                    {"reference", r == refs.end() ? nlohmann::ordered_json(nullptr)
                                                  : nlohmann::ordered_json(r->second)},
                    {"type", gguf::type_name(t.type)},
                    {"ne", t.ne},
                    {"offset", t.offset},
                    {"bytes", t.n_bytes}});
    }
    j["tensors"] = ts;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("gguf {}: version {}, alignment {}, data at {}, {} bytes\n", file.string(),
             f->version(), f->alignment(), grouped(f->data_offset()), grouped(f->bytes().size()));
  if (f->shard_count() > 1) {
    fmt::print("split model: {} files, {} bytes\n", f->shard_count(), grouped(f->total_bytes()));
    for (std::size_t k = 0; k < f->shard_count(); ++k) {
      fmt::print("  {}: {} tensors, {} bytes\n", f->shard(k).label(), per_shard[k],
                 grouped(f->shard(k).bytes().size()));
    }
  }
  fmt::print("key/values: {}\n", f->metadata().size());
  for (const auto& [k, v] : f->metadata()) {
    fmt::print("  {} ({}) = {}\n", k, v.type_string(), gguf_value_text(v));
  }
  if (cfg) {
    print_config(*cfg);
    fmt::print("deepseek4 layout: all {} tensors as the metadata implies\n", f->tensors().size());
  } else if (!layout_error.empty()) {
    fmt::print("deepseek4 layout: {}\n", layout_error);
  }
  fmt::print("tensors: {}, {} bytes\n", f->tensors().size(), grouped(total));
  std::size_t width = 4;
  for (const auto& t : f->tensors()) width = std::max(width, t.name.size());
  fmt::print("  {:<{}}  {:<6}  {:<18}  {:>14}  {}\n", "name", width, "type", "ne", "bytes",
             refs.empty() ? "" : "reference");
  for (const auto& t : f->tensors()) {
    const auto r = refs.find(t.name);
    fmt::print("  {:<{}}  {:<6}  {:<18}  {:>14}  {}\n", t.name, width, gguf::type_name(t.type),
               io::gguf_shape_string(t.ne), grouped(t.n_bytes), r == refs.end() ? "" : r->second);
  }
}

bool starts_with_gguf_magic(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

void run_inspect(const InspectOptions& o) {
  const fs::path p(o.path);
  DSV4_CHECK(fs::exists(p), InputError, "inspect: {} does not exist", o.path);
  if (fs::is_directory(p)) return inspect_checkpoint(p, o.json);
  if (p.extension() == ".gguf" || starts_with_gguf_magic(p)) return inspect_gguf(p, o.json);
  if (p.extension() == ".safetensors") return inspect_safetensors(p, o.json);
  throw InputError(fmt::format(
      "inspect: {} is neither a checkpoint directory, a .safetensors file nor a GGUF file",
      o.path));
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "List what a model holds: a checkpoint directory (config.json + safetensors shards + "
      "index), a .safetensors file or a GGUF file");
  cmd->add_option("path", opts->path, "checkpoint directory or file")->required();
  cmd->add_flag("--json", opts->json, "print JSON");
  cmd->callback([opts] { run_inspect(*opts); });
}

}  // namespace dsv4::cli
