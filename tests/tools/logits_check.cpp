// A helper of the command-line tests: reads logits that `dsv4 eval --out` wrote and compares them
// with golden logits.
//
//   logits_check tokens GOLDEN.safetensors OUT.i32
//       writes the golden file's "tokens" (int32) as raw little-endian int32 (--tokens-file)
//   logits_check top1 GOT.npy
//       prints the arg max of every row, separated by spaces
//   logits_check compare GOT(.npy|.f32) WANT(.safetensors KEY | .f32) [--first-row N]
//                [--vocab V] [--max X] [--mean X] [--median-pos-max X] [--top1 F]
//       compares rows first-row… of GOT with every row of WANT; prints the figures; exits 1 when
//       a bound is exceeded, 2 on bad input
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <dsv4/core/error.hpp>
#include <dsv4/io/npy.hpp>
#include <dsv4/io/safetensors.hpp>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

std::vector<float> read_raw_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw dsv4::InputError(path + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % 4 != 0) throw dsv4::FormatError(path + ": not a whole number of float32");
  std::vector<float> v(bytes.size() / 4);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(v.data()));
  return v;
}

/// Logits of a .npy file (its last dimension is the vocabulary) or a raw float32 file.
std::vector<float> read_logits(const std::string& path, std::size_t* vocab) {
  if (!ends_with(path, ".npy")) return read_raw_f32(path);
  auto a = dsv4::io::read_npy_f32(path);
  if (a.shape.size() != 2) throw dsv4::FormatError(path + ": expected a [T, vocab] array");
  if (*vocab == 0) *vocab = static_cast<std::size_t>(a.shape[1]);
  if (a.shape[1] != *vocab) throw dsv4::FormatError(path + ": vocabulary size differs");
  return std::move(a.values);
}

std::size_t argmax(const float* v, std::size_t n) {
  return static_cast<std::size_t>(std::max_element(v, v + n) - v);
}

int run(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "tokens") {
    const dsv4::io::SafetensorsFile f(args[1]);
    const auto t = f.span<std::int32_t>("tokens");
    std::ofstream out(args[2], std::ios::binary);
    out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.size() * 4));
    if (!out) throw dsv4::Error(args[2] + ": write failed");
    return 0;
  }
  if (args.size() == 2 && args[0] == "top1") {
    std::size_t vocab = 0;
    const auto v = read_logits(args[1], &vocab);
    for (std::size_t r = 0; r * vocab < v.size(); ++r) {
      fmt::print("{}{}", r ? " " : "", argmax(v.data() + r * vocab, vocab));
    }
    fmt::print("\n");
    return 0;
  }
  if (args.size() >= 3 && args[0] == "compare") {
    std::size_t i = 3;
    std::string key;
    if (ends_with(args[2], ".safetensors")) {
      if (args.size() < 4) throw dsv4::InputError("compare: a .safetensors file needs a KEY");
      key = args[3];
      i = 4;
    }
    std::size_t first = 0;
    std::size_t vocab = 0;
    double max_bound = INFINITY, mean_bound = INFINITY, median_bound = INFINITY, top1_min = 0;
    for (; i + 1 < args.size(); i += 2) {
      const std::string& o = args[i];
      const double x = std::stod(args[i + 1]);
      if (o == "--first-row")
        first = static_cast<std::size_t>(x);
      else if (o == "--vocab")
        vocab = static_cast<std::size_t>(x);
      else if (o == "--max")
        max_bound = x;
      else if (o == "--mean")
        mean_bound = x;
      else if (o == "--median-pos-max")
        median_bound = x;
      else if (o == "--top1")
        top1_min = x;
      else
        throw dsv4::InputError("compare: unknown option " + o);
    }
    if (i != args.size()) throw dsv4::InputError("compare: an option lacks its value");
    const auto got = read_logits(args[1], &vocab);
    if (vocab == 0) throw dsv4::InputError("compare: give --vocab for raw float32 logits");
    std::vector<float> want;
    if (key.empty()) {
      want = read_raw_f32(args[2]);
    } else {
      const dsv4::io::SafetensorsFile f(args[2]);
      const auto s = f.span<float>(key);
      want.assign(s.begin(), s.end());
    }
    const std::size_t rows = want.size() / vocab;
    if (rows == 0 || want.size() % vocab != 0 || (first + rows) * vocab > got.size()) {
      throw dsv4::ShapeError(fmt::format("compare: {} golden rows from row {} but {} rows given",
                                         want.size() / vocab, first, got.size() / vocab));
    }
    double max_abs = 0, sum = 0;
    std::size_t same = 0;
    std::vector<double> pos_max(rows, 0.0);
    for (std::size_t r = 0; r < rows; ++r) {
      const float* g = got.data() + (first + r) * vocab;
      const float* w = want.data() + r * vocab;
      for (std::size_t j = 0; j < vocab; ++j) {
        const double e = std::fabs(static_cast<double>(g[j]) - w[j]);
        pos_max[r] = std::max(pos_max[r], e);
        sum += e;
      }
      max_abs = std::max(max_abs, pos_max[r]);
      same += argmax(g, vocab) == argmax(w, vocab) ? 1 : 0;
    }
    std::nth_element(pos_max.begin(), pos_max.begin() + static_cast<std::ptrdiff_t>(rows / 2),
                     pos_max.end());
    const double median = pos_max[rows / 2];
    const double mean = sum / static_cast<double>(rows * vocab);
    const double top1 = static_cast<double>(same) / static_cast<double>(rows);
    fmt::print("{} rows: max {:.6g}, mean {:.6g}, median per-position max {:.6g}, top-1 {}/{}\n",
               rows, max_abs, mean, median, same, rows);
    const bool ok =
        max_abs <= max_bound && mean <= mean_bound && median <= median_bound && top1 >= top1_min;
    if (!ok) fmt::print("FAILED: a figure is outside its bound\n");
    return ok ? 0 : 1;
  }
  fmt::print(stderr, "usage: logits_check tokens|top1|compare ... (see the source)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "logits_check: {}\n", e.what());
    return 2;
  }
}
