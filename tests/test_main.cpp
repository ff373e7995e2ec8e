// The doctest main shared by every test executable. Two guards on top of doctest's own main, so
// that a CTest entry cannot pass without running anything:
//  * a run whose filters select no test case fails (doctest alone exits 0 with "test cases: 0"),
//    so `--test-case=NAME` for a name that matches nothing is an error;
//  * a test-case name that CTest or doctest's filters would not pass through intact (a ';' splits
//    it into two CTest tests; '*' '?' are filter wildcards; '[' ']' '\' change how CMake reads the
//    list of names or how doctest reads the filter) fails the run, including `--list-test-cases`,
//    the query with which CMake registers the cases, so such a name fails the build. (A ',' is
//    fine: doctest's CMake module escapes it in the filter.)
// Queries (--count, --list-test-cases, --list-test-suites, --help, --version) run no case and are
// not an error when they select none.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// What the listener saw of the run.
struct RunRecord {
  bool ran = false;  ///< test cases were run (not a query)
  unsigned selected = 0;
  std::vector<std::string> bad_names;
};

RunRecord& record() {
  static RunRecord r;
  return r;
}

/// Characters a test-case name must not contain (see the file comment).
constexpr std::string_view kReserved = ";*?[]\\";

void check_name(const char* name) {
  if (std::string_view(name).find_first_of(kReserved) != std::string_view::npos)
    record().bad_names.emplace_back(name);
}

struct SelectionGuard : doctest::IReporter {
  explicit SelectionGuard(const doctest::ContextOptions&) {}

  void report_query(const doctest::QueryData& q) override {
    for (unsigned i = 0; i < q.num_data; ++i) check_name(q.data[i]->m_name);
  }
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& s) override {
    record().ran = true;
    record().selected = s.numTestCasesPassingFilters;
  }
  void test_case_start(const doctest::TestCaseData& tc) override { check_name(tc.m_name); }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("dsv4_selection_guard", 0, SelectionGuard);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  const RunRecord& r = record();
  int status = result;
  for (const std::string& name : r.bad_names) {
    std::fprintf(stderr,
                 "error: test case \"%s\" has a character CTest or doctest filters treat "
                 "specially (one of ; * ? [ ] \\); rename it\n",
                 name.c_str());
    status = EXIT_FAILURE;
  }
  if (r.ran && r.selected == 0) {
    std::fprintf(stderr,
                 "error: the filters select no test case, so nothing was tested (check the "
                 "--test-case / --test-suite / --source-file arguments)\n");
    status = EXIT_FAILURE;
  }
  return status;
}
