// The cost sheet against published facts: the V4-Pro release's total_size, the tensor counts of
// the official checkpoints, a real tiny checkpoint's tensor list, and the published parameter
// totals (1.6T / 49B for V4-Pro, 284B / 13B for V4-Flash).
#include <doctest/doctest.h>

#include <cmath>
#include <dsv4/core/presets.hpp>
#include <dsv4/io/checkpoint_layout.hpp>
#include <dsv4/model/plan.hpp>
#include <dsv4/model/v32.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "test_data.hpp"

namespace p = dsv4::plan;

TEST_CASE("the release byte model gives the published V4-Pro total_size exactly") {
  // model.safetensors.index.json of the V4-Pro release: "total_size": 864704792696
  CHECK(p::release_bytes(dsv4::presets::v4_pro()) == 864'704'792'696);
}

TEST_CASE("tensor counts of the official checkpoints (formats.md §10.1)") {
  CHECK(dsv4::release_tensors(dsv4::presets::v4_pro()).size() == 145116);
  CHECK(dsv4::release_tensors(dsv4::presets::v4_flash()).size() == 69187);
  CHECK(dsv4::release_tensors(dsv4::presets::tiny()).size() == 796);
}

TEST_CASE("the release layout of the tiny config equals a real release-layout checkpoint") {
  // headers of tiny_fp8/hf/*.safetensors (see tests/data/README.md)
  std::ifstream in(dsv4::test::data_path("checkpoints/tiny_fp8_hf_tensors.json"));
  REQUIRE(in);
  const auto want = nlohmann::json::parse(in);
  const auto got = dsv4::release_tensors(dsv4::presets::tiny());
  CHECK(got.size() == want.size());
  std::int64_t total = 0;
  for (const auto& t : got) {
    CAPTURE(t.name);
    REQUIRE(want.contains(t.name));
    const auto& w = want[t.name];
    CHECK(w["dtype"].get<std::string>() == dsv4::release_dtype_name(t.dtype));
    CHECK(w["shape"].get<std::vector<std::int64_t>>() == t.shape);
    CHECK(w["bytes"].get<std::int64_t>() == t.bytes);
    total += t.bytes;
  }
  CHECK(total == 6'421'978);  // the index's total_size
  CHECK(p::release_bytes(dsv4::presets::tiny()) == 6'421'978);
}

TEST_CASE("published parameter totals: V4-Pro 1.6T / 49B, V4-Flash 284B / 13B") {
  const auto pro = p::count_parameters(dsv4::presets::v4_pro());
  const auto flash = p::count_parameters(dsv4::presets::v4_flash());
  CHECK(std::round(static_cast<double>(pro.total_params()) / 1e11) == 16);    // 1.6T
  CHECK(std::round(static_cast<double>(pro.active_params()) / 1e9) == 49);    // 49B
  CHECK(std::round(static_cast<double>(flash.total_params()) / 1e9) == 284);  // 284B
  CHECK(std::round(static_cast<double>(flash.active_params()) / 1e9) == 13);  // 13B
  // the hand estimate of spec §1.5: one Pro expert 3·d·I ≈ 66.1M, 384 experts × 61 ≈ 1.55T
  CHECK(pro.of(dsv4::Component::routed_experts) == 61LL * 384 * 3 * 7168 * 3072);
  CHECK(pro.total_with_mtp() > pro.total_params());
}

TEST_CASE("parameters of the tiny model match its checkpoint (spec §1.6: ~7.5M, 3.9M routed)") {
  const auto s = p::count_parameters(dsv4::presets::tiny());
  std::int64_t from_list = 0;
  for (const auto& t : dsv4::release_tensors(dsv4::presets::tiny())) from_list += t.params;
  CHECK(s.total_with_mtp() == from_list);
  CHECK(s.of(dsv4::Component::routed_experts) == 5LL * 16 * 3 * 128 * 128);
}

TEST_CASE("KV cache: window, compressed entries, indexer keys and state add up (spec §4.3)") {
  const auto c = dsv4::presets::v4_pro();
  const std::int64_t L = 1 << 20;
  const auto k = p::kv_cache(c, L, p::KvStorage::reference);
  // 61 windows of 128 bf16 entries of 512
  CHECK(k.window == 61LL * 128 * 1024);
  // 30 CSA layers with L/4 entries, 31 HCA layers with L/128 entries, 1024 bytes each
  CHECK(k.compressed == (30LL * (L / 4) + 31LL * (L / 128)) * 1024);
  CHECK(k.indexer == 30LL * (L / 4) * 256);
  const auto k8 = p::kv_cache(c, L, p::KvStorage::fp8);
  CHECK(k8.compressed == (30LL * (L / 4) + 31LL * (L / 128)) * (448 + 7 + 128));
  CHECK(k8.indexer == 30LL * (L / 4) * (64 + 4));
  // nothing grows before the first block completes
  const auto k1 = p::kv_cache(c, 1, p::KvStorage::reference);
  CHECK(k1.compressed == 0);
  CHECK(k1.indexer == 0);
}

TEST_CASE("decode FLOPs: attention grows with context, CSA attends at most W + top-k entries") {
  const auto c = dsv4::presets::v4_pro();
  const auto short_ctx = p::decode_flops(c, 128);
  const auto long_ctx = p::decode_flops(c, 1 << 20);
  CHECK(long_ctx.attention() > short_ctx.attention());
  CHECK(long_ctx.projections == short_ctx.projections);
  // one CSA layer at 1M: 128 + 1024 entries; one HCA layer: 128 + 8192 entries
  const double per_entry = 4.0 * 128 * 512;
  const double want_core = per_entry * (30 * (128 + 1024) + 31 * (128 + 8192));
  CHECK(long_ctx.attention_core == doctest::Approx(want_core).epsilon(1e-12));
}

TEST_CASE("GGUF recipe bytes equal the tensor bytes of llama-quantize's files") {
  // The tiny model of the llama.cpp golden set (llamacpp/tiny_config.json there): no MTP block.
  dsv4::ModelConfig c = dsv4::presets::tiny();
  c.vocab_size = 512;
  c.dim = 256;
  c.n_layers = 5;
  c.n_mtp_layers = 0;
  c.compress_ratios = {0, 4, 128, 4, 128};
  c.n_hash_layers = 2;
  c.n_heads = 4;
  c.head_dim = 256;
  c.rope_head_dim = 64;
  c.q_lora_rank = 64;
  c.o_groups = 2;
  c.o_lora_rank = 32;
  c.n_routed_experts = 16;
  c.n_activated_experts = 4;
  c.moe_inter_dim = 32;
  c.index_n_heads = 16;
  c.index_head_dim = 128;
  c.index_topk = 16;
  const std::pair<const char*, const char*> files[] = {{"F16", "dsv4-tiny-f16.txt"},
                                                       {"Q8_0", "dsv4-tiny-q8_0.txt"},
                                                       {"Q4_K_M", "dsv4-tiny-q4_k_m.txt"},
                                                       {"Q2_K", "dsv4-tiny-q2_k.txt"},
                                                       {"MXFP4_MOE", "dsv4-tiny-mxfp4_moe.txt"}};
  for (const auto& [recipe, file] : files) {
    CAPTURE(recipe);
    std::ifstream in(dsv4::test::data_path(std::string("llamacpp/listings/") + file));
    REQUIRE(in);
    // tensor lines: name <TAB> [ne...] <TAB> type <TAB> offset <TAB> bytes
    std::int64_t want = 0;
    int n = 0;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#' || line.find("\t[") == std::string::npos) continue;
      const auto last = line.rfind('\t');
      const auto type_end = line.rfind('\t', last - 1);
      const auto type_begin = line.rfind('\t', type_end - 1);
      const std::string type = line.substr(type_begin + 1, type_end - type_begin - 1);
      if (type.find(' ') != std::string::npos || type.find('[') != std::string::npos) continue;
      want += std::stoll(line.substr(last + 1));
      ++n;
    }
    const p::GgufSheet s = p::gguf_bytes(c, *dsv4::gguf::file_type_from_name(recipe));
    CHECK(n == static_cast<int>(dsv4::gguf_tensors(c).size()));
    CHECK(s.bytes == want);
  }
}

TEST_CASE("DeepSeek-V3.2 comparison model: published size and cache entry sizes") {
  const dsv4::v32::Config v = dsv4::v32::v3_2();
  const dsv4::v32::Params prm = dsv4::v32::count_parameters(v);
  // Published: 671B parameters, 685B with the MTP module; 37B activated.
  CHECK(prm.total == 671'877'944'064);  // pinned: any change to the parameter model shows here
  CHECK(std::abs(static_cast<double>(prm.total) / 671e9 - 1.0) < 0.002);
  CHECK(std::abs(static_cast<double>(prm.total + prm.mtp) / 685e9 - 1.0) < 0.005);
  CHECK(std::abs(static_cast<double>(prm.active) / 37e9 - 1.0) < 0.02);
  // Per token and layer: bf16 latent + rope key (1152 B) or the 656-byte FP8 MLA entry, plus the
  // 132-byte FP8 indexer key.
  const auto ref = dsv4::v32::kv_cache(v, 1, p::KvStorage::reference);
  const auto fp8 = dsv4::v32::kv_cache(v, 1, p::KvStorage::fp8);
  CHECK(ref.total() == 61 * (1152 + 132));
  CHECK(fp8.total() == 61 * (656 + 132));
  // V4-Pro against V3.2 at 1M tokens: the ratios the cost sheet reports.
  const std::int64_t L = 1 << 20;
  const auto pro = dsv4::presets::v4_pro();
  const double kv_ratio = static_cast<double>(p::kv_cache(pro, L, p::KvStorage::fp8).total()) /
                          static_cast<double>(dsv4::v32::kv_cache(v, L, p::KvStorage::fp8).total());
  const double flop_ratio = p::decode_flops(pro, L).total() / dsv4::v32::decode_flops(v, L).total();
  CHECK(kv_ratio == doctest::Approx(0.105).epsilon(0.01));
  CHECK(flop_ratio == doctest::Approx(0.260).epsilon(0.01));
}
