// The Hugging Face oracle data (tests/data/hf/, written by tools/golden/make_hf_golden.py):
// checks that each configuration's files agree with each other and with the model's conventions,
// so that a model test can rely on them. Per configuration:
//  * config.json (transformers' field names) describes the model of reference_config.json;
//  * every reference-named weight equals its HF-named twin (name_map.json, merged experts
//    included) bit for bit, and the map covers every HF tensor element exactly once;
//  * golden.safetensors has the documented keys and shapes; hash-layer expert ids are
//    tid2eid[token]; routing weights are positive and sum to route_scale; indexer picks are
//    visible compressed entries, min(index_topk, visible) of them; decode logits repeat the
//    prefill rows (the HF model's own prefill/decode consistency, about 4e-6).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dsv4/io/safetensors.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using dsv4::DType;
using dsv4::io::SafetensorsFile;
using nlohmann::json;

json read_json(const std::string& relative) {
  std::ifstream in(dsv4::test::data_path(relative));
  REQUIRE_MESSAGE(in.good(), "cannot open ", relative);
  return json::parse(in);
}

std::vector<std::int64_t> to_int(const SafetensorsFile& f, const std::string& name) {
  const auto& ti = f.info(name);
  std::vector<std::int64_t> out;
  if (ti.dtype == DType::I32) {
    for (auto v : f.span<std::int32_t>(name)) out.push_back(v);
  } else {
    REQUIRE(ti.dtype == DType::I64);
    for (auto v : f.span<std::int64_t>(name)) out.push_back(v);
  }
  return out;
}

std::size_t dim(const SafetensorsFile& f, const std::string& name, std::size_t i) {
  return static_cast<std::size_t>(f.info(name).shape.at(i));
}

std::string layer_type(int ratio) {
  if (ratio == 0) return "sliding_attention";
  if (ratio == 4) return "compressed_sparse_attention";
  return "heavily_compressed_attention";
}

void check_configs(const std::string& dir) {
  const json ref = read_json(dir + "/reference_config.json");
  const json hf = read_json(dir + "/config.json");
  CHECK(hf["model_type"] == "deepseek_v4");
  CHECK(hf["vocab_size"] == ref["vocab_size"]);
  CHECK(hf["hidden_size"] == ref["dim"]);
  CHECK(hf["moe_intermediate_size"] == ref["moe_inter_dim"]);
  CHECK(hf["num_hidden_layers"] == ref["n_layers"]);
  CHECK(hf["num_attention_heads"] == ref["n_heads"]);
  CHECK(hf["head_dim"] == ref["head_dim"]);
  CHECK(hf["qk_rope_head_dim"] == ref["rope_head_dim"]);
  CHECK(hf["q_lora_rank"] == ref["q_lora_rank"]);
  CHECK(hf["o_groups"] == ref["o_groups"]);
  CHECK(hf["o_lora_rank"] == ref["o_lora_rank"]);
  CHECK(hf["sliding_window"] == ref["window_size"]);
  CHECK(hf["n_routed_experts"] == ref["n_routed_experts"]);
  CHECK(hf["num_experts_per_tok"] == ref["n_activated_experts"]);
  CHECK(hf["routed_scaling_factor"] == ref["route_scale"]);
  CHECK(hf["swiglu_limit"] == ref["swiglu_limit"]);
  CHECK(hf["index_n_heads"] == ref["index_n_heads"]);
  CHECK(hf["index_head_dim"] == ref["index_head_dim"]);
  CHECK(hf["index_topk"] == ref["index_topk"]);
  CHECK(hf["rope_theta"] == ref["rope_theta"]);
  CHECK(hf["compress_rope_theta"] == ref["compress_rope_theta"]);
  const json& yarn = hf["rope_parameters"]["compress"];
  CHECK(yarn["rope_type"] == "yarn");
  CHECK(yarn["factor"] == ref["rope_factor"]);
  CHECK(yarn["original_max_position_embeddings"] == ref["original_seq_len"]);
  CHECK(yarn["attention_factor"] == 1.0);
  CHECK(hf["rope_parameters"]["main"]["rope_type"] == "default");
  const int n = ref["n_layers"];
  const int n_hash = ref["n_hash_layers"];
  for (int i = 0; i < n; ++i) {
    const int ratio = ref["compress_ratios"][i];
    CHECK(hf["layer_types"][i] == layer_type(ratio));
    if (ratio != 0 && ratio != 4)
      CHECK(hf["compress_rates"]["heavily_compressed_attention"] == ratio);
    CHECK(hf["mlp_layer_types"][i] == (i < n_hash ? "hash_moe" : "moe"));
  }
}

void check_weights(const std::string& dir) {
  const SafetensorsFile ref(dsv4::test::data_path(dir + "/weights.safetensors"));
  const SafetensorsFile hf(dsv4::test::data_path(dir + "/model.safetensors"));
  const json map = read_json(dir + "/name_map.json");
  CHECK(map.size() == ref.size());
  std::map<std::string, std::size_t> covered;  // HF name -> elements the map accounts for
  for (const auto& [ref_name, spec] : map.items()) {
    INFO(ref_name);
    REQUIRE(ref.has(ref_name));
    const std::string hf_name = spec["hf"];
    REQUIRE(hf.has(hf_name));
    const auto& ri = ref.info(ref_name);
    if (ri.dtype == DType::I32) {
      CHECK(to_int(ref, ref_name) == to_int(hf, hf_name));
      covered[hf_name] += ri.elements;
      continue;
    }
    const std::vector<float> want = ref.to_float(ref_name);
    const std::vector<float> all = hf.to_float(hf_name);
    std::size_t offset = 0;
    if (spec.contains("expert")) {
      // gate_up_proj [E, 2*inter, dim] (w1 rows then w3 rows), down_proj [E, dim, inter]
      const auto e = spec["expert"].get<std::size_t>();
      const std::size_t per = dim(hf, hf_name, 1) * dim(hf, hf_name, 2);
      offset = e * per;
      if (spec.contains("rows")) offset += spec["rows"][0].get<std::size_t>() * dim(hf, hf_name, 2);
    } else {
      CHECK(hf.info(hf_name).shape == ri.shape);
    }
    REQUIRE(offset + want.size() <= all.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < want.size(); ++i) bad += all[offset + i] != want[i] ? 1 : 0;
    CHECK(bad == 0);
    covered[hf_name] += want.size();
  }
  CHECK(covered.size() == hf.size());
  for (const auto& name : hf.names()) {
    INFO(name);
    CHECK(covered[name] == hf.info(name).elements);
  }
}

void check_golden(const std::string& dir, const std::vector<int>& decode_from) {
  const json ref = read_json(dir + "/reference_config.json");
  const SafetensorsFile g(dsv4::test::data_path(dir + "/golden.safetensors"));
  const SafetensorsFile w(dsv4::test::data_path(dir + "/weights.safetensors"));
  CHECK(g.metadata().at("mode") == "fp32");
  const std::vector<std::int64_t> tokens = to_int(g, "tokens");
  const std::size_t n = tokens.size();
  const std::size_t vocab = ref["vocab_size"];
  const std::size_t dim_ = ref["dim"];
  const std::size_t k = ref["n_activated_experts"];
  const std::size_t topk = ref["index_topk"];
  const std::size_t n_layers = ref["n_layers"];
  const std::size_t n_hash = ref["n_hash_layers"];
  const float route_scale = ref["route_scale"];
  for (auto t : tokens) CHECK((t >= 0 && t < static_cast<std::int64_t>(vocab)));

  REQUIRE(g.info("prefill.logits_all").shape == std::vector<std::uint64_t>{n, vocab});
  REQUIRE(g.info("prefill.hidden_out").shape == std::vector<std::uint64_t>{n, 4, dim_});
  const std::vector<float> logits = g.to_float("prefill.logits_all");
  for (float v : logits) REQUIRE(std::isfinite(v));

  for (std::size_t l = 0; l < n_layers; ++l) {
    const std::string p = "prefill.layers." + std::to_string(l) + ".";
    INFO(p);
    REQUIRE(g.info(p + "ffn.gate.indices").shape == std::vector<std::uint64_t>{n, k});
    const auto idx = to_int(g, p + "ffn.gate.indices");
    const auto wts = g.to_float(p + "ffn.gate.weights");
    for (std::size_t s = 0; s < n; ++s) {
      std::set<std::int64_t> row(idx.begin() + static_cast<std::ptrdiff_t>(s * k),
                                 idx.begin() + static_cast<std::ptrdiff_t>((s + 1) * k));
      CHECK(row.size() == k);
      float sum = 0.f;
      for (std::size_t j = 0; j < k; ++j) {
        CHECK(wts[s * k + j] > 0.f);
        sum += wts[s * k + j];
      }
      CHECK(sum == doctest::Approx(route_scale).epsilon(1e-5));
      if (l < n_hash) {
        const auto table = to_int(w, "layers." + std::to_string(l) + ".ffn.gate.tid2eid");
        const auto t = static_cast<std::size_t>(tokens[s]);
        std::set<std::int64_t> want(table.begin() + static_cast<std::ptrdiff_t>(t * k),
                                    table.begin() + static_cast<std::ptrdiff_t>((t + 1) * k));
        CHECK(row == want);
      }
    }
    const int ratio = ref["compress_ratios"][l];
    CHECK(g.has(p + "attn.indexer.topk_idxs") == (ratio == 4));
    if (ratio != 4) continue;
    const auto sel = to_int(g, p + "attn.indexer.topk_idxs");
    const std::size_t width = dim(g, p + "attn.indexer.topk_idxs", 1);
    CHECK(width == std::min(topk, n / 4));
    for (std::size_t s = 0; s < n; ++s) {
      const auto visible = static_cast<std::int64_t>((s + 1) / 4);
      std::size_t valid = 0;
      for (std::size_t j = 0; j < width; ++j) {
        const auto v = sel[s * width + j];
        if (v < 0) continue;
        CHECK(v < visible);
        ++valid;
      }
      CHECK(valid == std::min<std::size_t>(width, static_cast<std::size_t>(visible)));
    }
  }

  for (int p : decode_from) {
    const std::string key = "decode_from_" + std::to_string(p);
    INFO(key);
    const auto pu = static_cast<std::size_t>(p);
    REQUIRE(g.info(key + ".logits").shape == std::vector<std::uint64_t>{n - pu, vocab});
    const std::vector<float> dec = g.to_float(key + ".logits");
    const std::vector<float> first = g.to_float(key + ".prefill_logits");
    REQUIRE(first.size() == vocab);
    float m = 0.f;
    for (std::size_t i = 0; i < dec.size(); ++i)
      m = std::fmax(m, std::fabs(dec[i] - logits[pu * vocab + i]));
    for (std::size_t v = 0; v < vocab; ++v)
      m = std::fmax(m, std::fabs(first[v] - logits[(pu - 1) * vocab + v]));
    CHECK(m < 2e-5f);
  }
}

}  // namespace

TEST_CASE("hf oracle data: hf_a files agree with each other") {
  check_configs("hf/hf_a");
  check_weights("hf/hf_a");
  check_golden("hf/hf_a", {5, 37});
}

TEST_CASE("hf oracle data: hf_b files agree with each other") {
  check_configs("hf/hf_b");
  check_weights("hf/hf_b");
  check_golden("hf/hf_b", {13, 70});
}
