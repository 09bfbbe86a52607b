// Must not compile: a callable whose move constructor may throw.
#include "loop.hpp"

struct throwing_move {
  throwing_move() = default;
#if defined(TLTEST_GOOD)
  throwing_move(throwing_move&&) noexcept {}
#else
  throwing_move(throwing_move&&) {}
#endif
  int operator()() const { return 0; }
};

int main() {
  tinyloop::inplace_function<int(), 4 * sizeof(void*)> f(throwing_move{});
  return f();
}
