// Counting every heap allocation of the test process, for the "no allocation after construction"
// tests (tests/alloc.cpp, tests/worker_pool.cpp). Link tests/support/alloc_counter.cpp into the
// test program: it interposes malloc, calloc, realloc and the aligned allocators (forwarding to
// glibc's __libc_* entry points) and replaces every operator new. Under ASan/TSan, which own
// malloc, it counts through the sanitizers' malloc hook instead.
//
// Counting is process-wide: start it after the objects under test, and the threads that will run,
// exist (std::thread allocates when it starts), and stop it before they are joined.
#pragma once

namespace tltest {

struct allocations {
  // False where this process cannot count (not glibc and no sanitizer hook, or running under
  // valgrind): tests must skip then, saying why_not_countable().
  static bool countable() noexcept;
  static const char* why_not_countable() noexcept;  // nullptr when countable
  // Zeroes the count and starts counting.
  static void start() noexcept;
  // Stops counting; returns the allocations counted since start().
  static long stop() noexcept;
  // Makes one malloc and one operator new (through calls the compiler cannot elide) while counting
  // is on, and returns how many the counter saw: at least 2, or a test built on it proves nothing.
  static long self_test() noexcept;
};

// Counts allocations made while it is alive (stop() ends early and returns the count).
class allocation_counter {
 public:
  allocation_counter() noexcept { allocations::start(); }
  ~allocation_counter() { (void)allocations::stop(); }
  allocation_counter(const allocation_counter&) = delete;
  allocation_counter& operator=(const allocation_counter&) = delete;
  long stop() noexcept { return allocations::stop(); }
};

}  // namespace tltest
