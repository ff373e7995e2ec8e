// Fuzzes the importance-matrix readers (io/imatrix.hpp: llama-imatrix's GGUF form and legacy
// .dat): any bytes either become an Imatrix or are rejected with a dsv4::Error naming the input.
// An accepted matrix is filtered as --include-weights / --exclude-weights filter it, and its
// first two entries (finite values of any size and sign) weight a quantization of a fixed row to
// every format with a weighted quantizer (formats/weighted_quants.hpp), which must stay within
// its buffers (ASan) and free of undefined behaviour (UBSan).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsv4/core/error.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/formats/weighted_quants.hpp"
#include "dsv4/io/imatrix.hpp"
#include "fuzz_util.hpp"

namespace {

constexpr const char* kLabel = "fuzz/imatrix.dat";

template <class F>
void quantize_with(const std::vector<float>& row, const std::vector<float>& qw) {
  std::vector<typename F::block_type> out(row.size() / F::block_elems);
  dsv4::weighted_quantize_row<F>(row.data(), qw.data(), static_cast<std::int64_t>(row.size()),
                                 out.data());
  dsv4::fuzz::keep(out.front());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dsv4::io::Imatrix im;
  try {
    im = dsv4::io::imatrix_from_bytes(dsv4::fuzz::to_bytes(data, size), kLabel);
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return 0;
  }
  dsv4::io::Imatrix kept = im;
  dsv4::io::filter_imatrix(kept, {}, {"ffn"});
  dsv4::io::filter_imatrix(im, {"blk.", "output"}, {});
  // a fixed row of 256 values; the importance from the first two entries, repeated to 256 values
  std::vector<float> row(256);
  for (std::size_t i = 0; i < row.size(); ++i) {
    row[i] = std::sin(static_cast<float>(i) * 0.7f) * static_cast<float>(1 + i % 5);
  }
  int used = 0;
  for (const auto& [name, values] : kept.entries) {
    if (values.empty() || used++ == 2) break;
    std::vector<float> qw(256);
    for (std::size_t i = 0; i < qw.size(); ++i) qw[i] = values[i % values.size()];
    quantize_with<dsv4::Q4_0>(row, qw);
    quantize_with<dsv4::Q4_1>(row, qw);
    quantize_with<dsv4::Q5_0>(row, qw);
    quantize_with<dsv4::Q5_1>(row, qw);
    quantize_with<dsv4::Q2_K>(row, qw);
    quantize_with<dsv4::Q3_K>(row, qw);
    quantize_with<dsv4::Q4_K>(row, qw);
    quantize_with<dsv4::Q5_K>(row, qw);
    quantize_with<dsv4::Q6_K>(row, qw);
    quantize_with<dsv4::IQ4_NL>(row, qw);
    quantize_with<dsv4::IQ4_XS>(row, qw);
  }
  return 0;
}
