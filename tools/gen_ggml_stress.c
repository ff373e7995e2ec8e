// Writes tests/data/ggml-quants/stress32_* for the 32-value GGUF formats and IQ4_XS, F16, BF16
// by calling ggml itself.
//
// Used by tests/unit/formats_ggml_test.cpp (see tests/data/README.md, section ggml-quants). The
// ggml golden set has 8 smooth rows; this adds 256 blocks of 32 drawn to hit the corners of
// the quantizers (all-zero, constant, single spike, tiny, subnormal, integer and half-integer
// ties, one-signed, exact and almost powers of two, heavy tails, sparse) and ggml's *generic*
// CPU dot products, which dsv4 reproduces bit for bit.
//
// Build against ggml 0.18.1 (the version of the golden set) with every SIMD extension off, so
// that ggml-cpu's vec_dot and fp16 conversions take their portable paths:
//   cmake -S <ggml> -B <b> -DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF
//         -DGGML_F16C=OFF -DGGML_SSE42=OFF -DGGML_BMI2=OFF -DGGML_AVX512=OFF -DGGML_OPENMP=OFF
//         -DBUILD_SHARED_LIBS=OFF && cmake --build <b> --target ggml-base ggml-cpu
//   cc -O2 -I<ggml>/include tools/gen_ggml_stress.c <b>/src/libggml-cpu.a
//      <b>/src/libggml-base.a -lstdc++ -lm -lpthread -o gen && ./gen tests/data/ggml-quants
//
// Files (little-endian, no headers), for <t> in f16 bf16 q8_0 q8_1 q4_0 q4_1 q5_0 q5_1 iq4_nl
// iq4_xs mxfp4:
//   stress32_input.f32       kRows x kCols float32; 32-value block b of the row-major array uses
//                            distribution b % kDists (see make_block)
//   stress32_act.f32         kCols float32 activation, N(0,1) with a scale per 256 values
//   stress32_<t>.q           the input quantized by the type's reference quantizer, row by row
//   stress32_<t>.deq.fnv     FNV-1a 64 of the bytes of to_float(stress32_<t>.q) (not q8_1)
//   stress32_<t>.act_q       stress32_act.f32 in the type's vec_dot_type (reference quantizer)
//   stress32_<t>.vecdot.f32  kRows float32: generic vec_dot(row r, act_q) (not q8_1)
//   stress32_iq4_nl.chunk.q  the input through ggml_quantize_chunk (llama-quantize, no imatrix)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

// ggml-base exports it (ggml-quants.h) but has no from_float_ref entry for q8_K.
void quantize_row_q8_K_ref(const float* x, void* y, int64_t k);

enum { kRows = 8, kCols = 1024, kBlock = 32, kDists = 16 };

static uint64_t rng_state = 0x73747265737333f2ull;

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

static double sign(void) { return (next_u64() & 1) ? 1.0 : -1.0; }

// One block of 32 values of distribution `dist` (dist 0 is smooth, and a row starts with it).
static void make_block(int dist, float* x) {
  const int spike = (int)(next_u64() % kBlock);
  const int k = (int)(next_u64() % 7) - 3;
  for (int i = 0; i < kBlock; ++i) {
    double v = 0.0;
    switch (dist) {
      case 0:
        v = normal();
        break;  // plain
      case 1:
        v = 0.0;
        break;  // all zero
      case 2:
        v = 0.37;
        break;  // constant
      case 3:
        v = -2.5;
        break;  // negative constant
      case 4:
        v = i == spike ? 3.0 * sign() : 0.0;
        break;  // one spike
      case 5:
        v = 1e-20 * normal();
        break;  // below GROUP_MAX_EPS
      case 6:
        v = 1e4 * normal();
        break;  // large
      case 7:
        v = (double)((int)(next_u64() % 16) - 8);
        break;  // integers: q4 ties
      case 8:
        v = 1.0 + fabs(normal());
        break;  // all positive
      case 9:
        v = -0.1 - fabs(normal());
        break;  // all negative
      case 10:
        v = 0.25 * (double)((int)(next_u64() % 64) - 32) + 0.125;
        break;  // half steps
      case 11:
        v = 1e-39 * normal();
        break;  // fp32 subnormals
      case 12:
        v = sign() * ldexp(1.0, (int)(next_u64() % 7) - 3);
        break;  // powers of two
      case 13:  // just below 2^k
        v = i == spike ? sign() * ldexp(1.0 - 0x1.0p-24, k) : ldexp(normal(), k - 2);
        break;
      case 14:
        v = normal() * exp(2.0 * normal());
        break;  // very heavy tails
      default:
        v = uniform() < 0.15 ? normal() : 0.0;
        break;  // sparse
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

static void quantize_ref(enum ggml_type type, const float* x, void* y, int64_t n) {
  if (type == GGML_TYPE_Q8_K) {
    quantize_row_q8_K_ref(x, y, n);
    return;
  }
  const struct ggml_type_traits* tr = ggml_get_type_traits(type);
  if (!tr->from_float_ref) {
    fprintf(stderr, "no reference quantizer for %s\n", tr->type_name);
    exit(1);
  }
  tr->from_float_ref(x, y, n);
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
  for (int b = 0; b < kRows * kCols / kBlock; ++b) make_block(b % kDists, x + b * kBlock);
  for (int b = 0; b < kCols / 256; ++b) {
    const double scale = b == 0 ? 1.0 : b == 1 ? 1e-3 : b == 2 ? 30.0 : 0.2;
    for (int i = 0; i < 256; ++i) act[b * 256 + i] = (float)(scale * normal());
  }
  write_file(dir, "stress32_input.f32", x, sizeof x);
  write_file(dir, "stress32_act.f32", act, sizeof act);

  const enum ggml_type types[] = {GGML_TYPE_F16,    GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                  GGML_TYPE_Q8_1,   GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                  GGML_TYPE_Q5_0,   GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL,
                                  GGML_TYPE_IQ4_XS, GGML_TYPE_MXFP4};
  char name[256];
  for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
    const enum ggml_type type = types[t];
    const struct ggml_type_traits* tr = ggml_get_type_traits(type);
    const size_t row_bytes = ggml_row_size(type, kCols);
    unsigned char* q = calloc(kRows, row_bytes);
    float* deq = calloc((size_t)kRows * kCols, sizeof(float));
    for (int r = 0; r < kRows; ++r)
      quantize_ref(type, x + (size_t)r * kCols, q + r * row_bytes, kCols);
    snprintf(name, sizeof name, "stress32_%s.q", tr->type_name);
    write_file(dir, name, q, kRows * row_bytes);

    if (type == GGML_TYPE_IQ4_NL) {
      unsigned char* qc = calloc(kRows, row_bytes);
      ggml_quantize_chunk(type, x, qc, 0, kRows, kCols, NULL);
      write_file(dir, "stress32_iq4_nl.chunk.q", qc, kRows * row_bytes);
      free(qc);
    }
    if (type != GGML_TYPE_Q8_1) {
      for (int r = 0; r < kRows; ++r)
        tr->to_float(q + r * row_bytes, deq + (size_t)r * kCols, kCols);
      const uint64_t h = fnv1a64(deq, (size_t)kRows * kCols * sizeof(float));
      snprintf(name, sizeof name, "stress32_%s.deq.fnv", tr->type_name);
      write_file(dir, name, &h, sizeof h);

      const struct ggml_type_traits_cpu* cpu = ggml_get_type_traits_cpu(type);
      const enum ggml_type vt = cpu->vec_dot_type;
      const size_t act_bytes = ggml_row_size(vt, kCols);
      unsigned char* aq = calloc(1, act_bytes);
      quantize_ref(vt, act, aq, kCols);
      snprintf(name, sizeof name, "stress32_%s.act_q", tr->type_name);
      write_file(dir, name, aq, act_bytes);
      float dots[kRows];
      for (int r = 0; r < kRows; ++r)
        cpu->vec_dot(kCols, &dots[r], 0, q + r * row_bytes, 0, aq, 0, 1);
      snprintf(name, sizeof name, "stress32_%s.vecdot.f32", tr->type_name);
      write_file(dir, name, dots, sizeof dots);
      free(aq);
    }
    free(q);
    free(deq);
  }
  return 0;
}
