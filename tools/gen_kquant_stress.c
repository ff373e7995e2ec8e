// Writes the k-quant stress data in tests/data/ggml-quants/stress_* by calling ggml itself.
//
// Used by tests/unit/formats_kquants_test.cpp (see tests/data/README.md, section ggml-quants).
// The ggml golden set covers 16 super-blocks per format; this adds 128 super-blocks made to hit
// the corners of the k-quant scale searches (constant, one-signed, sparse, tied, tiny, huge and
// all-zero groups) and ggml's *generic* CPU dot products, which dsv4 reproduces bit for bit.
//
// Build against ggml 0.18.1 (the version of the golden set) with every SIMD extension off, so
// that ggml-cpu's vec_dot takes its portable path:
//   cmake -S <ggml> -B <b> -DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF
//         -DGGML_F16C=OFF -DGGML_SSE42=OFF -DGGML_BMI2=OFF -DGGML_AVX512=OFF -DGGML_OPENMP=OFF
//         -DBUILD_SHARED_LIBS=OFF && cmake --build <b> --target ggml-base ggml-cpu
//   cc -O2 -I<ggml>/include tools/gen_kquant_stress.c <b>/src/libggml-cpu.a
//      <b>/src/libggml-base.a -lstdc++ -lm -lpthread -o gen && ./gen tests/data/ggml-quants
//
// Files (little-endian, no headers):
//   stress_input.f32      kRows x kCols float32 weights; super-block b of the row-major array
//                         uses distribution b % kDists (see make_block)
//   stress_act.f32        kCols float32 activation (N(0,1) with a different scale per block)
//   stress_<t>.q          the weights quantized by quantize_row_<t>_ref, row by row
//   stress_<t>.deq.fnv    FNV-1a 64 of the bytes of to_float(stress_<t>.q) (uint64)
//   stress_<t>.act_q      stress_act.f32 quantized by quantize_row_q8_K_ref (not for q8_K)
//   stress_<t>.vecdot.f32 kRows float32: generic vec_dot(row r, act_q) (not for q8_K)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

// ggml-base exports these (ggml-quants.h) but has no type traits entry for q8_K.
void quantize_row_q8_K_ref(const float* x, void* y, int64_t k);
void dequantize_row_q8_K(const void* x, float* y, int64_t k);

enum { kRows = 32, kCols = 1024, kSuper = 256, kDists = 16 };

static uint64_t rng_state = 0x6b71756e74735eedull;

static uint64_t next_u64(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }

static double normal(void) {
  const double u1 = uniform() + 0x1.0p-54;
  const double u2 = uniform();
  return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

// One super-block of distribution `dist`.
static void make_block(int dist, float* x) {
  for (int i = 0; i < kSuper; ++i) {
    double v = 0.0;
    switch (dist) {
      case 0:
        v = normal();
        break;  // plain
      case 1:
        v = 1e-3 * normal();
        break;  // small
      case 2:
        v = uniform();
        break;  // all positive
      case 3:
        v = -uniform();
        break;  // all negative
      case 4:
        v = normal() * exp(2.0 * normal());
        break;  // very heavy tails
      case 5:
        v = uniform() < 0.1 ? normal() : 0.0;
        break;  // sparse
      case 6:
        v = (i / 16) % 3 == 0 ? 0.5 : normal();
        break;  // constant groups
      case 7:
        v = 10.0 + normal();
        break;  // large offset
      case 8:
        v = 1e-20 * normal();
        break;  // below GROUP_MAX_EPS
      case 9:
        v = round(4.0 * normal()) / 2.0;
        break;  // ties of the rounding
      case 10:
        v = i == 77 ? 3.0 : 1e-4 * normal();
        break;  // one spike
      case 11:
        v = (next_u64() & 1) ? 1.0 : -1.0;
        break;  // two-valued
      case 12:
        v = (i / 16) % 2 == 0 ? 0.0 : normal();
        break;  // zero 16-groups
      case 13:
        v = 1e4 * normal();
        break;  // large
      case 14:
        v = (i / 32) % 2 == 0 ? 0.0 : 0.02 * normal();
        break;  // zero 32-groups
      default:
        v = 0.0;
        break;  // all zero
    }
    x[i] = (float)v;
  }
}

static void write_file(const char* dir, const char* name, const void* data, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(data, 1, bytes, f) != bytes) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

static uint64_t fnv1a64(const void* data, size_t bytes) {
  const unsigned char* p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  ggml_cpu_init();

  static float x[kRows * kCols];
  static float act[kCols];
  for (int b = 0; b < kRows * kCols / kSuper; ++b) make_block(b % kDists, x + b * kSuper);
  for (int b = 0; b < kCols / kSuper; ++b) {
    const double scale = b == 0 ? 1.0 : b == 1 ? 1e-3 : b == 2 ? 30.0 : 0.2;
    for (int i = 0; i < kSuper; ++i) act[b * kSuper + i] = (float)(scale * normal());
  }
  write_file(dir, "stress_input.f32", x, sizeof x);
  write_file(dir, "stress_act.f32", act, sizeof act);

  const enum ggml_type types[] = {GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K,
                                  GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_K};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
    const enum ggml_type type = types[t];
    const struct ggml_type_traits* tr = ggml_get_type_traits(type);
    const size_t row_bytes = ggml_row_size(type, kCols);
    unsigned char* q = calloc(kRows, row_bytes);
    float* deq = calloc((size_t)kRows * kCols, sizeof(float));
    const ggml_from_float_t quantize =
        type == GGML_TYPE_Q8_K ? quantize_row_q8_K_ref : tr->from_float_ref;
    const ggml_to_float_t dequantize = type == GGML_TYPE_Q8_K ? dequantize_row_q8_K : tr->to_float;
    for (int r = 0; r < kRows; ++r) {
      quantize(x + (size_t)r * kCols, q + r * row_bytes, kCols);
      dequantize(q + r * row_bytes, deq + (size_t)r * kCols, kCols);
    }
    char name[256];
    snprintf(name, sizeof name, "stress_%s.q", tr->type_name);
    write_file(dir, name, q, kRows * row_bytes);
    const uint64_t h = fnv1a64(deq, (size_t)kRows * kCols * sizeof(float));
    snprintf(name, sizeof name, "stress_%s.deq.fnv", tr->type_name);
    write_file(dir, name, &h, sizeof h);

    if (type != GGML_TYPE_Q8_K) {
      const struct ggml_type_traits_cpu* cpu = ggml_get_type_traits_cpu(type);
      const enum ggml_type vt = cpu->vec_dot_type;
      const size_t act_bytes = ggml_row_size(vt, kCols);
      unsigned char* aq = calloc(1, act_bytes);
      if (vt != GGML_TYPE_Q8_K) {
        fprintf(stderr, "unexpected vec_dot_type for %s\n", tr->type_name);
        return 1;
      }
      quantize_row_q8_K_ref(act, aq, kCols);
      snprintf(name, sizeof name, "stress_%s.act_q", tr->type_name);
      write_file(dir, name, aq, act_bytes);
      float dots[kRows];
      for (int r = 0; r < kRows; ++r)
        cpu->vec_dot(kCols, &dots[r], 0, q + r * row_bytes, 0, aq, 0, 1);
      snprintf(name, sizeof name, "stress_%s.vecdot.f32", tr->type_name);
      write_file(dir, name, dots, sizeof dots);
      free(aq);
    }
    free(q);
    free(deq);
  }
  return 0;
}
