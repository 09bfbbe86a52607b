// A freestanding test harness for the bare-metal tests: no exceptions, no heap, no stdio.
// Tests register themselves in a fixed array at static-initialization time (the reset handler
// runs .init_array); main() runs them in order and exits with the number that failed.
// Output goes through semihosting (QEMU's stderr), so UART0 stays free for the tests.
//
//   TL_TEST(timer_order) { ... TL_CHECK(a < b); TL_CHECK_EQ(x, 3); ... }
#pragma once

#include <cstddef>
#include <cstdint>

namespace tl_test {

using test_function = void (*)() noexcept;

void print(const char* text) noexcept;
void print_number(std::int64_t value) noexcept;
void fail(const char* file, int line, const char* what) noexcept;
void fail_eq(const char* file, int line, const char* what, std::int64_t lhs,
             std::int64_t rhs) noexcept;
bool add_test(const char* name, test_function function) noexcept;
int run_all() noexcept;  // prints one line per test and "N passed, N failed"

}  // namespace tl_test

#define TL_TEST(name)                                                                     \
  static void tl_test_##name() noexcept;                                                  \
  [[maybe_unused]] static const bool tl_test_registered_##name =                          \
      ::tl_test::add_test(#name, &tl_test_##name);                                        \
  static void tl_test_##name() noexcept

#define TL_CHECK(cond)                                  \
  do {                                                  \
    if (!(cond)) {                                      \
      ::tl_test::fail(__FILE__, __LINE__, #cond);       \
    }                                                   \
  } while (false)

#define TL_CHECK_EQ(lhs, rhs)                                                        \
  do {                                                                               \
    const auto tl_lhs = (lhs);                                                       \
    const auto tl_rhs = (rhs);                                                       \
    if (!(tl_lhs == tl_rhs)) {                                                       \
      ::tl_test::fail_eq(__FILE__, __LINE__, #lhs " == " #rhs,                       \
                         static_cast<std::int64_t>(tl_lhs),                          \
                         static_cast<std::int64_t>(tl_rhs));                         \
    }                                                                                \
  } while (false)

// Checks that stop the test at once (the test function returns).
#define TL_REQUIRE(cond)                                \
  do {                                                  \
    if (!(cond)) {                                      \
      ::tl_test::fail(__FILE__, __LINE__, #cond);       \
      return;                                           \
    }                                                   \
  } while (false)
