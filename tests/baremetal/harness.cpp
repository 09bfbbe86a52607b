#include "harness.hpp"

#include "semihosting.hpp"

namespace tl_test {
namespace {

struct test_case {
  const char* name;
  test_function function;
};

constexpr std::size_t max_tests = 64;
test_case tests[max_tests];
std::size_t test_count = 0;
bool registry_overflow = false;
int current_failures = 0;

}  // namespace

void print(const char* text) noexcept { tinyloop::semihosting::write(text); }

void print_number(std::int64_t value) noexcept {
  char text[24];
  char* p = text + sizeof text;
  *--p = '\0';
  const bool negative = value < 0;
  // Work on the magnitude as unsigned so INT64_MIN does not overflow.
  std::uint64_t magnitude =
      negative ? ~static_cast<std::uint64_t>(value) + 1 : static_cast<std::uint64_t>(value);
  do {
    *--p = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (negative) {
    *--p = '-';
  }
  print(p);
}

static void print_location(const char* file, int line) noexcept {
  print("  ");
  print(file);
  print(":");
  print_number(line);
  print(": ");
}

void fail(const char* file, int line, const char* what) noexcept {
  ++current_failures;
  print_location(file, line);
  print("check failed: ");
  print(what);
  print("\n");
}

void fail_eq(const char* file, int line, const char* what, std::int64_t lhs,
             std::int64_t rhs) noexcept {
  ++current_failures;
  print_location(file, line);
  print("check failed: ");
  print(what);
  print(" (");
  print_number(lhs);
  print(" vs ");
  print_number(rhs);
  print(")\n");
}

bool add_test(const char* name, test_function function) noexcept {
  if (test_count == max_tests) {
    registry_overflow = true;
    return false;
  }
  tests[test_count++] = test_case{name, function};
  return true;
}

int run_all() noexcept {
  int passed = 0;
  int failed = 0;
  if (test_count == 0) {
    print("harness: no tests registered\n");
    ++failed;
  }
  if (registry_overflow) {
    print("harness: more tests than tl_test::max_tests; raise it\n");
    ++failed;
  }
  for (std::size_t i = 0; i < test_count; ++i) {
    print("[ RUN  ] ");
    print(tests[i].name);
    print("\n");
    current_failures = 0;
    tests[i].function();
    if (current_failures == 0) {
      ++passed;
      print("[   OK ] ");
    } else {
      ++failed;
      print("[ FAIL ] ");
    }
    print(tests[i].name);
    print("\n");
  }
  print_number(passed);
  print(" passed, ");
  print_number(failed);
  print(" failed\n");
  return failed;
}

}  // namespace tl_test

int main() { return tl_test::run_all(); }
