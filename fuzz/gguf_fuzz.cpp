// Fuzzes the GGUF reader (io/gguf.hpp) through its in-memory constructor: any bytes either load
// or are rejected with a dsv4::Error naming the file. A file that loads must keep every promise
// of its accessors: every key/value reads back as its type says, every tensor's data lies inside
// the data section without overlap and its first and last blocks dequantise (for the formats
// dsv4 implements), and the header re-encoded by the writer's encoder parses to the same
// key/values and tensors.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/error.hpp"
#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/gguf_model.hpp"
#include "fuzz_util.hpp"

namespace {

using dsv4::io::GgufFile;
using dsv4::io::GgufTensorInfo;
using dsv4::io::GgufType;
using dsv4::io::GgufValue;

constexpr std::string_view kLabel = "fuzz.gguf";

void require(bool ok) {
  if (!ok) std::abort();
}

template <class T>
void check_scalar_type(const GgufValue& v) {
  if (v.is_array()) {
    const std::vector<T> a = v.get_array<T>();
    require(a.size() == v.size() && v.raw().size() == a.size() * sizeof(T));
    for (const T x : a) dsv4::fuzz::keep(x);
  } else {
    require(v.size() == 1 && v.raw().size() == sizeof(T));
    dsv4::fuzz::keep(v.get<T>());
  }
}

void check_value(const GgufValue& v) {
  dsv4::fuzz::keep(v.type_string().size());
  switch (v.type()) {
    case GgufType::uint8:
      return check_scalar_type<std::uint8_t>(v);
    case GgufType::int8:
      return check_scalar_type<std::int8_t>(v);
    case GgufType::uint16:
      return check_scalar_type<std::uint16_t>(v);
    case GgufType::int16:
      return check_scalar_type<std::int16_t>(v);
    case GgufType::uint32:
      return check_scalar_type<std::uint32_t>(v);
    case GgufType::int32:
      return check_scalar_type<std::int32_t>(v);
    case GgufType::float32:
      return check_scalar_type<float>(v);
    case GgufType::boolean:
      return check_scalar_type<bool>(v);
    case GgufType::uint64:
      return check_scalar_type<std::uint64_t>(v);
    case GgufType::int64:
      return check_scalar_type<std::int64_t>(v);
    case GgufType::float64:
      return check_scalar_type<double>(v);
    case GgufType::string:
      if (v.is_array()) {
        require(v.strings().size() == v.size());
        for (const std::string& s : v.strings()) dsv4::fuzz::keep(s.size());
      } else {
        dsv4::fuzz::keep(v.str().size());
      }
      return;
    case GgufType::array:
      break;
  }
  std::abort();  // the reader returned a value of no element type
}

// Dequantises the first and the last block of a tensor whose type dsv4 implements.
template <class F>
bool dequantize_ends(const GgufTensorInfo& t, std::span<const std::byte> data) {
  if (t.type != F::id) return false;
  using Block = typename F::block_type;
  const auto tr = dsv4::gguf::type_traits(t.type);
  require(tr.has_value() && tr->block_bytes == sizeof(Block) && tr->block_elems == F::block_elems);
  require(data.size() % sizeof(Block) == 0);
  if (data.empty()) return true;
  float out[F::block_elems];
  for (const std::size_t at : {std::size_t{0}, data.size() - sizeof(Block)}) {
    Block b;
    std::memcpy(&b, data.data() + at, sizeof(Block));
    F::dequantize(b, out);
    float s = 0;
    for (const float x : out) s += x;
    dsv4::fuzz::keep(s);
  }
  return true;
}
template <class... Fs>
void dequantize_ends_any(const GgufTensorInfo& t, std::span<const std::byte> data,
                         dsv4::type_list<Fs...>*) {
  (void)(dequantize_ends<Fs>(t, data) || ...);
}

void check_tensor(const GgufFile& f, const GgufTensorInfo& t) {
  require(!t.name.empty() && f.find_tensor(t.name) == &t && &f.tensor(t.name) == &t);
  require(!t.ne.empty() && t.ne.size() <= static_cast<std::size_t>(dsv4::io::kGgufMaxDims));
  for (const std::int64_t d : t.ne) require(d >= 0);
  require(t.n_elements() >= 0 && t.n_rows() >= 0);
  require(t.offset % f.alignment() == 0);
  const auto tr = dsv4::gguf::type_traits(t.type);
  require(tr.has_value() && t.ne[0] % static_cast<std::int64_t>(tr->block_elems) == 0);
  require(t.n_bytes ==
          static_cast<std::uint64_t>(t.n_elements()) / tr->block_elems * tr->block_bytes);
  const std::span<const std::byte> data = f.tensor_data(t);
  require(data.size() == t.n_bytes);
  if (!data.empty()) {
    require(data.data() >= f.bytes().data() + f.data_offset() &&
            data.data() + data.size() <= f.bytes().data() + f.bytes().size());
  }
  dsv4::fuzz::keep(dsv4::fuzz::touch(data));
  dequantize_ends_any(t, data, static_cast<dsv4::GgufFormats*>(nullptr));
  f.release_pages(t);
}

// The deepseek4 reading of the file (io/gguf_model.hpp): its tokenizer keys, its ModelConfig and,
// when every tensor is there, the model's tensors under reference names, each dequantised.
void check_deepseek4(const std::shared_ptr<const GgufFile>& file) {
  try {
    if (const auto tok = dsv4::io::gguf_tokenizer_of(file->metadata(), kLabel)) {
      dsv4::fuzz::keep(tok->tokens.size() + tok->merges.size() + tok->token_types.size());
    }
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
  }
  try {
    const dsv4::ModelConfig c = dsv4::io::config_from_gguf(*file);
    require(c.n_blocks() > 0 && c.compress_ratios.size() == static_cast<std::size_t>(c.n_blocks()));
    dsv4::fuzz::keep(c.q_out_features() + c.wo_a_in_features() + c.wo_b_in_features() +
                     c.hc_mix_width() + c.hc_flat_width());
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return;
  }
  std::optional<dsv4::io::GgufModel> model;
  try {
    model.emplace(file);
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return;
  }
  for (const std::string& name : model->names()) {
    require(model->has(name));
    const auto& info = model->info(name);
    dsv4::fuzz::keep(dsv4::fuzz::touch(model->stored_bytes(name)));
    if (model->stored_type(name) != dsv4::gguf::ggml_id::i32) {  // I32 has no float values
      require(model->to_float(name).size() == info.elements);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::shared_ptr<const GgufFile> file;
  try {
    file = std::make_shared<const GgufFile>(dsv4::fuzz::to_bytes(data, size), std::string(kLabel));
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return 0;
  }
  const GgufFile& f = *file;
  require(f.label() == kLabel && (f.version() == 2 || f.version() == 3));
  require(f.alignment() != 0 && (f.alignment() & (f.alignment() - 1)) == 0);
  require(f.data_offset() % f.alignment() == 0 && f.bytes().size() == size);

  for (const auto& [key, value] : f.metadata()) {
    require(!key.empty() && f.metadata().find(key) == &value);
    check_value(value);
    if (value.type() != GgufType::string && value.type() != GgufType::boolean &&
        value.type() != GgufType::float32 && value.type() != GgufType::float64) {
      for (std::uint64_t i = 0; i < value.size(); ++i) (void)value.element_as_int(i);
      (void)value.as_int();
      try {
        (void)f.metadata().get_int(key);
      } catch (const dsv4::FormatError& e) {
        // an integer type: only an empty array or a UINT64 above INT64_MAX has no int64 value;
        // the message names the key (up to a NUL in it: what() is a C string)
        const std::string_view msg = e.what();
        require(!value.as_int().has_value() &&
                msg.find(key.substr(0, key.find('\0'))) != std::string_view::npos);
      }
    }
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const GgufTensorInfo& t : f.tensors()) {
    check_tensor(f, t);
    if (t.n_bytes > 0) ranges.emplace_back(t.offset, t.offset + t.n_bytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) require(ranges[i - 1].second <= ranges[i].first);

  check_deepseek4(file);

  // The writer's header encoding of what was read, followed by the same data section, reads
  // back to the same key/values and tensors (only the version becomes 3). Only when the input
  // holds its header padding: a file without tensor data may end before its data section, and
  // the writer pads to general.alignment (up to 2 GiB), which such a file does not pay for.
  if (f.data_offset() > size) return 0;
  std::vector<std::byte> copy = dsv4::io::encode_gguf_header(f.metadata(), f.tensors());
  require(copy.size() == f.data_offset());
  const auto data_section = f.bytes().subspan(f.data_offset());
  copy.insert(copy.end(), data_section.begin(), data_section.end());
  const GgufFile again(std::move(copy), "fuzz.gguf (re-encoded)");
  require(again.version() == 3 && again.metadata() == f.metadata() &&
          again.tensors() == f.tensors() && again.data_offset() == f.data_offset());
  return 0;
}
