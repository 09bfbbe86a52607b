// Timers on the bare-metal port: order, cancel, zero delay, periodic, capacity.
#include <chrono>

#include "harness.hpp"
#include "loop_fixture.hpp"

using namespace std::chrono_literals;
using namespace tl_test;
using tinyloop::errc;

namespace {

// Callback records, in firing order.
struct firing_log {
  int order[8] = {};
  clock_type::time_point at[8] = {};
  int count = 0;
  void record(int id, clock_type::time_point now) noexcept {
    if (count < 8) {
      order[count] = id;
      at[count] = now;
    }
    ++count;
  }
};

}  // namespace

TL_TEST(timers_fire_in_deadline_order_and_equal_deadlines_in_arm_order) {
  loop_type loop;
  TL_REQUIRE(loop.status() == errc::ok);
  firing_log log;
  const clock_type::time_point start = loop.now();
  TL_CHECK(loop.after(30ms, [&] { log.record(3, loop.now()); }).ok());
  TL_CHECK(loop.after(10ms, [&] { log.record(1, loop.now()); }).ok());
  TL_CHECK(loop.after(20ms, [&] { log.record(2, loop.now()); }).ok());
  TL_CHECK(loop.at(start + 10ms, [&] { log.record(11, loop.now()); }).ok());  // ties with 1
  TL_CHECK_EQ(loop.pending_timers(), 4u);
  TL_CHECK(loop.run() == errc::ok);  // returns when no timer is left
  TL_REQUIRE(log.count == 4);
  TL_CHECK_EQ(log.order[0], 1);
  TL_CHECK_EQ(log.order[1], 11);
  TL_CHECK_EQ(log.order[2], 2);
  TL_CHECK_EQ(log.order[3], 3);
  // Never early, on the board clock and in loop time.
  TL_CHECK(log.at[0] >= start + 10ms);
  TL_CHECK(log.at[1] >= start + 10ms);
  TL_CHECK(log.at[2] >= start + 20ms);
  TL_CHECK(log.at[3] >= start + 30ms);
  TL_CHECK(clock_type::now() >= start + 30ms);
  TL_CHECK_EQ(loop.pending_timers(), 0u);
}

TL_TEST(cancelled_timer_never_fires_and_its_id_stays_stale) {
  loop_type loop;
  firing_log log;
  const auto a = loop.after(5ms, [&] { log.record(1, loop.now()); });
  const auto b = loop.after(10ms, [&] { log.record(2, loop.now()); });
  const auto c = loop.after(15ms, [&] { log.record(3, loop.now()); });
  TL_REQUIRE(a.ok() && b.ok() && c.ok());
  TL_CHECK(loop.cancel(b.value()) == errc::ok);
  TL_CHECK(loop.cancel(b.value()) == errc::not_found);
  TL_CHECK(loop.cancel(tinyloop::timer_id{}) == errc::not_found);
  TL_CHECK(loop.run() == errc::ok);
  TL_REQUIRE(log.count == 2);
  TL_CHECK_EQ(log.order[0], 1);
  TL_CHECK_EQ(log.order[1], 3);
  TL_CHECK(loop.cancel(a.value()) == errc::not_found);  // fired
  // A new timer may reuse b's slot; b's id still reaches nothing.
  const auto d = loop.after(1ms, [&] { log.record(4, loop.now()); });
  TL_REQUIRE(d.ok());
  TL_CHECK(loop.cancel(b.value()) == errc::not_found);
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(log.count, 3);
}

TL_TEST(timer_cancelled_by_an_earlier_callback_of_the_same_iteration_does_not_run) {
  loop_type loop;
  firing_log log;
  tinyloop::timer_id second;
  const clock_type::time_point deadline = loop.now() + 5ms;
  TL_REQUIRE(loop.at(deadline, [&] {
                   log.record(1, loop.now());
                   TL_CHECK(loop.cancel(second) == errc::ok);
                 }).ok());
  const auto r = loop.at(deadline, [&] { log.record(2, loop.now()); });
  TL_REQUIRE(r.ok());
  second = r.value();
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(log.count, 1);
}

TL_TEST(zero_delay_timer_armed_in_a_callback_fires_in_a_later_iteration) {
  loop_type loop;
  int first = 0;
  int second = 0;
  TL_REQUIRE(loop.after(0ms, [&] {
                   ++first;
                   TL_CHECK(loop.after(0ms, [&] { ++second; }).ok());
                 }).ok());
  TL_CHECK(loop.run_once() == errc::ok);
  TL_CHECK_EQ(first, 1);
  TL_CHECK_EQ(second, 0);
  TL_CHECK(loop.run_once() == errc::ok);
  TL_CHECK_EQ(second, 1);
}

TL_TEST(periodic_timer_fires_at_start_plus_n_periods_until_cancelled_by_itself) {
  loop_type loop;
  struct state {
    loop_type* loop;
    clock_type::time_point start;
    tinyloop::timer_id id;
    int fired;
    bool never_early;
  } s{&loop, loop.now(), {}, 0, true};
  const auto r = loop.every(10ms, [&s] {
    ++s.fired;
    if (s.loop->now() < s.start + s.fired * 10ms) {
      s.never_early = false;
    }
    if (s.fired == 5) {
      TL_CHECK(s.loop->cancel(s.id) == errc::ok);
    }
  });
  TL_REQUIRE(r.ok());
  s.id = r.value();
  TL_CHECK(loop.run() == errc::ok);  // returns once the timer cancelled itself
  TL_CHECK_EQ(s.fired, 5);
  TL_CHECK(s.never_early);
  TL_CHECK(loop.cancel(s.id) == errc::not_found);
  TL_CHECK_EQ(loop.pending_timers(), 0u);
}

TL_TEST(periodic_timer_skips_missed_firings_instead_of_a_burst) {
  loop_type loop;
  struct state {
    loop_type* loop;
    clock_type::time_point start;
    tinyloop::timer_id id;
    int fired;
  } s{&loop, loop.now(), {}, 0};
  const auto r = loop.every(10ms, [&s] {
    ++s.fired;
    if (s.fired == 1) {
      busy_wait(45ms);  // miss the firings due at 20..50 ms
    }
    // At least two firings: on a loaded host QEMU may stall past 100 ms before the first one, and
    // the second then shows whether the missed ones come as a burst.
    if (s.fired >= 2 && s.loop->now() >= s.start + 100ms) {
      TL_CHECK(s.loop->cancel(s.id) == errc::ok);
    }
  });
  TL_REQUIRE(r.ok());
  s.id = r.value();
  TL_CHECK(loop.run() == errc::ok);
  // Firings due at 10, (20..50 skipped), 60, 70, 80, 90, 100 ms, and the stalled one delivered
  // once, late: 7. A burst would deliver all ten. A loaded host only makes fewer (never below 2).
  TL_CHECK(s.fired >= 2);
  TL_CHECK(s.fired <= 8);
}

TL_TEST(timer_capacity_gives_full_and_keeps_the_armed_ones) {
  small_loop_type loop;
  int fired = 0;
  const auto a = loop.after(2ms, [&] { ++fired; });
  const auto b = loop.after(4ms, [&] { ++fired; });
  TL_REQUIRE(a.ok() && b.ok());
  bool rejected_ran = false;
  const auto c = loop.after(1ms, [&] { rejected_ran = true; });
  TL_CHECK(!c.ok());
  TL_CHECK(c.error() == errc::full);
  TL_CHECK_EQ(loop.pending_timers(), 2u);
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(fired, 2);
  TL_CHECK(!rejected_ran);
  // Capacity is free again.
  TL_CHECK(loop.after(1ms, [&] { ++fired; }).ok());
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(fired, 3);
}

TL_TEST(empty_loop_run_returns_at_once) {
  loop_type loop;
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK(loop.poll() == errc::ok);
}
