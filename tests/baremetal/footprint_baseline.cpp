// Footprint baseline: footprint.cpp's job (ten 1 ms ticks, nine deferred calls) done by hand with
// the same board functions and no loop. See footprint.cpp.
#include <chrono>

#include "board.hpp"

using board = tinyloop::boards::mps2_an385;

int main() {
  board::init();
  static int ticks = 0;
  static int posted = 0;
  const board::clock::duration period = std::chrono::milliseconds(1);
  board::clock::time_point next = board::clock::now() + period;
  for (;;) {
    if (board::clock::now() < next) {
      board::wait(next);
      continue;
    }
    next += period;
    if (++ticks == 10) break;
    ++posted;
    board::wake();
  }
  return ticks == 10 && posted == 9 ? 0 : 2;
}
