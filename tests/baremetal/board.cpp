// The mps2-an385 Board on its own, without an event loop: clock, wait/wake, soft device, UART.
#include "board.hpp"

#include <atomic>
#include <chrono>

#include "dualtimer.hpp"
#include "harness.hpp"

using board = tinyloop::boards::mps2_an385;
using clock_type = board::clock;
using namespace std::chrono_literals;

namespace {

enum class dualtimer_action { none, wake, raise_soft_device };
std::atomic<dualtimer_action> on_dualtimer{dualtimer_action::none};
std::atomic<int> dualtimer_fired{0};

}  // namespace

extern "C" void DUALTIMER_IRQHandler() noexcept {
  tl_test::dualtimer::clear();
  dualtimer_fired.fetch_add(1, std::memory_order_relaxed);
  switch (on_dualtimer.load(std::memory_order_relaxed)) {
    case dualtimer_action::wake:
      board::wake();
      break;
    case dualtimer_action::raise_soft_device:
      board::soft_device_raise(tinyloop::events::read);
      break;
    case dualtimer_action::none:
      break;
  }
}

TL_TEST(clock_is_monotonic) {
  board::init();
  clock_type::time_point previous = clock_type::now();
  const clock_type::time_point start = previous;
  for (int i = 0; i < 20000; ++i) {
    const clock_type::time_point t = clock_type::now();
    TL_CHECK(t >= previous);
    previous = t;
  }
  TL_CHECK(previous > start);
}

TL_TEST(clock_is_monotonic_across_timer0_wrap) {
  board::init();
  auto& timer0_value = *reinterpret_cast<volatile std::uint32_t*>(0x40000004u);
  for (int wrap = 0; wrap < 3; ++wrap) {
    const clock_type::time_point before = clock_type::now();
    timer0_value = 2500;  // 100 us before the counter wraps: the clock jumps ahead (~172 s)
    clock_type::time_point previous = clock_type::now();
    TL_CHECK(previous >= before);
    const clock_type::time_point until = previous + 2ms;
    while (previous < until) {
      const clock_type::time_point t = clock_type::now();
      TL_CHECK(t >= previous);
      previous = t;
    }
    // The VALUE write skipped the rest of the 32-bit period, and the wrap was counted once:
    // the clock moved to the next period, 100 us before which the 2 ms spin began.
    const std::int64_t period = 0x1'0000'0000ll;
    const clock_type::duration next_period((before.time_since_epoch().count() / period + 1) *
                                           period);
    TL_CHECK(previous.time_since_epoch() >= next_period + 1900us);
    TL_CHECK(previous.time_since_epoch() < next_period + 10s);
  }
}

TL_TEST(wait_min_returns_at_once) {
  board::init();
  board::wait(clock_type::time_point::min());
}

TL_TEST(wait_past_deadline_returns_at_once) {
  board::init();
  board::wait(clock_type::now() - 1ms);
}

TL_TEST(wake_before_wait_makes_it_return) {
  board::init();
  board::wake();
  board::wait(clock_type::time_point::max());  // would hang (timeout) if the wake were lost
}

TL_TEST(wait_reaches_deadline_never_early) {
  board::init();
  const clock_type::time_point deadline = clock_type::now() + 30ms;
  int waits = 0;
  // Other interrupts (UART TX) may end a wait early; the caller waits again, as the loop does.
  while (clock_type::now() < deadline) {
    board::wait(deadline);
    ++waits;
  }
  TL_CHECK(clock_type::now() >= deadline);
  TL_CHECK(waits >= 1);
}

TL_TEST(interrupt_wake_ends_untimed_wait) {
  board::init();
  dualtimer_fired.store(0);
  on_dualtimer.store(dualtimer_action::wake);
  tl_test::dualtimer::start_oneshot(10 * tl_test::dualtimer::ticks_per_ms);
  while (dualtimer_fired.load() == 0) {
    board::wait(clock_type::time_point::max());
  }
  tl_test::dualtimer::stop();
  on_dualtimer.store(dualtimer_action::none);
  TL_CHECK_EQ(dualtimer_fired.load(), 1);
}

TL_TEST(soft_device_readiness_follows_raise_and_clear) {
  board::init();
  board::soft_device_clear(tinyloop::events::read | tinyloop::events::write);
  TL_CHECK(board::poll(board::soft_device) == tinyloop::events::none);
  const std::uint32_t before = board::soft_device_interrupts();
  board::soft_device_raise(tinyloop::events::read);
  // Pending IRQ 31 is taken as soon as interrupts are enabled (they are).
  TL_CHECK_EQ(board::soft_device_interrupts(), before + 1);
  TL_CHECK(board::poll(board::soft_device) == tinyloop::events::read);
  TL_CHECK(board::poll(board::soft_device) == tinyloop::events::read);  // level
  board::soft_device_clear(tinyloop::events::read);
  TL_CHECK(board::poll(board::soft_device) == tinyloop::events::none);
  board::wait(clock_type::time_point::min());  // consume the handler's wake
}

TL_TEST(soft_device_interrupt_during_wait_wakes_it) {
  board::init();
  board::soft_device_clear(tinyloop::events::read);
  board::wait(clock_type::time_point::min());
  on_dualtimer.store(dualtimer_action::raise_soft_device);
  tl_test::dualtimer::start_oneshot(5 * tl_test::dualtimer::ticks_per_ms);
  while (board::poll(board::soft_device) == tinyloop::events::none) {
    board::wait(clock_type::time_point::max());
  }
  tl_test::dualtimer::stop();
  on_dualtimer.store(dualtimer_action::none);
  TL_CHECK(board::poll(board::soft_device) == tinyloop::events::read);
  board::soft_device_clear(tinyloop::events::read);
}

TL_TEST(unknown_device_is_never_ready) {
  board::init();
  TL_CHECK(board::poll(-1) == tinyloop::events::none);
  TL_CHECK(board::poll(7) == tinyloop::events::none);
}

TL_TEST(uart_is_writable_and_writes) {
  board::init();
  TL_CHECK(tinyloop::any(board::poll(board::uart0) & tinyloop::events::write));
  board::uart_write("uart0: hello from the board test\n");
  TL_CHECK(tinyloop::any(board::poll(board::uart0) & tinyloop::events::write));
}
