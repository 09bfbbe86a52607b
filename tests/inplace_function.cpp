// inplace_function: invocation, move-only ownership, exactly-once destruction, capacity limits.
// Programs that must not compile (too big, over-aligned, throwing move, ignored result) are in
// tests/support/bad/ and run by CTest as compile_fail.*; allocation-freedom is checked in alloc.cpp.
#include "loop.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace {

constexpr std::size_t bytes = 4 * sizeof(void*);
using fn = tinyloop::inplace_function<void(), bytes>;
using int_fn = tinyloop::inplace_function<int(int, int), bytes>;

static_assert(!std::is_copy_constructible_v<fn>, "move-only");
static_assert(!std::is_copy_assignable_v<fn>, "move-only");
static_assert(std::is_nothrow_move_constructible_v<fn>);
static_assert(std::is_nothrow_move_assignable_v<fn>);
static_assert(std::is_nothrow_default_constructible_v<fn>);
static_assert(!std::is_convertible_v<fn, bool>, "operator bool is explicit");

// Counts the lives of a callable: constructions, destructions of live (not moved-from) instances.
struct life {
  int* destroyed;
  int* calls;
  bool live = true;
  life(int* d, int* c) noexcept : destroyed(d), calls(c) {}
  life(life&& o) noexcept : destroyed(o.destroyed), calls(o.calls), live(o.live) { o.live = false; }
  life(const life&) = delete;
  life& operator=(life&&) = delete;
  ~life() {
    if (live) ++*destroyed;
  }
  void operator()() { ++*calls; }
};

TEST(inplace_function, default_constructed_is_empty) {
  fn f;
  EXPECT_FALSE(f);
  fn g(nullptr);
  EXPECT_FALSE(g);
}

TEST(inplace_function, invokes_with_arguments_and_result) {
  int_fn add([](int a, int b) { return a + b; });
  ASSERT_TRUE(add);
  EXPECT_EQ(add(2, 3), 5);
}

TEST(inplace_function, mutable_state_persists_between_calls) {
  tinyloop::inplace_function<int(), bytes> counter([n = 0]() mutable { return ++n; });
  EXPECT_EQ(counter(), 1);
  EXPECT_EQ(counter(), 2);
  EXPECT_EQ(counter(), 3);
}

TEST(inplace_function, holds_function_pointer) {
  struct s {
    static int twice(int x, int y) { return 2 * (x + y); }
  };
  int_fn f(&s::twice);
  EXPECT_EQ(f(1, 2), 6);
}

TEST(inplace_function, null_function_pointer_is_empty) {
  int (*p)(int, int) = nullptr;
  int_fn f(p);
  EXPECT_FALSE(f);
}

TEST(inplace_function, callable_of_exactly_capacity_fits) {
  struct exact {
    unsigned char bytes_[bytes];
    int operator()() const { return bytes_[0] + bytes_[bytes - 1]; }
  };
  static_assert(sizeof(exact) == bytes);
  exact e{};
  e.bytes_[0] = 1;
  e.bytes_[bytes - 1] = 2;
  tinyloop::inplace_function<int(), bytes> f(e);
  EXPECT_EQ(f(), 3);
}

TEST(inplace_function, move_only_captures_are_accepted) {
  auto owned = std::make_unique<int>(7);
  tinyloop::inplace_function<int(), bytes> f([p = std::move(owned)] { return *p; });
  EXPECT_EQ(f(), 7);
}

TEST(inplace_function, move_construction_transfers_the_callable) {
  int destroyed = 0, calls = 0;
  {
    fn a(life(&destroyed, &calls));
    fn b(std::move(a));
    EXPECT_TRUE(b);
    b();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 1) << "the callable is destroyed exactly once";
}

TEST(inplace_function, move_assignment_destroys_the_previous_target) {
  int destroyed_a = 0, destroyed_b = 0, calls = 0;
  {
    fn a(life(&destroyed_a, &calls));
    fn b(life(&destroyed_b, &calls));
    a = std::move(b);
    EXPECT_EQ(destroyed_a, 1) << "the overwritten target is destroyed at once";
    EXPECT_EQ(destroyed_b, 0);
    a();
    EXPECT_EQ(calls, 1);
  }
  EXPECT_EQ(destroyed_a, 1);
  EXPECT_EQ(destroyed_b, 1);
}

TEST(inplace_function, self_move_assignment_keeps_the_target) {
  int destroyed = 0, calls = 0;
  {
    fn a(life(&destroyed, &calls));
    fn& alias = a;
    a = std::move(alias);
    EXPECT_TRUE(a);
    a();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(inplace_function, assigning_null_destroys_the_target) {
  int destroyed = 0, calls = 0;
  fn a(life(&destroyed, &calls));
  a = nullptr;
  EXPECT_FALSE(a);
  EXPECT_EQ(destroyed, 1);
}

TEST(inplace_function, moving_from_empty_gives_empty) {
  fn a;
  fn b(std::move(a));
  EXPECT_FALSE(b);
}

TEST(inplace_function, chain_of_moves_destroys_once) {
  int destroyed = 0, calls = 0;
  {
    fn a(life(&destroyed, &calls));
    fn b(std::move(a));
    fn c(std::move(b));
    fn d;
    d = std::move(c);
    d();
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(calls, 1);
}

TEST(inplace_function, argument_types_are_forwarded) {
  tinyloop::inplace_function<std::size_t(std::string&&), bytes> take([](std::string&& s) {
    std::string mine = std::move(s);
    return mine.size();
  });
  std::string s = "a string longer than any small-string buffer, to see a real move";
  const std::size_t n = s.size();
  EXPECT_EQ(take(std::move(s)), n);
}

TEST(inplace_function, small_capacity_works) {
  tinyloop::inplace_function<int(), sizeof(int)> f([x = 5] { return x; });
  EXPECT_EQ(f(), 5);
}

}  // namespace
