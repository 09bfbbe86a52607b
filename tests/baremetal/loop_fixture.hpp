// What the loop tests share: the loop type on this board and small helpers.
#pragma once

#include <chrono>
#include <cstdint>

#include "board.hpp"
#include "loop.hpp"

namespace tl_test {

using board = tinyloop::boards::mps2_an385;
using port = tinyloop::boards::mps2_an385_port;
using loop_type = tinyloop::event_loop<port>;
using clock_type = board::clock;

// Small capacities, so the errc::full paths are quick to reach.
struct small_config : tinyloop::default_config {
  static constexpr std::size_t max_sources = 2;
  static constexpr std::size_t max_timers = 2;
  static constexpr std::size_t post_capacity = 4;
};
using small_loop_type = tinyloop::event_loop<port, small_config>;

// Spins (no sleep) until the board clock has moved by `d`.
template <class Rep, class Period>
inline void busy_wait(std::chrono::duration<Rep, Period> d) noexcept {
  const clock_type::time_point until = clock_type::now() + d;
  while (clock_type::now() < until) {
  }
}

}  // namespace tl_test
