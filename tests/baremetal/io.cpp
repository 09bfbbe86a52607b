// Device channels on the bare-metal port: the board's soft device (readiness set by an interrupt
// handler) and UART0's write readiness; add/modify/remove and capacity.
#include <atomic>
#include <chrono>

#include "dualtimer.hpp"
#include "harness.hpp"
#include "loop_fixture.hpp"

using namespace std::chrono_literals;
using namespace tl_test;
using tinyloop::errc;
using tinyloop::events;

namespace {

std::atomic<events> raise_on_dualtimer{events::none};

void raise_soft_device_in(std::chrono::milliseconds delay, events ev) noexcept {
  raise_on_dualtimer.store(ev);
  tl_test::dualtimer::start_oneshot(static_cast<std::uint32_t>(delay.count()) *
                                    tl_test::dualtimer::ticks_per_ms);
}

void reset_soft_device() noexcept {
  tl_test::dualtimer::stop();
  board::soft_device_clear(events::read | events::write | events::error | events::hangup);
}

struct io_log {
  int calls = 0;
  events last = events::none;
};

}  // namespace

extern "C" void DUALTIMER_IRQHandler() noexcept {
  tl_test::dualtimer::clear();
  tl_test::dualtimer::stop();
  board::soft_device_raise(raise_on_dualtimer.load(std::memory_order_relaxed));
}

TL_TEST(device_made_ready_by_an_interrupt_runs_its_callback) {
  reset_soft_device();
  loop_type loop;
  io_log log;
  struct state {
    loop_type* loop;
    io_log* log;
    tinyloop::source_id id;
  } s{&loop, &log, {}};
  const auto r = loop.add(board::soft_device, events::read, [&s](events ev) {
    ++s.log->calls;
    s.log->last = ev;
    board::soft_device_clear(events::read);  // the driver consumes the data
    TL_CHECK(s.loop->remove(s.id) == errc::ok);
  });
  TL_REQUIRE(r.ok());
  s.id = r.value();
  TL_CHECK_EQ(loop.active_sources(), 1u);
  raise_soft_device_in(5ms, events::read);
  TL_CHECK(loop.run() == errc::ok);  // sleeps until the interrupt; returns once removed
  TL_CHECK_EQ(log.calls, 1);
  TL_CHECK(log.last == events::read);
  TL_CHECK_EQ(loop.active_sources(), 0u);
  reset_soft_device();
}

TL_TEST(device_readiness_is_filtered_by_interest_but_error_always_reported) {
  reset_soft_device();
  loop_type loop;
  io_log log;
  const auto r = loop.add(board::soft_device, events::read, [&log](events ev) {
    ++log.calls;
    log.last = ev;
  });
  TL_REQUIRE(r.ok());
  board::soft_device_raise(events::write);  // not interesting
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(log.calls, 0);
  board::soft_device_raise(events::error);
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(log.calls, 1);
  TL_CHECK(log.last == events::error);
  TL_CHECK(loop.remove(r.value()) == errc::ok);
  reset_soft_device();
}

TL_TEST(paused_device_is_not_reported_until_resumed) {
  reset_soft_device();
  loop_type loop;
  io_log log;
  const auto r = loop.add(board::soft_device, events::read, [&log](events ev) {
    ++log.calls;
    log.last = ev;
    board::soft_device_clear(events::read);
  });
  TL_REQUIRE(r.ok());
  TL_CHECK(loop.modify(r.value(), events::none) == errc::ok);
  board::soft_device_raise(events::read);
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(log.calls, 0);
  TL_CHECK(loop.modify(r.value(), events::read) == errc::ok);
  TL_CHECK(loop.run_once() == errc::ok);
  TL_CHECK_EQ(log.calls, 1);
  TL_CHECK(loop.remove(r.value()) == errc::ok);
  TL_CHECK(loop.remove(r.value()) == errc::not_found);
  TL_CHECK(loop.modify(r.value(), events::read) == errc::not_found);
  reset_soft_device();
}

TL_TEST(removed_device_is_never_reported_and_can_be_added_again) {
  reset_soft_device();
  loop_type loop;
  io_log log;
  const auto r = loop.add(board::soft_device, events::read, [&log](events) { ++log.calls; });
  TL_REQUIRE(r.ok());
  board::soft_device_raise(events::read);
  TL_CHECK(loop.remove(r.value()) == errc::ok);
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(log.calls, 0);
  io_log again;
  const auto r2 = loop.add(board::soft_device, events::read, [&again](events) { ++again.calls; });
  TL_REQUIRE(r2.ok());
  TL_CHECK(r2.value() != r.value());
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(again.calls, 1);  // still ready (level), reported to the new registration
  TL_CHECK_EQ(log.calls, 0);
  TL_CHECK(loop.remove(r2.value()) == errc::ok);
  reset_soft_device();
}

TL_TEST(uart_write_readiness_runs_the_callback) {
  loop_type loop;
  struct writer {
    loop_type* loop;
    tinyloop::source_id id;
    const char* text;
    int calls;
  } w{&loop, {}, "uart0: written from a write-readiness callback\n", 0};
  const auto r = loop.add(board::uart0, events::write, [&w](events ev) {
    ++w.calls;
    TL_CHECK(tinyloop::any(ev & events::write));
    while (*w.text != '\0' && board::uart_try_write(*w.text)) {
      ++w.text;
    }
    if (*w.text == '\0') {
      TL_CHECK(w.loop->remove(w.id) == errc::ok);
    }
  });
  TL_REQUIRE(r.ok());
  w.id = r.value();
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK(w.calls >= 1);
  TL_CHECK(*w.text == '\0');
}

TL_TEST(add_rejects_bad_arguments_duplicates_and_overflow) {
  reset_soft_device();
  small_loop_type loop;  // max_sources = 2
  auto nop = [](events) {};
  TL_CHECK(loop.add(-1, events::read, nop).error() == errc::invalid_argument);
  TL_CHECK(loop.add(board::soft_device, events::none, nop).error() == errc::invalid_argument);
  TL_CHECK(loop.add(board::soft_device, events::read, small_loop_type::io_callback{}).error() ==
           errc::invalid_argument);
  const auto a = loop.add(board::soft_device, events::read, nop);
  TL_REQUIRE(a.ok());
  TL_CHECK(loop.add(board::soft_device, events::write, nop).error() == errc::already_exists);
  const auto b = loop.add(5, events::read, nop);  // a channel the board does not know: never ready
  TL_REQUIRE(b.ok());
  int rejected = 0;
  const auto c = loop.add(6, events::read, [&rejected](events) { ++rejected; });
  TL_CHECK(!c.ok());
  TL_CHECK(c.error() == errc::full);
  TL_CHECK_EQ(loop.active_sources(), 2u);
  // The registered ones still work.
  int calls = 0;
  TL_CHECK(loop.remove(a.value()) == errc::ok);
  const auto d = loop.add(board::soft_device, events::read, [&calls](events) { ++calls; });
  TL_REQUIRE(d.ok());
  board::soft_device_raise(events::read);
  TL_CHECK(loop.poll() == errc::ok);
  TL_CHECK_EQ(calls, 1);
  TL_CHECK_EQ(rejected, 0);
  TL_CHECK(loop.remove(b.value()) == errc::ok);
  TL_CHECK(loop.remove(d.value()) == errc::ok);
  reset_soft_device();
}
