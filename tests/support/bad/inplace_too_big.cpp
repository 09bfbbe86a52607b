// Must not compile: a lambda whose captures exceed the callback's inline storage.
// With -DTLTEST_GOOD the captures fit and it compiles.
#include "loop.hpp"

int main() {
#if defined(TLTEST_GOOD)
  char big[16] = {};
#else
  char big[64 + 4 * sizeof(void*)] = {};
#endif
  tinyloop::inplace_function<int(), 4 * sizeof(void*)> f([big] { return static_cast<int>(big[0]); });
  return f();
}
