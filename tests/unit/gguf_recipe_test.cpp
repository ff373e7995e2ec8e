// Tests of the GGUF quantization recipes (include/dsv4/formats/gguf_recipe.hpp) against the tensor
// listings of files made by llama.cpp's llama-quantize (commit 82bb485): every tensor's type, byte
// size and the order llama-quantize writes tensors in; plus --pure, MTP tensors and the fallback
// table. Data: tests/data/llamacpp/listings (see tests/data/README.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <dsv4/formats/gguf_recipe.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace g = dsv4::gguf;
using dsv4::FormatId;

namespace {

struct ListedTensor {
  std::string name;
  std::vector<std::int64_t> ne;
  std::string type;
  std::int64_t offset = 0;
  std::int64_t nbytes = 0;
};

struct Listing {
  std::map<std::string, std::string> kv;  // key -> "TYPE value"
  std::vector<ListedTensor> tensors;
  std::int64_t kv_int(const std::string& key) const {
    auto it = kv.find(key);
    if (it == kv.end()) throw std::runtime_error("listing has no key " + key);
    return std::stoll(it->second.substr(it->second.find(' ') + 1));
  }
  const ListedTensor& find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("listing has no tensor " + name);
  }
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

// Reads a listing: "key<TAB>TYPE value" lines, then after "## tensors" one line per tensor:
// name<TAB>[ne0, ne1, ...]<TAB>type<TAB>offset<TAB>nbytes.
Listing read_listing(const std::string& file) {
  const auto path = dsv4::test::data_path("llamacpp/listings/" + file);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  Listing l;
  bool tensors = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("## tensors", 0) == 0) {
      tensors = true;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const auto f = split(line, '\t');
    if (!tensors) {
      if (f.size() >= 2) l.kv[f[0]] = f[1];
      continue;
    }
    if (f.size() != 5) throw std::runtime_error("bad tensor line: " + line);
    ListedTensor t;
    t.name = f[0];
    std::string dims = f[1].substr(1, f[1].size() - 2);
    for (const auto& d : split(dims, ',')) t.ne.push_back(std::stoll(d));
    t.type = f[2];
    t.offset = std::stoll(f[3]);
    t.nbytes = std::stoll(f[4]);
    l.tensors.push_back(std::move(t));
  }
  if (l.tensors.empty()) throw std::runtime_error("no tensors in " + path.string());
  return l;
}

FormatId type_of(const std::string& name) {
  const auto t = g::type_from_name(name);
  if (!t) throw std::runtime_error("unknown ggml type " + name);
  return *t;
}

g::ModelFacts facts_of(const Listing& l) {
  g::ModelFacts m;
  m.n_layers = static_cast<int>(l.kv_int("deepseek4.block_count"));
  m.n_expert = static_cast<int>(l.kv_int("deepseek4.expert_count"));
  m.n_head = static_cast<int>(l.kv_int("deepseek4.attention.head_count"));
  m.n_head_kv = static_cast<int>(l.kv_int("deepseek4.attention.head_count_kv"));
  return m;
}

std::vector<g::TensorInfo> infos_of(const Listing& l) {
  std::vector<g::TensorInfo> out;
  for (const auto& t : l.tensors) out.push_back({t.name, t.ne, type_of(t.type)});
  return out;
}

std::vector<FormatId> plan(const Listing& src, g::FileType ft, bool pure) {
  const auto infos = infos_of(src);
  return g::plan_types(ft, facts_of(src), infos, pure);
}

// One golden pair: the source listing, llama-quantize's output listing, the file type.
#define DSV4_GOLDEN_CASE(Name, Src, Out, Ft)           \
  struct Name {                                        \
    static constexpr const char* src = Src;            \
    static constexpr const char* out = Out;            \
    static constexpr g::FileType ft = g::FileType::Ft; \
  }
DSV4_GOLDEN_CASE(TinyF16, "dsv4-tiny-f32.txt", "dsv4-tiny-f16.txt", f16);
DSV4_GOLDEN_CASE(TinyQ8_0, "dsv4-tiny-f32.txt", "dsv4-tiny-q8_0.txt", q8_0);
DSV4_GOLDEN_CASE(TinyQ4_K_M, "dsv4-tiny-f32.txt", "dsv4-tiny-q4_k_m.txt", q4_k_m);
DSV4_GOLDEN_CASE(TinyQ2_K, "dsv4-tiny-f32.txt", "dsv4-tiny-q2_k.txt", q2_k);
DSV4_GOLDEN_CASE(TinyMXFP4_MOE, "dsv4-tiny-f32.txt", "dsv4-tiny-mxfp4_moe.txt", mxfp4_moe);
DSV4_GOLDEN_CASE(TinyMtpQ8_0, "dsv4-tiny-mtp-f32.txt", "dsv4-tiny-mtp-q8_0.txt", q8_0);
DSV4_GOLDEN_CASE(MediumQ8_0, "listing-medium-f16.txt", "listing-medium-q8_0.txt", q8_0);
DSV4_GOLDEN_CASE(MediumQ4_K_M, "listing-medium-f16.txt", "listing-medium-q4_k_m.txt", q4_k_m);
#undef DSV4_GOLDEN_CASE

constexpr std::int64_t kAlign = 32;  // general.alignment of these files

}  // namespace

TEST_CASE_TEMPLATE("recipe types, sizes and order equal llama-quantize's output", C, TinyF16,
                   TinyQ8_0, TinyQ4_K_M, TinyQ2_K, TinyMXFP4_MOE, TinyMtpQ8_0, MediumQ8_0,
                   MediumQ4_K_M) {
  const Listing src = read_listing(C::src);
  const Listing out = read_listing(C::out);
  CAPTURE(C::out);
  REQUIRE(src.tensors.size() == out.tensors.size());
  CHECK(out.kv_int("general.file_type") == static_cast<std::int64_t>(C::ft));

  const auto types = plan(src, C::ft, false);
  REQUIRE(types.size() == src.tensors.size());
  std::set<std::string> seen_types;
  for (std::size_t i = 0; i < src.tensors.size(); ++i) {
    const auto& s = src.tensors[i];
    const auto& o = out.find(s.name);
    CAPTURE(s.name);
    CHECK(o.ne == s.ne);
    CHECK(std::string(g::type_name(types[i])) == o.type);
    CHECK(g::tensor_bytes(types[i], s.ne) == o.nbytes);
    seen_types.insert(o.type);
  }
  CHECK(seen_types.size() >= 2);  // the listing really mixes types

  // llama-quantize writes tensors in llama_order_less order, each aligned to 32 bytes.
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < out.tensors.size(); ++i) {
    if (i > 0) CHECK(g::llama_order_less(out.tensors[i - 1].name, out.tensors[i].name));
    CHECK(out.tensors[i].offset == offset);
    offset += (out.tensors[i].nbytes + kAlign - 1) / kAlign * kAlign;
  }
}

TEST_CASE("the F32 and F16 source listings hold the byte sizes their types imply") {
  for (const char* file :
       {"dsv4-tiny-f32.txt", "dsv4-tiny-mtp-f32.txt", "listing-medium-f16.txt"}) {
    const Listing l = read_listing(file);
    for (const auto& t : l.tensors) {
      CAPTURE(t.name);
      CHECK(g::tensor_bytes(type_of(t.type), t.ne) == t.nbytes);
    }
  }
}

TEST_CASE("MTP (nextn) tensors survive every recipe") {
  const Listing src = read_listing("dsv4-tiny-mtp-f32.txt");
  const int n_main = static_cast<int>(src.kv_int("deepseek4.block_count") -
                                      src.kv_int("deepseek4.nextn_predict_layers"));
  const std::string mtp_prefix = "blk." + std::to_string(n_main) + ".";
  for (const auto& ft : g::kFileTypes) {
    for (bool pure : {false, true}) {
      CAPTURE(ft.name);
      CAPTURE(pure);
      const auto types = plan(src, ft.type, pure);
      int n_mtp = 0;
      for (std::size_t i = 0; i < src.tensors.size(); ++i) {
        const auto& t = src.tensors[i];
        if (t.name.rfind(mtp_prefix, 0) != 0) continue;
        ++n_mtp;
        CAPTURE(t.name);
        // every MTP tensor gets a type its rows fit (no throw) and keeps its element count
        CHECK(g::tensor_bytes(types[i], t.ne) > 0);
        if (t.name.find("_norm.weight") != std::string::npos || t.ne.size() == 1) {
          CHECK(types[i] == type_of(t.type));
        }
      }
      CHECK(n_mtp == 28);  // a full layer (24) + eh_proj, enorm, hnorm, shared_head_norm
      const auto& eh = src.find(mtp_prefix + "nextn.eh_proj.weight");
      const auto eh_type = types[static_cast<std::size_t>(&eh - src.tensors.data())];
      const bool moe_mix = !pure && ft.type == g::FileType::mxfp4_moe;  // non-experts -> Q8_0
      CHECK(eh_type == (moe_mix ? FormatId::q8_0 : g::fallback_type(ft.base, eh.ne[0])));
      if (g::traits_of(ft.base).quantized) CHECK(g::traits_of(eh_type).quantized);
      // the MTP block's experts and projections get the same types as a trunk block's
      if (!pure && ft.type != g::FileType::q4_k_m && ft.type != g::FileType::q5_k_m) {
        for (const char* part : {"ffn_up_exps.weight", "attn_q_b.weight", "ffn_down_exps.weight"}) {
          const auto& a = src.find("blk.3." + std::string(part));
          const auto& b = src.find(mtp_prefix + part);
          CHECK(types[static_cast<std::size_t>(&a - src.tensors.data())] ==
                types[static_cast<std::size_t>(&b - src.tensors.data())]);
        }
      }
    }
  }
  // block_count must count the MTP blocks: with the trunk count the MTP block is out of range
  g::ModelFacts trunk_only = facts_of(src);
  trunk_only.n_layers = n_main;
  const auto infos = infos_of(src);
  CHECK_THROWS_AS(g::plan_types(g::FileType::q4_k_m, trunk_only, infos, false), dsv4::ShapeError);
}

TEST_CASE("--pure gives every quantizable tensor the base type, with the same fallbacks") {
  const Listing src = read_listing("dsv4-tiny-f32.txt");
  for (const auto& ft : g::kFileTypes) {
    CAPTURE(ft.name);
    const auto types = plan(src, ft.type, true);
    for (std::size_t i = 0; i < src.tensors.size(); ++i) {
      const auto& t = src.tensors[i];
      CAPTURE(t.name);
      if (g::should_quantize(t.name, t.ne)) {
        CHECK(types[i] == g::fallback_type(ft.base, t.ne[0]));
      } else {
        CHECK(types[i] == type_of(t.type));
      }
    }
  }
  // pure differs from the mix exactly where the mix promotes
  const auto mix = plan(src, g::FileType::q4_k_m, false);
  const auto pure = plan(src, g::FileType::q4_k_m, true);
  const auto at = [&](const std::string& name) {
    return static_cast<std::size_t>(&src.find(name) - src.tensors.data());
  };
  CHECK(mix[at("output.weight")] == FormatId::q6_k);
  CHECK(pure[at("output.weight")] == FormatId::q4_k);
  CHECK(mix[at("blk.2.ffn_down_exps.weight")] == FormatId::q8_0);   // Q6_K, rows of 32
  CHECK(pure[at("blk.2.ffn_down_exps.weight")] == FormatId::q5_0);  // Q4_K, rows of 32
  CHECK(mix[at("blk.1.ffn_down_exps.weight")] == pure[at("blk.1.ffn_down_exps.weight")]);
  const auto mx = plan(src, g::FileType::mxfp4_moe, true);
  CHECK(mx[at("token_embd.weight")] == FormatId::mxfp4);
  CHECK(mx[at("blk.0.ffn_gate_tid2eid.weight")] == g::ggml_id::i32);
}

TEST_CASE("fallback table for rows that are not a multiple of the block") {
  CHECK(g::fallback_type(FormatId::q4_k, 256) == FormatId::q4_k);
  CHECK(g::fallback_type(FormatId::q4_k, 64) == FormatId::q5_0);
  CHECK(g::fallback_type(FormatId::q5_k, 96) == FormatId::q5_1);
  CHECK(g::fallback_type(FormatId::q6_k, 32) == FormatId::q8_0);
  CHECK(g::fallback_type(FormatId::q2_k, 320) == FormatId::q4_0);
  CHECK(g::fallback_type(FormatId::q3_k, 64) == FormatId::q4_0);
  CHECK(g::fallback_type(FormatId::iq4_xs, 32) == FormatId::iq4_nl);
  CHECK(g::fallback_type(FormatId::q4_k, 48) == FormatId::f16);  // not even a multiple of 32
  CHECK(g::fallback_type(FormatId::q8_0, 64) == FormatId::q8_0);
  CHECK(g::fallback_type(FormatId::q8_0, 48) == FormatId::f16);  // 32-value types: F16
  CHECK(g::fallback_type(FormatId::mxfp4, 40) == FormatId::f16);
  CHECK(g::fallback_type(FormatId::iq4_xs, 40) == FormatId::f16);
  CHECK(g::fallback_type(FormatId::mxfp4, 16) == FormatId::f16);
  CHECK_THROWS_AS(g::fallback_type(FormatId::q8_k, 128), dsv4::FormatError);  // no partner
}

TEST_CASE("row sizes of the ggml types") {
  CHECK(g::row_bytes(FormatId::q8_0, 64) == 68);
  CHECK(g::row_bytes(FormatId::q4_k, 512) == 288);
  CHECK(g::row_bytes(FormatId::q6_k, 256) == 210);
  CHECK(g::row_bytes(FormatId::q2_k, 256) == 84);
  CHECK(g::row_bytes(FormatId::mxfp4, 64) == 34);
  CHECK(g::row_bytes(FormatId::f16, 3) == 6);
  CHECK(g::row_bytes(g::ggml_id::i32, 4) == 16);
  CHECK_THROWS_AS(g::row_bytes(FormatId::q4_k, 64), dsv4::ShapeError);
  CHECK_THROWS_AS(g::row_bytes(FormatId{5}, 64), dsv4::FormatError);
}

TEST_CASE("file type names round-trip and aliases") {
  for (const auto& ft : g::kFileTypes) {
    CAPTURE(ft.name);
    REQUIRE(g::file_type_from_name(ft.name).has_value());
    CHECK(*g::file_type_from_name(ft.name) == ft.type);
    CHECK(g::file_type_name(ft.type) == ft.name);
  }
  CHECK(g::file_type_from_name("q4_k_m") == g::FileType::q4_k_m);
  CHECK(g::file_type_from_name("Q4_K") == g::FileType::q4_k_m);
  CHECK(g::file_type_from_name("Q3_K") == g::FileType::q3_k_m);
  CHECK_FALSE(g::file_type_from_name("Q4_K_X").has_value());
  CHECK(g::base_type(g::FileType::q2_k) == FormatId::q2_k);
  CHECK_THROWS_AS(g::file_type_info(static_cast<g::FileType>(99)), dsv4::ConfigError);
}

TEST_CASE("which tensors are quantized, categories and the more-bits layers") {
  const std::int64_t m2[] = {256, 64}, v1[] = {256}, m21[] = {256, 1}, e3[] = {256, 32, 16};
  CHECK(g::should_quantize("blk.0.attn_q_a.weight", m2));
  CHECK(g::should_quantize("blk.0.ffn_up_exps.weight", e3));
  CHECK(g::should_quantize("blk.0.hc_attn_fn.weight", m2));
  CHECK_FALSE(g::should_quantize("blk.0.attn_norm.weight", v1));
  CHECK_FALSE(g::should_quantize("blk.0.attn_q_a.weight", m21));  // effectively 1-D
  CHECK_FALSE(g::should_quantize("blk.0.ffn_gate_inp.weight", m2));
  CHECK_FALSE(g::should_quantize("blk.0.ffn_gate_tid2eid.weight", m2));
  CHECK_FALSE(g::should_quantize("blk.0.exp_probs_b.bias", m2));
  CHECK_FALSE(g::should_quantize("blk.5.nextn.enorm_norm.weight", m2));
  CHECK(g::category_of("blk.0.ffn_down_shexp.weight") == g::Category::ffn_down);
  CHECK(g::category_of("blk.0.attn_output_a.weight") == g::Category::other);
  CHECK(g::category_of("blk.0.attn_output.weight") == g::Category::attn_output);
  CHECK(g::category_of("output.weight") == g::Category::output);
  std::vector<int> more;
  for (int i = 0; i < 8; ++i)
    if (g::use_more_bits(i, 8)) more.push_back(i);
  CHECK(more == std::vector<int>{0, 3, 6, 7});
  CHECK(g::llama_order_less("output.weight", "blk.0.attn_norm.weight"));
  CHECK(g::llama_order_less("blk.2.x.weight", "blk.10.a.weight"));
}

TEST_CASE("tied embeddings: token_embd takes the output rule when output.weight is absent") {
  const std::int64_t ne[] = {256, 512};
  const g::TensorInfo embd{"token_embd.weight", ne, FormatId::f32};
  g::ModelFacts m{5, 16, 4, 1, true};
  g::Recipe with_output(g::FileType::q4_k_m, m, false);
  CHECK(with_output.choose(embd) == FormatId::q4_k);
  m.has_output = false;
  g::Recipe tied(g::FileType::q4_k_m, m, false);
  CHECK(tied.choose(embd) == FormatId::q6_k);
  CHECK_THROWS_AS(g::Recipe(g::FileType::q8_0, g::ModelFacts{}, false), dsv4::ConfigError);
}

TEST_CASE("a larger synthetic model: per-layer ffn_down mixes, any input order") {
  // 16 blocks of ffn_down_exps {512, 1024, 8} and attn_kv {1024, 512}, given in reverse order.
  constexpr int n = 16;
  std::vector<std::string> names;
  for (int i = n - 1; i >= 0; --i) {
    names.push_back("blk." + std::to_string(i) + ".ffn_down_exps.weight");
    names.push_back("blk." + std::to_string(i) + ".attn_kv.weight");
  }
  const std::int64_t down[] = {512, 1024, 8}, kv[] = {1024, 512};
  std::vector<g::TensorInfo> infos;
  for (const auto& nm : names) {
    const bool is_down = nm.find("ffn_down") != std::string::npos;
    infos.push_back(
        {nm, is_down ? std::span<const std::int64_t>(down) : std::span<const std::int64_t>(kv),
         FormatId::bf16});
  }
  const g::ModelFacts m{n, 8, 16, 1, true};
  const auto layer = [&](std::size_t i) { return n - 1 - static_cast<int>(i / 2); };
  const auto q4km = g::plan_types(g::FileType::q4_k_m, m, infos, false);
  const auto q5km = g::plan_types(g::FileType::q5_k_m, m, infos, false);
  const auto q3km = g::plan_types(g::FileType::q3_k_m, m, infos, false);
  const auto q2k = g::plan_types(g::FileType::q2_k, m, infos, false);
  const auto q4ks = g::plan_types(g::FileType::q4_k_s, m, infos, false);
  std::vector<int> six;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    CAPTURE(names[i]);
    if (i % 2 == 1) {  // attn_kv: base type everywhere
      CHECK(q4km[i] == FormatId::q4_k);
      CHECK(q2k[i] == FormatId::q2_k);
      continue;
    }
    if (q4km[i] == FormatId::q6_k) six.push_back(layer(i));
    CHECK(q5km[i] == (g::use_more_bits(layer(i), n) ? FormatId::q6_k : FormatId::q5_k));
    CHECK(q3km[i] == (layer(i) < n / 16 ? FormatId::q5_k : FormatId::q4_k));
    CHECK(q2k[i] == FormatId::q3_k);
    CHECK(q4ks[i] == (layer(i) < n / 8 ? FormatId::q5_k : FormatId::q4_k));
  }
  std::sort(six.begin(), six.end());
  CHECK(six == std::vector<int>{0, 1, 4, 7, 10, 13, 14, 15});
  // the same rows, not a multiple of 256: every k-quant falls back
  const std::int64_t odd[] = {96, 64}, odder[] = {48, 64};
  g::Recipe r(g::FileType::q4_k_m, m, false);
  CHECK(r.choose({"blk.4.ffn_down_exps.weight", odd, FormatId::f32}) == FormatId::q8_0);
  CHECK(r.choose({"blk.3.ffn_down_exps.weight", odd, FormatId::f32}) == FormatId::q5_0);
  CHECK(r.choose({"blk.2.ffn_up_exps.weight", odder, FormatId::f32}) == FormatId::f16);
  CHECK_THROWS_AS(r.choose({"blk.16.ffn_down_exps.weight", odd, FormatId::f32}), dsv4::ShapeError);
}
