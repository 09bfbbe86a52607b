// The smallest useful tinyloop program: one timer, run until it fires.
#include <cstdio>

#include "loop.hpp"

int main() {
  tinyloop::event_loop<> loop;
  if (!loop.after(std::chrono::milliseconds(1), [] { std::puts("fired"); })) return 1;
  return loop.run() == tinyloop::errc::ok ? 0 : 1;
}
