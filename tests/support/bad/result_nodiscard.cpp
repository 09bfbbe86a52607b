// Must not compile with -Werror: discarding a result<T> (it may hold an error).
#include "loop.hpp"

tinyloop::result<int> make() { return tinyloop::errc::full; }

int main() {
#if defined(TLTEST_GOOD)
  return make().ok() ? 0 : 1;
#else
  make();
  return 0;
#endif
}
