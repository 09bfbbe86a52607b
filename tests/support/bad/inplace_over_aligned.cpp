// Must not compile: a callable aligned more strictly than the inline storage.
#include "loop.hpp"

#include <cstddef>

struct
#if !defined(TLTEST_GOOD)
    alignas(2 * alignof(std::max_align_t))
#endif
        over_aligned {
  int value = 1;
  int operator()() const { return value; }
};

int main() {
  tinyloop::inplace_function<int(), 8 * alignof(std::max_align_t)> f(over_aligned{});
  return f();
}
