// Compile-only check (CTest baremetal.core_freestanding.*): the core of loop.hpp, instantiated
// with a minimal Board, builds with arm-none-eabi-g++ -ffreestanding -fno-exceptions -fno-rtti
// at -Wall -Wextra -Wpedantic -Werror. No board headers, no startup code: only loop.hpp.
#include "loop.hpp"

#include <chrono>
#include <cstdint>

namespace {

struct minimal_board {
  struct clock {
    using rep = std::int64_t;
    using period = std::micro;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<clock, duration>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept { return time_point(duration(ticks)); }
  };
  static inline volatile std::int64_t ticks = 0;
  static void init() noexcept {}
  static void wait(clock::time_point deadline) noexcept {
    if (deadline != clock::time_point::max()) ticks = deadline.time_since_epoch().count();
  }
  static void wake() noexcept {}
  static tinyloop::events poll(int device) noexcept {
    return device == 0 ? tinyloop::events::read : tinyloop::events::none;
  }
};

using loop_type = tinyloop::event_loop<tinyloop::baremetal_port<minimal_board>>;

}  // namespace

// Every member of the public API, so every template is instantiated.
int exercise_the_core() noexcept {
  static loop_type loop;
  int count = 0;
  if (loop.status() != tinyloop::errc::ok) return -1;
  const auto source = loop.add(0, tinyloop::events::read, [&count](tinyloop::events ev) {
    count += tinyloop::any(ev & tinyloop::events::read) ? 1 : 0;
  });
  if (source) {
    (void)loop.modify(source.value(), tinyloop::events::read | tinyloop::events::write);
  }
  const auto once = loop.after(std::chrono::milliseconds(5), [&count] { ++count; });
  const auto periodic = loop.every(std::chrono::seconds(1), [&count] { ++count; });
  (void)loop.at(loop.now() + std::chrono::microseconds(10), [&count] { ++count; });
  (void)loop.post([&count] { ++count; });
  (void)loop.watch_signal(2, [&count](int) { ++count; });
  (void)loop.unwatch_signal(2);
  loop.wake();
  (void)loop.poll();
  (void)loop.run_once();
  if (once) (void)loop.cancel(once.value());
  if (periodic) (void)loop.cancel(periodic.value());
  if (source) (void)loop.remove(source.value());
  loop.stop();
  (void)loop.run();
  count += static_cast<int>(loop.pending_timers() + loop.active_sources());
  return count + (tinyloop::to_string(tinyloop::errc::full)[0] == 'f' ? 1 : 0);
}
