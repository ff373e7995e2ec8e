// Writes tests/data/ggml-repack: ggml_mul_mat / ggml_mul_mat_id run by ggml with the weight in its
// CPU_REPACK buffer (the load-time repacking llama.cpp does by default) and in a plain CPU buffer,
// with the inputs, so that dsv4's GgmlRepack orders (Linear::repacked, F::dot_repacked) can be
// checked bit for bit.
//
// Build against a llama.cpp tree's ggml (static, x86-64 AVX-512 F/BW/VL/VNNI/VBMI + AVX2 + FMA +
// F16C, no AMX), e.g. from the tree's root:
//   cmake -B build -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON \
//     -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON \
//     -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF -DGGML_CPU_REPACK=ON \
//     -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
//   cmake --build build --target ggml ggml-cpu ggml-base
//   g++ -O2 -std=c++17 -Iggml/include gen_ggml_repack_data.cpp build/ggml/src/libggml.a \
//     build/ggml/src/libggml-cpu.a build/ggml/src/libggml-base.a -lpthread -lm -o gen
//   ./gen OUTDIR [seed]
// It writes every case of the set (tests/data keeps six of them).
//
// File format (little endian), one file per case:
//   char magic[8] = "RPKDUMP1"
//   int32 kind (0 = mul_mat, 1 = mul_mat_id)
//   int32 type (ggml_type of W), K, N, M (mul_mat: rows of X; mul_mat_id: tokens T)
//   int32 E, n_used (mul_mat_id: experts, experts per token; mul_mat: E = number of src1 planes
//         (X is [K, M/E, E]), n_used = 0)
//   int32 repacked (1 if W->extra != NULL and buffer is CPU_REPACK)
//   int64 wbytes; wbytes of quantized W in STANDARD layout (E*N rows of K)
//   float X[M*K]                      (mul_mat_id: X[T*K], one activation row per token)
//   int32 ids[T*n_used]               (mul_mat_id only)
//   float out_repack[...]; float out_plain[...]
//      mul_mat: [M][N]; mul_mat_id: [T][n_used][N]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

static ggml_backend_buffer_type_t find_repack_buft() {
  ggml_backend_reg_t reg = ggml_backend_cpu_reg();
  ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
  auto fn = (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
      reg, "ggml_backend_dev_get_extra_bufts");
  if (!fn) {
    fprintf(stderr, "no ggml_backend_dev_get_extra_bufts\n");
    exit(1);
  }
  for (ggml_backend_buffer_type_t* p = fn(dev); p && *p; ++p) {
    fprintf(stderr, "extra buft: %s\n", ggml_backend_buft_name(*p));
    if (strcmp(ggml_backend_buft_name(*p), "CPU_REPACK") == 0) return *p;
  }
  fprintf(stderr, "CPU_REPACK buft not found\n");
  exit(1);
}

static ggml_backend_buffer_type_t g_repack;
static ggml_backend_t g_be;

struct run_result {
  std::vector<float> out;
  int repacked = 0;
};

// kind 0: mul_mat. W [K, N] (E==1) ; X [K, M]
// kind 1: mul_mat_id. W [K, N, E]; X [K, 1, T]; ids [n_used, T]
static run_result run(int kind, ggml_type type, int K, int N, int E, int M, int n_used,
                      const std::vector<uint8_t>& wq, const std::vector<float>& X,
                      const std::vector<int32_t>& ids, bool use_repack) {
  run_result r;
  ggml_init_params pw = {16 * ggml_tensor_overhead(), nullptr, true};
  ggml_context* ctxw = ggml_init(pw);
  ggml_tensor* w =
      kind == 0 ? ggml_new_tensor_2d(ctxw, type, K, N) : ggml_new_tensor_3d(ctxw, type, K, N, E);
  ggml_backend_buffer_type_t buft = use_repack ? g_repack : ggml_backend_cpu_buffer_type();
  ggml_backend_buffer_t bufw = ggml_backend_alloc_ctx_tensors_from_buft(ctxw, buft);
  if (!bufw) {
    fprintf(stderr, "alloc w failed\n");
    exit(1);
  }
  if (wq.size() != ggml_nbytes(w)) {
    fprintf(stderr, "size mismatch %zu %zu\n", wq.size(), ggml_nbytes(w));
    exit(1);
  }
  if (use_repack && w->extra == nullptr) {
    fprintf(stderr, "tensor NOT repackable (extra==NULL) type=%s K=%d N=%d\n", ggml_type_name(type),
            K, N);
    exit(1);
  }
  ggml_backend_tensor_set(w, wq.data(), 0, wq.size());
  if (use_repack) {
    // confirm data was transformed (repacked) and buffer is CPU_REPACK
    bool differs = memcmp(w->data, wq.data(), wq.size()) != 0;
    bool bufname =
        strcmp(ggml_backend_buffer_name(w->buffer), "CPU_REPACK") == 0 ||
        strcmp(ggml_backend_buft_name(ggml_backend_buffer_get_type(w->buffer)), "CPU_REPACK") == 0;
    r.repacked = (w->extra != nullptr) && bufname && differs;
    if (!r.repacked)
      fprintf(stderr, "WARNING: repack not confirmed (extra=%p name=%d differs=%d)\n", w->extra,
              bufname, differs);
  }

  ggml_init_params p = {64 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true};
  ggml_context* ctx = ggml_init(p);
  ggml_tensor* x;
  ggml_tensor* out;
  ggml_tensor* tid = nullptr;
  if (kind == 0) {
    // E doubles as the number of src1 planes for mul_mat (X is [K, M/E, E])
    x = E > 1 ? ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, M / E, E)
              : ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, M);
    out = ggml_mul_mat(ctx, w, x);
  } else {
    x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, 1, M);
    tid = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, n_used, M);
    out = ggml_mul_mat_id(ctx, w, x, tid);
  }
  ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, out);
  ggml_backend_buffer_t buf =
      ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
  ggml_backend_tensor_set(x, X.data(), 0, X.size() * sizeof(float));
  if (tid) ggml_backend_tensor_set(tid, ids.data(), 0, ids.size() * sizeof(int32_t));
  if (ggml_backend_graph_compute(g_be, gf) != GGML_STATUS_SUCCESS) {
    fprintf(stderr, "compute failed\n");
    exit(1);
  }
  r.out.resize(ggml_nelements(out));
  ggml_backend_tensor_get(out, r.out.data(), 0, r.out.size() * sizeof(float));
  ggml_backend_buffer_free(buf);
  ggml_free(ctx);
  ggml_backend_buffer_free(bufw);
  ggml_free(ctxw);
  return r;
}

static std::mt19937 rng(12345);

// dist 0: N(0,1); dist 1: "ties" - values k*0.25 for k in [-8,8] (many +/-amax ties and .5 rounding
// ties) dist 2: N(0,1) with a few large outliers per row
static std::vector<float> gen(size_t n, int dist) {
  std::vector<float> v(n);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> ud(-8, 8);
  std::uniform_int_distribution<int> pick(0, 63);
  for (auto& f : v) {
    if (dist == 1)
      f = ud(rng) * 0.25f;
    else {
      f = nd(rng);
      if (dist == 2 && pick(rng) == 0) f *= 20.f;
    }
  }
  return v;
}

static std::vector<uint8_t> quantize(ggml_type type, const std::vector<float>& W, int K,
                                     int nrows) {
  std::vector<uint8_t> q(ggml_row_size(type, K) * nrows);
  size_t sz = ggml_quantize_chunk(type, W.data(), q.data(), 0, nrows, K, nullptr);
  if (sz != q.size()) {
    fprintf(stderr, "quantize size mismatch\n");
    exit(1);
  }
  return q;
}

static void dump(const std::string& path, int kind, ggml_type type, int K, int N, int M, int E,
                 int n_used, int repacked, const std::vector<uint8_t>& wq,
                 const std::vector<float>& X, const std::vector<int32_t>& ids,
                 const std::vector<float>& o_rep, const std::vector<float>& o_plain) {
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) {
    perror(path.c_str());
    exit(1);
  }
  fwrite("RPKDUMP1", 1, 8, f);
  int32_t hdr[8] = {kind, (int32_t)type, K, N, M, E, n_used, repacked};
  fwrite(hdr, sizeof(hdr), 1, f);
  int64_t wb = wq.size();
  fwrite(&wb, 8, 1, f);
  fwrite(wq.data(), 1, wq.size(), f);
  fwrite(X.data(), 4, X.size(), f);
  if (kind == 1) fwrite(ids.data(), 4, ids.size(), f);
  fwrite(o_rep.data(), 4, o_rep.size(), f);
  fwrite(o_plain.data(), 4, o_plain.size(), f);
  fclose(f);
}

int main(int argc, char** argv) {
  const char* outdir = argc > 1 ? argv[1] : "dumps";
  if (argc > 2) rng.seed((unsigned)atoi(argv[2]));

  g_repack = find_repack_buft();
  g_be = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(g_be, 2);

  struct cfg {
    ggml_type t;
    int K, N;
  };
  std::vector<cfg> cfgs = {
      {GGML_TYPE_Q4_K, 512, 16}, {GGML_TYPE_Q4_K, 256, 8},   {GGML_TYPE_Q4_K, 256, 200},
      {GGML_TYPE_Q2_K, 512, 16}, {GGML_TYPE_Q2_K, 256, 8},   {GGML_TYPE_Q2_K, 256, 200},
      {GGML_TYPE_Q4_0, 512, 16}, {GGML_TYPE_Q4_0, 256, 8},   {GGML_TYPE_Q4_0, 64, 16},
      {GGML_TYPE_Q4_0, 32, 8},   {GGML_TYPE_Q4_0, 256, 200},
  };
  const int Ms[] = {1, 4, 5, 8, 13, 300};
  int ncase = 0;
  for (const auto& c : cfgs) {
    for (int dist = 0; dist < 3; ++dist) {
      std::vector<float> W = gen((size_t)c.K * c.N, dist == 1 ? 0 : dist);
      auto wq = quantize(c.t, W, c.K, c.N);
      for (int M : Ms) {
        if (dist != 0 && M == 300 && c.N == 200) continue;
        auto X = gen((size_t)M * c.K, dist);
        auto rr = run(0, c.t, c.K, c.N, 1, M, 0, wq, X, {}, true);
        auto rp = run(0, c.t, c.K, c.N, 1, M, 0, wq, X, {}, false);
        char path[512];
        snprintf(path, sizeof(path), "%s/mm_%s_K%d_N%d_M%d_d%d.bin", outdir, ggml_type_name(c.t),
                 c.K, c.N, M, dist);
        dump(path, 0, c.t, c.K, c.N, M, 1, 0, rr.repacked, wq, X, {}, rr.out, rp.out);
        size_t ndiff = 0;
        for (size_t i = 0; i < rr.out.size(); ++i) ndiff += memcmp(&rr.out[i], &rp.out[i], 4) != 0;
        printf("%s repacked=%d outputs=%zu  bitwise-differs-from-plain=%zu\n", path, rr.repacked,
               rr.out.size(), ndiff);
        ++ncase;
      }
    }
  }
  // mul_mat with a 3-D src1: P planes of R rows each (GEMM/GEMV split is per plane)
  for (ggml_type t : {GGML_TYPE_Q4_K, GGML_TYPE_Q2_K, GGML_TYPE_Q4_0}) {
    for (int R : {5, 6, 7, 9}) {
      const int K = 256, N = 16, P = 3, M = R * P;
      std::vector<float> W = gen((size_t)K * N, 0);
      auto wq = quantize(t, W, K, N);
      auto X = gen((size_t)M * K, 0);
      auto rr = run(0, t, K, N, P, M, 0, wq, X, {}, true);
      auto rp = run(0, t, K, N, P, M, 0, wq, X, {}, false);
      char path[512];
      snprintf(path, sizeof(path), "%s/mm3d_%s_K%d_N%d_R%d_P%d.bin", outdir, ggml_type_name(t), K,
               N, R, P);
      dump(path, 0, t, K, N, M, P, 0, rr.repacked, wq, X, {}, rr.out, rp.out);
      printf("%s repacked=%d outputs=%zu\n", path, rr.repacked, rr.out.size());
      ++ncase;
    }
  }
  // mul_mat_id
  struct cfgid {
    ggml_type t;
    int K, N;
  };
  std::vector<cfgid> idcfgs = {{GGML_TYPE_Q4_K, 256, 16}, {GGML_TYPE_Q2_K, 256, 16},
                               {GGML_TYPE_Q4_0, 64, 16},  {GGML_TYPE_Q4_K, 512, 8},
                               {GGML_TYPE_Q2_K, 512, 8},  {GGML_TYPE_Q4_0, 256, 8}};
  const int E = 4, n_used = 2;
  for (const auto& c : idcfgs) {
    for (int T : {1, 5, 13}) {
      std::vector<float> W = gen((size_t)c.K * c.N * E, 0);
      auto wq = quantize(c.t, W, c.K, c.N * E);
      auto X = gen((size_t)T * c.K, 0);
      std::vector<int32_t> ids(T * n_used);
      std::uniform_int_distribution<int> ue(0, E - 1);
      for (int t = 0; t < T; ++t) {
        int a = ue(rng), b;
        do {
          b = ue(rng);
        } while (b == a);
        ids[t * n_used] = a;
        ids[t * n_used + 1] = b;
      }
      auto rr = run(1, c.t, c.K, c.N, E, T, n_used, wq, X, ids, true);
      auto rp = run(1, c.t, c.K, c.N, E, T, n_used, wq, X, ids, false);
      char path[512];
      snprintf(path, sizeof(path), "%s/mmid_%s_K%d_N%d_T%d.bin", outdir, ggml_type_name(c.t), c.K,
               c.N, T);
      dump(path, 1, c.t, c.K, c.N, T, E, n_used, rr.repacked, wq, X, ids, rr.out, rp.out);
      size_t ndiff = 0;
      for (size_t i = 0; i < rr.out.size(); ++i) ndiff += memcmp(&rr.out[i], &rp.out[i], 4) != 0;
      printf("%s repacked=%d outputs=%zu  bitwise-differs-from-plain=%zu\n", path, rr.repacked,
             rr.out.size(), ndiff);
      ++ncase;
    }
  }
  printf("cases: %d\n", ncase);
  ggml_backend_free(g_be);
  return 0;
}
