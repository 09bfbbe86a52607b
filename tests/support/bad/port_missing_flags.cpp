// Must not compile: a user port without the capability flags.
#include "loop.hpp"

#include <chrono>

struct my_port {
  using clock = std::chrono::steady_clock;
#if defined(TLTEST_GOOD)
  static constexpr bool has_fds = false;
  static constexpr bool has_signals = false;
  static constexpr bool interrupt_safe_wake = false;
#endif
  template <class Config>
  class backend {
   public:
    tinyloop::errc open() noexcept { return tinyloop::errc::ok; }
    void close() noexcept {}
    int last_errno() const noexcept { return 0; }
    void wake() noexcept {}
    template <class Sink>
    tinyloop::errc wait(clock::time_point, Sink&) noexcept {
      return tinyloop::errc::ok;
    }
  };
};

int main() {
  tinyloop::event_loop<my_port> loop;
  return loop.status() == tinyloop::errc::ok ? 0 : 1;
}
