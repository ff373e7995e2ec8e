// The cost sheet against published facts: the V4-Pro release's total_size, the tensor counts of
// the official checkpoints, a real tiny checkpoint's tensor list, and the published parameter
// totals (1.6T / 49B for V4-Pro, 284B / 13B for V4-Flash).
#include <doctest/doctest.h>

#include <cmath>
#include <dsv4/core/presets.hpp>
#include <dsv4/model/checkpoint_layout.hpp>
#include <dsv4/model/plan.hpp>
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
