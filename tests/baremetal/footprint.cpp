// Footprint: a minimal bare-metal program that uses the loop for a periodic timer and a post().
// Built at -Os; footprint_baseline.cpp does the same job without the loop, so the difference in
// arm-none-eabi-size is the loop's code (CTest baremetal.footprint prints both).
#include <chrono>
#include <cstdint>

#include "board.hpp"

using loop_type = tinyloop::event_loop<tinyloop::boards::mps2_an385_port>;

// Publishes sizeof(loop_type) as the value of an absolute symbol, which arm-none-eabi-nm shows;
// the directive emits no code or data.
#define TINYLOOP_PUBLISH_CONSTANT(name, value) asm(".globl " #name "\n\t.set " #name ", %c0" ::"i"(value))

int main() {
  TINYLOOP_PUBLISH_CONSTANT(tinyloop_sizeof_event_loop_default_config, sizeof(loop_type));
  static loop_type loop;  // static: sizeof shows in .bss, not on the stack
  struct state {
    int ticks = 0;
    int posted = 0;
  };
  static state s;
  const auto timer = loop.every(std::chrono::milliseconds(1), [] {
    if (++s.ticks == 10) {
      loop.stop();
      return;
    }
    (void)loop.post([] { ++s.posted; });
  });
  if (!timer) return 1;
  (void)loop.run();
  return s.ticks == 10 && s.posted == 9 ? 0 : 2;
}
