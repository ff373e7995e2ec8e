// Test cases for the checks of the shared test main (tests/CMakeLists.txt runs this executable with
// filters and expects the main's refusals); its cases are not registered with CTest one by one.
#include <doctest/doctest.h>

#include <string>

TEST_CASE("guard: a plain name") { CHECK(std::string("a") + "b" == "ab"); }

TEST_CASE("guard: a name; with a semicolon") { CHECK(std::string("a") + "b" == "ab"); }
