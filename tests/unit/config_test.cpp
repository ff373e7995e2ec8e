// config.json reading and validation: both naming schemes, the official configs, the presets,
// and a clear error for every malformed or inconsistent config.
#include <doctest/doctest.h>

#include <dsv4/core/presets.hpp>
#include <dsv4/io/config_json.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_data.hpp"

using dsv4::ConfigError;
using dsv4::ModelConfig;
using json = nlohmann::json;

namespace {

json read_json(const std::string& rel) {
  std::ifstream in(dsv4::test::data_path(rel));
  REQUIRE(in);
  return json::parse(in);
}

/// The message of the ConfigError `f` throws ("" if none).
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("official configs in both naming schemes equal the presets") {
  struct Case {
    const char* file;
    ModelConfig preset;
  };
  for (const Case& c : {Case{"configs/v4-pro.json", dsv4::presets::v4_pro()},
                        Case{"configs/v4-flash.json", dsv4::presets::v4_flash()}}) {
    CAPTURE(c.file);
    const json j = read_json(c.file);
    // The wrapped form picks "model_args".
    CHECK(dsv4::load_config(dsv4::test::data_path(c.file)) == c.preset);
    CHECK(dsv4::parse_config(j["model_args"]) == c.preset);
    // The Hugging Face form differs only in the runtime cache length: max_position_embeddings.
    ModelConfig hf = dsv4::parse_config(j["hf_config"]);
    CHECK(hf.max_seq_len == 1048576);
    hf.max_seq_len = c.preset.max_seq_len;
    CHECK(hf == c.preset);
  }
}

TEST_CASE("tiny config: spec file, preset, release-layout and reference-layout files agree") {
  const ModelConfig tiny = dsv4::presets::tiny();
  CHECK(dsv4::load_config(dsv4::test::data_path("configs/tiny.json")) == tiny);
  CHECK(dsv4::load_config(dsv4::test::data_path("configs/tiny_fp8_reference.json")) == tiny);
  const ModelConfig hf = dsv4::load_config(dsv4::test::data_path("configs/tiny_fp8_hf.json"));
  CHECK(hf.max_seq_len == 128);
  ModelConfig hf_b = hf;
  hf_b.max_batch_size = tiny.max_batch_size;  // not in the HF config
  CHECK(hf_b == tiny);
}

TEST_CASE("golden tiny configs: bf16 weights, experts follow dtype when expert_dtype is null") {
  for (const char* f : {"reference/tiny_a/config.json", "reference/tiny_b/config.json"}) {
    CAPTURE(f);
    const ModelConfig c = dsv4::load_config(dsv4::test::data_path(f));
    CHECK(c.dtype == dsv4::WeightDtype::bf16);
    CHECK(c.expert_dtype == dsv4::WeightDtype::bf16);
    CHECK(c.scale_fmt == "ue8m0");
    CHECK(c.n_layers + c.n_mtp_layers == static_cast<int>(c.compress_ratios.size()));
  }
  const ModelConfig a = dsv4::load_config(dsv4::test::data_path("reference/tiny_a/config.json"));
  CHECK(a.dim == 64);
  CHECK(a.compress_ratios == std::vector<int>{0, 4, 16, 4, 0});
  CHECK(a.swiglu_limit == 1.5);
  CHECK(a.index_topk == 16);
}

TEST_CASE("defaults, forced ue8m0 and presets by name") {
  json j = read_json("configs/tiny.json");
  j.erase("n_mtp_layers");
  j.erase("norm_eps");
  j.erase("hc_eps");
  j.erase("scale_dtype");
  j["scale_fmt"] = nullptr;
  const ModelConfig c = dsv4::parse_config(j);
  CHECK(c.n_mtp_layers == 1);
  CHECK(c.norm_eps == 1e-6);
  CHECK(c.scale_dtype == "fp8");
  CHECK(c.scale_fmt == "ue8m0");  // forced by scale_dtype fp8
  j["scale_dtype"] = "fp32";
  CHECK(dsv4::parse_config(j).scale_fmt.empty());

  CHECK(dsv4::presets::by_name("v4-pro") == dsv4::presets::v4_pro());
  CHECK(dsv4::presets::by_name("v4_flash") == dsv4::presets::v4_flash());
  CHECK(dsv4::presets::by_name("tiny") == dsv4::presets::tiny());
  CHECK(contains(config_error([] { (void)dsv4::presets::by_name("v3"); }), "unknown preset"));
}

TEST_CASE("invalid configs are rejected with a message naming the problem") {
  const json base = read_json("configs/tiny.json");
  struct Bad {
    const char* what;
    json patch;  // merged into the tiny config
    const char* message;
  };
  const Bad cases[] = {
      {"unknown ratio", {{"compress_ratios", {0, 16, 4, 1, 4, 0}}}, "unknown compress ratio 1"},
      {"negative ratio", {{"compress_ratios", {0, 16, 4, -4, 4, 0}}}, "unknown compress ratio -4"},
      {"ratio count", {{"compress_ratios", {0, 16, 4, 16, 4}}}, "'compress_ratios' has 5 entries"},
      {"o_groups", {{"o_groups", 3}}, "not divisible by 'o_groups'"},
      {"top-k", {{"n_activated_experts", 17}}, "larger than 'n_routed_experts'"},
      {"shared experts", {{"n_shared_experts", 2}}, "exactly one shared expert"},
      {"score func", {{"score_func", "relu"}}, "'score_func'"},
      {"nope dims", {{"head_dim", 160}}, "multiple of 64"},
      {"rope dims", {{"rope_head_dim", 192}}, "'rope_head_dim'"},
      {"indexer dim", {{"index_head_dim", 96}}, "'index_head_dim'"},
      {"fp8 blocks", {{"dim", 96}}, "multiple of 128"},
      {"hash layers", {{"n_hash_layers", 6}}, "'n_hash_layers'"},
      {"zero dim", {{"dim", 0}}, "'dim' must be positive"},
      {"wrong type", {{"dim", "128"}}, "'dim' must be an integer"},
      {"fraction", {{"n_heads", 4.5}}, "'n_heads' must be an integer"},
      {"unknown field", {{"n_layer", 5}}, "unknown field 'n_layer'"},
      {"dtype", {{"dtype", "int4"}}, "'dtype' = \"int4\""},
      {"scale fmt", {{"scale_fmt", "e4m3"}}, "'scale_fmt'"},
      {"huge", {{"n_layers", 1e12}}, "out of range"},
      // found by fuzzing: sizes whose products overflowed (UBSan), a uint64 read as -1; the
      // sizes are now stopped by dsv4's fixed ceilings (config_limits) before any product
      {"uint64",
       {{"dim", 18446744073709551615ull}},
       "'dim' = 18446744073709551615 is out of range"},
      {"block count",
       {{"n_layers", 2147483647}, {"n_mtp_layers", 1}},
       "'n_layers' = 2147483647 is larger than dsv4's limit 1024"},
      {"q features",
       {{"n_heads", 1ll << 40}, {"head_dim", 1ll << 40}},
       "'n_heads' = 1099511627776 is larger than"},
      {"wo_b",
       {{"o_groups", 1ll << 40}, {"o_lora_rank", 1ll << 40}},
       "'o_lora_rank' = 1099511627776 is larger than"},
      {"hc width",
       {{"hc_mult", 1 << 20}, {"dim", 1ll << 50}},
       "'dim' = 1125899906842624 is larger than"},
  };
  for (const Bad& b : cases) {
    CAPTURE(b.what);
    json j = base;
    j.merge_patch(b.patch);
    const std::string msg = config_error([&] { (void)dsv4::parse_config(j, "cfg.json"); });
    CHECK_MESSAGE(contains(msg, b.message), msg);
    CHECK(contains(msg, "cfg.json"));
  }
  // the widest accepted hc_mult (config_limits::hc_mult) and the first one refused
  json wide = base;
  wide["hc_mult"] = 64;
  CHECK(dsv4::parse_config(wide).hc_mix_width() == 66 * 64);
  wide["hc_mult"] = 65;
  CHECK(contains(config_error([&] { (void)dsv4::parse_config(wide); }),
                 "'hc_mult' = 65 is larger than dsv4's limit 64"));

  // Hugging Face form specifics.
  json hf = read_json("configs/tiny_fp8_hf.json");
  hf["num_key_value_heads"] = 2;
  CHECK(contains(config_error([&] { (void)dsv4::parse_config(hf); }), "one shared KV head"));
  hf = read_json("configs/tiny_fp8_hf.json");
  hf["model_type"] = "deepseek_v3";
  CHECK(contains(config_error([&] { (void)dsv4::parse_config(hf); }), "deepseek_v4"));
  hf = read_json("configs/tiny_fp8_hf.json");
  hf["quantization_config"]["weight_block_size"] = {64, 64};
  CHECK(contains(config_error([&] { (void)dsv4::parse_config(hf); }), "weight_block_size"));
  hf = read_json("configs/tiny_fp8_hf.json");
  hf.erase("quantization_config");
  hf["expert_dtype"] = nullptr;
  const ModelConfig plain = dsv4::parse_config(hf);
  CHECK(plain.dtype == dsv4::WeightDtype::bf16);
  CHECK(plain.expert_dtype == dsv4::WeightDtype::bf16);

  // Not JSON, not an object, not a file.
  CHECK(contains(config_error([] { (void)dsv4::parse_config_text("{\"dim\": ", "x.json"); }),
                 "not valid JSON"));
  CHECK(contains(config_error([] { (void)dsv4::parse_config_text("[1, 2]", "x.json"); }),
                 "JSON object"));
  // Found by fuzzing: a number beyond double range escaped as a nlohmann exception; deep nesting
  // overflowed the stack when the value was printed into a message.
  CHECK(contains(config_error([] { (void)dsv4::parse_config_text(R"({"dim": 1e999})", "x.json"); }),
                 "not valid JSON"));
  const std::string deep =
      R"({"dim": )" + std::string(200000, '[') + std::string(200000, ']') + "}";
  CHECK(contains(config_error([&] { (void)dsv4::parse_config_text(deep, "x.json"); }),
                 "nested deeper than 64 levels"));
  CHECK(contains(config_error([] { (void)dsv4::load_config("no/such/config.json"); }),
                 "cannot open"));
}

TEST_CASE("a Hugging Face config without a shape field is an error naming it") {
  // found on a new user's checkout: without hidden_size the config silently became V4-Pro's 7168
  for (const char* field : {"hidden_size", "vocab_size", "n_routed_experts", "num_hidden_layers"}) {
    CAPTURE(field);
    json j = read_json("configs/tiny_fp8_hf.json");
    j.erase(field);
    const std::string msg = config_error([&] { (void)dsv4::parse_config(j, "c.json"); });
    CHECK(contains(msg, "c.json: required field '" + std::string(field) + "' is missing"));
  }
}

TEST_CASE("sizes beyond dsv4's ceilings are errors naming the field, before any table is built") {
  const json base = read_json("configs/tiny_fp8_hf.json");
  struct Case {
    const char* key;
    double value;
    const char* field;
  };
  for (const Case& c :
       {Case{"hidden_size", 1e12, "'dim'"}, Case{"vocab_size", 1e12, "'vocab_size'"},
        Case{"n_routed_experts", 2147483648.0, "'n_routed_experts'"},
        Case{"moe_intermediate_size", 1e9, "'moe_inter_dim'"},
        Case{"num_attention_heads", 1e7, "'n_heads'"}}) {
    CAPTURE(c.key);
    json j = base;
    j[c.key] = static_cast<std::int64_t>(c.value);
    const std::string msg = config_error([&] { (void)dsv4::parse_config(j, "c.json"); });
    CHECK(contains(msg, c.field));
    CHECK(contains(msg, "larger than dsv4's limit"));
  }
  // within each ceiling, but too many experts in all (blocks x experts)
  json j = base;
  j["n_routed_experts"] = 4096;
  j["num_hidden_layers"] = 60;
  j["compress_ratios"] = std::vector<int>(61, 0);
  CHECK(contains(config_error([&] { (void)dsv4::parse_config(j, "c.json"); }),
                 "x n_routed_experts = 61 x 4096"));
}

TEST_CASE("check_config_fits: a config the tensor bytes cannot back is an error") {
  const ModelConfig tiny = dsv4::load_config(dsv4::test::data_path("configs/tiny_fp8_hf.json"));
  // tiny: 6 blocks x 16 experts x 3 x 128 x 128 + 2 x 512 x 128 = 4,849,664 values, at 1.5 bits
  // = 909,312 bytes at least
  CHECK(dsv4::min_weight_values(tiny) == 4849664.0);
  CHECK_NOTHROW(dsv4::check_config_fits(tiny, 909312, "m"));
  const std::string msg = config_error([&] { dsv4::check_config_fits(tiny, 909311, "m"); });
  CHECK(contains(msg, "m: 6 blocks with 'n_routed_experts' = 16"));
  CHECK(contains(msg, "the tensors present hold 909311 bytes"));
}
