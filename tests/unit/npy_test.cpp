// NumPy .npy float32 arrays (include/dsv4/io/npy.hpp): the header numpy writes for version 1.0,
// a round trip of values and shape, atomic failure (no file left, the cause named) and the
// reader's errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <dsv4/io/npy.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

fs::path scratch_dir() {
  const fs::path d = fs::temp_directory_path() / ("dsv4_npy_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("npy: the version 1.0 header numpy writes for a float32 array of T rows and V columns") {
  const std::uint64_t shape[] = {3, 512};
  const std::string h = dsv4::io::npy_header(shape);
  REQUIRE(h.size() == 128);  // 10 lead bytes + the 61-byte dict, padded to 64-byte alignment
  CHECK(h.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  CHECK(static_cast<unsigned char>(h[8]) == 118);  // header length, little-endian uint16
  CHECK(h[9] == 0);
  CHECK(h.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 512), }") == 10);
  CHECK(h.back() == '\n');
  const std::uint64_t one[] = {7};
  CHECK(dsv4::io::npy_header(one).find("'shape': (7,), }") != std::string::npos);
}

TEST_CASE("npy: values and shape round trip through the file") {
  const fs::path dir = scratch_dir();
  const fs::path p = dir / "a.npy";
  std::vector<float> v(3 * 7);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 2.0f;
  v[5] = -0.0f;
  v[6] = 1e-30f;
  const std::uint64_t shape[] = {3, 7};
  dsv4::io::write_npy_f32(p, v, shape);
  const std::string bytes = slurp(p);
  REQUIRE(bytes.size() == 128 + v.size() * 4);
  CHECK(std::memcmp(bytes.data() + 128, v.data(), v.size() * 4) == 0);  // raw little-endian data
  const auto a = dsv4::io::read_npy_f32(p);
  CHECK(a.shape == std::vector<std::uint64_t>{3, 7});
  REQUIRE(a.values.size() == v.size());
  CHECK(std::memcmp(a.values.data(), v.data(), v.size() * 4) == 0);
  fs::remove_all(dir);
}

TEST_CASE("npy: a failed write leaves no file and names the cause") {
  const fs::path dir = scratch_dir();
  const std::vector<float> v(4, 1.0f);
  const std::uint64_t shape[] = {2, 2};
  try {
    dsv4::io::write_npy_f32(dir / "missing" / "x.npy", v, shape);
    FAIL("no error for a missing directory");
  } catch (const dsv4::Error& e) {
    CHECK(std::string(e.what()).find("No such file or directory") != std::string::npos);
  }
  CHECK(!fs::exists(dir / "missing"));
  const std::uint64_t wrong[] = {3, 2};
  CHECK_THROWS_AS(dsv4::io::write_npy_f32(dir / "y.npy", v, wrong), dsv4::ShapeError);
  CHECK(fs::is_empty(dir));  // neither the target nor a temporary file
  fs::remove_all(dir);
}

TEST_CASE("npy: the reader refuses other dtypes, orders and sizes") {
  const fs::path dir = scratch_dir();
  const fs::path p = dir / "b.npy";
  const std::vector<float> v(6, 2.0f);
  const std::uint64_t shape[] = {2, 3};
  dsv4::io::write_npy_f32(p, v, shape);
  const std::string good = slurp(p);
  auto expect_format_error = [&](std::string bytes, const char* what) {
    CAPTURE(what);
    spit(p, bytes);
    CHECK_THROWS_AS(dsv4::io::read_npy_f32(p), dsv4::FormatError);
  };
  std::string s = good;
  s[1] = 'X';
  expect_format_error(s, "magic");
  s = good;
  s.replace(s.find("<f4"), 3, "<f8");
  expect_format_error(s, "dtype");
  s = good;
  s.replace(s.find("False"), 5, "True ");
  expect_format_error(s, "fortran order");
  expect_format_error(good.substr(0, good.size() - 4), "truncated data");
  expect_format_error(good + "xxxx", "trailing bytes");
  expect_format_error(good.substr(0, 20), "truncated header");
  CHECK_THROWS_AS(dsv4::io::read_npy_f32(dir / "none.npy"), dsv4::InputError);
  fs::remove_all(dir);
}
