// Reads a raw float32 logits file [rows][cols] (what `dsv4 eval --out` writes), checks its size
// and that every value is finite, and prints the top-1 id of every row. Options:
//   --want FILE MAX_ABS   FILE has the same shape and no value differs by more than MAX_ABS
//   --top1 ID,ID,...      the first rows' top-1 ids are these
//   compare_f32 GOT ROWS COLS [--want FILE MAX_ABS] [--top1 IDS]
// Exit status 0 when every check holds, 1 otherwise (with one line naming the problem).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

bool read_f32(const char* path, std::size_t count, std::vector<float>& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "compare_f32: %s: cannot open\n", path);
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
  if (bytes.size() != count * sizeof(float)) {
    std::fprintf(stderr, "compare_f32: %s: %zu bytes, expected %zu (%zu float32 values)\n", path,
                 bytes.size(), count * sizeof(float), count);
    return false;
  }
  out.resize(count);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(out.data()));
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(out[i])) {
      std::fprintf(stderr, "compare_f32: %s: value %zu is not finite\n", path, i);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: compare_f32 GOT ROWS COLS [--want FILE MAX_ABS] [--top1 IDS]\n");
    return 1;
  }
  const char* want_path = nullptr;
  double bound = 0;
  std::vector<long> want_top1;
  for (int i = 4; i < argc; ++i) {
    if (std::strcmp(argv[i], "--want") == 0 && i + 2 < argc) {
      want_path = argv[i + 1];
      bound = std::strtod(argv[i + 2], nullptr);
      i += 2;
    } else if (std::strcmp(argv[i], "--top1") == 0 && i + 1 < argc) {
      for (const char* p = argv[++i]; *p != '\0';) {
        char* end = nullptr;
        want_top1.push_back(std::strtol(p, &end, 10));
        if (end == p) {
          std::fprintf(stderr, "compare_f32: --top1 %s: not a list of ids\n", argv[i]);
          return 1;
        }
        p = *end == ',' ? end + 1 : end;
      }
    } else {
      std::fprintf(stderr, "compare_f32: unexpected argument %s\n", argv[i]);
      return 1;
    }
  }
  const auto rows = static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10));
  const auto cols = static_cast<std::size_t>(std::strtoull(argv[3], nullptr, 10));
  if (rows == 0 || cols == 0 || want_top1.size() > rows) {
    std::fprintf(stderr, "compare_f32: ROWS and COLS must be positive, with at most ROWS ids\n");
    return 1;
  }
  std::vector<float> got;
  if (!read_f32(argv[1], rows * cols, got)) return 1;
  std::vector<long> top1(rows);
  std::printf("top-1:");
  for (std::size_t r = 0; r < rows; ++r) {
    const auto row = got.begin() + static_cast<std::ptrdiff_t>(r * cols);
    top1[r] = std::max_element(row, row + static_cast<std::ptrdiff_t>(cols)) - row;
    std::printf(" %ld", top1[r]);
  }
  std::printf("\n");
  for (std::size_t r = 0; r < want_top1.size(); ++r) {
    if (top1[r] != want_top1[r]) {
      std::fprintf(stderr, "compare_f32: %s: row %zu has top-1 %ld, expected %ld\n", argv[1], r,
                   top1[r], want_top1[r]);
      return 1;
    }
  }
  if (want_path == nullptr) return 0;
  std::vector<float> want;
  if (!read_f32(want_path, rows * cols, want)) return 1;
  double max_abs = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(got[i]) - want[i]));
  std::printf("max |difference| %.3g (bound %.3g)\n", max_abs, bound);
  if (!(max_abs <= bound)) {
    std::fprintf(stderr, "compare_f32: %s differs from %s by %.3g, more than %.3g\n", argv[1],
                 want_path, max_abs, bound);
    return 1;
  }
  return 0;
}
