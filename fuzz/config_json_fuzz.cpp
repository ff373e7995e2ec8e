// Fuzzes config.json parsing and validation (io/config_json.hpp, `parse_config_text`): any text
// either becomes a validated ModelConfig or is rejected with a dsv4::Error naming the file. For
// a config that is accepted, every derived quantity of ModelConfig (core/config.hpp) must be
// computable without overflow (UBSan) and every block must have an attention variant. A config
// that a 16 MiB checkpoint could back (check_config_fits) then goes through the model-building
// path: the release tensor list, the GGUF tensor list and map, and the parameter and byte counts
// (what `inspect`, `plan` and `convert` build), which must agree with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/config_json.hpp"
#include "dsv4/io/gguf_model.hpp"
#include "dsv4/model/plan.hpp"
#include "fuzz_util.hpp"

namespace {

constexpr std::string_view kLabel = "fuzz/config.json";

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  dsv4::ModelConfig c;
  try {
    c = dsv4::parse_config_text(text, kLabel);
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return 0;
  }
  using dsv4::fuzz::keep;
  keep(c.nope_head_dim());
  keep(c.q_out_features());
  keep(c.wo_a_in_features());
  keep(c.wo_b_in_features());
  keep(c.hc_mix_width());
  keep(c.hc_flat_width());
  require(c.n_blocks() > 0 && c.compress_ratios.size() == static_cast<std::size_t>(c.n_blocks()));
  for (int layer = 0; layer < c.n_blocks(); ++layer) {
    keep(dsv4::attention_kind_name(c.attention(layer)));
    keep(c.is_hash_layer(layer));
  }
  dsv4::validate(c, kLabel);  // what was accepted stays valid

  try {
    dsv4::check_config_fits(c, std::uint64_t{16} << 20, kLabel);
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return 0;
  }
  const auto release = dsv4::release_tensors(c);
  const auto gguf = dsv4::gguf_tensors(c, true);
  const auto map = dsv4::io::gguf_tensor_map(c, true);
  require(map.size() == gguf.size());
  std::int64_t release_params = 0, gguf_params = 0;
  for (const auto& t : release) release_params += t.params;
  for (const auto& t : gguf) gguf_params += t.params;
  std::size_t references = 0;
  for (const auto& m : map) references += m.reference.size();
  require(references > 0 && release_params > 0 && gguf_params > 0);
  const dsv4::plan::ParamSheet params = dsv4::plan::count_parameters(c);
  require(params.total_with_mtp() == release_params);
  keep(dsv4::plan::release_bytes(c));
  keep(dsv4::plan::bf16_bytes(c));
  return 0;
}
