// Running the loop: run, run_once, poll, stop, now(), pending_timers(), active_sources(), status.
#include "support/ports.hpp"

#include <algorithm>
#include <vector>

namespace run_tests {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

template <class F>
class run : public tltest::port_test<F> {};

TYPED_TEST_SUITE_P(run);

TYPED_TEST_P(run, constructed_loop_is_ok) {
  tltest::loop_for<TypeParam> loop;
  EXPECT_EQ(loop.status(), errc::ok);
  EXPECT_EQ(loop.os_errno(), 0);
  EXPECT_EQ(loop.pending_timers(), 0u);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TYPED_TEST_P(run, run_returns_at_once_when_nothing_is_left) {
  tltest::loop_for<TypeParam> loop;
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(loop.run(), errc::ok);
}

TYPED_TEST_P(run, run_returns_after_the_last_timer) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0;
  ASSERT_TRUE(loop.after(TypeParam::tick, [&runs] { ++runs; }));
  ASSERT_TRUE(loop.after(2 * TypeParam::tick, [&runs] { ++runs; }));
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TYPED_TEST_P(run, run_returns_when_the_last_source_is_removed) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::read, [l, &id](events) { EXPECT_EQ(l->remove(id), errc::ok); });
  ASSERT_TRUE(r);
  id = r.value();
  ASSERT_TRUE(loop.after(TypeParam::tick, [&ch] { ch.make_readable(); }));
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TYPED_TEST_P(run, paused_source_does_not_keep_run_alive) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  auto r = loop.add(ch.fd(), events::read, [](events) {});
  ASSERT_TRUE(r);
  EXPECT_EQ(loop.modify(r.value(), events::none), errc::ok);
  EXPECT_EQ(loop.run(), errc::ok) << "a source without interest kept run() alive";
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(run, stop_before_run_makes_run_return) {
  tltest::loop_for<TypeParam> loop;
  int fired = 0;
  auto far = loop.after(std::chrono::hours(1), [&fired] { ++fired; });
  ASSERT_TRUE(far);
  loop.stop();
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(fired, 0);
  // the stop was consumed: the next run runs normally
  EXPECT_EQ(loop.cancel(far.value()), errc::ok);
  int later = 0;
  ASSERT_TRUE(loop.after(TypeParam::tick, [&later] { ++later; }));
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(later, 1);
}

TYPED_TEST_P(run, stop_inside_callback_returns_after_it) {
  tltest::loop_for<TypeParam> loop;
  auto* l = &loop;
  std::vector<int> order;
  ASSERT_EQ(loop.post([l, &order] {
    order.push_back(1);
    l->stop();
    order.push_back(2);  // the callback finishes
  }),
            errc::ok);
  ASSERT_EQ(loop.post([&order] { order.push_back(3); }), errc::ok);
  ASSERT_TRUE(loop.after(0ms, [&order] { order.push_back(4); }));
  EXPECT_EQ(loop.run(), errc::ok);
  // timers run before posts in an iteration, so the timer may have run; the second post must not
  EXPECT_EQ(std::count(order.begin(), order.end(), 3), 0) << "run() went on after stop()";
  EXPECT_NE(std::find(order.begin(), order.end(), 2), order.end());
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(std::count(order.begin(), order.end(), 3), 1);
  EXPECT_EQ(std::count(order.begin(), order.end(), 4), 1);
}

TYPED_TEST_P(run, stop_inside_timer_callback_stops_periodic_run) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0;
  auto* l = &loop;
  auto r = loop.every(TypeParam::tick, [l, &runs] {
    if (++runs == 3) l->stop();
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(loop.pending_timers(), 1u);
  EXPECT_EQ(loop.cancel(r.value()), errc::ok);
}

TYPED_TEST_P(run, run_once_runs_everything_ready_without_waiting) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int runs = 0;
  auto far = loop.after(std::chrono::hours(1), [&runs] { runs += 100; });
  ASSERT_TRUE(far);
  ASSERT_TRUE(loop.after(0ms, [&runs] { ++runs; }));
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  const auto before = loop_t::clock::now();
  EXPECT_EQ(loop.run_once(), errc::ok);  // must not wait an hour after running these
  EXPECT_EQ(runs, 3);
  if (TypeParam::virtual_time) {
    EXPECT_EQ(loop_t::clock::now(), before) << "virtual time moved: run_once waited after running callbacks";
  }
  EXPECT_EQ(loop.cancel(far.value()), errc::ok);
}

TYPED_TEST_P(run, run_once_waits_for_the_next_timer) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int runs = 0;
  const auto deadline = loop.now() + std::chrono::ceil<typename loop_t::duration>(2 * TypeParam::tick);
  ASSERT_TRUE(loop.at(deadline, [&runs] { ++runs; }));
  EXPECT_EQ(loop.run_once(), errc::ok);  // nothing ready: waits, runs the timer, returns
  EXPECT_EQ(runs, 1);
  EXPECT_GE(loop_t::clock::now(), deadline);
}

TYPED_TEST_P(run, run_once_returns_after_one_batch) {
  tltest::loop_for<TypeParam> loop;
  int first = 0, second = 0;
  ASSERT_TRUE(loop.after(TypeParam::tick, [&first] { ++first; }));
  auto far = loop.after(std::chrono::hours(1), [&second] { ++second; });
  ASSERT_TRUE(far);
  EXPECT_EQ(loop.run_once(), errc::ok);  // waits for the first timer only
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0) << "run_once went on waiting after it ran a callback";
  EXPECT_EQ(loop.cancel(far.value()), errc::ok);
}

TYPED_TEST_P(run, run_once_with_nothing_registered_returns_on_wake) {
  tltest::loop_for<TypeParam> loop;
  loop.wake();  // before run_once: it must still return (no thread needed)
  EXPECT_EQ(loop.run_once(), errc::ok);
}

TYPED_TEST_P(run, poll_never_waits) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int runs = 0;
  auto far = loop.after(std::chrono::hours(1), [&runs] { ++runs; });
  ASSERT_TRUE(far);
  const auto before = loop_t::clock::now();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 0);
  if (TypeParam::virtual_time) {
    EXPECT_EQ(loop_t::clock::now(), before) << "poll() let virtual time jump";
  }
  EXPECT_EQ(loop.cancel(far.value()), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);  // nothing at all: still returns
}

TYPED_TEST_P(run, poll_runs_due_timers_and_posts) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0;
  ASSERT_TRUE(loop.after(0ms, [&runs] { ++runs; }));
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 2);
}

TYPED_TEST_P(run, poll_runs_timer_once_its_deadline_passed) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0;
  ASSERT_TRUE(loop.after(TypeParam::tick, [&runs] { ++runs; }));
  EXPECT_EQ(loop.poll(), errc::ok);
  if (TypeParam::virtual_time) {
    EXPECT_EQ(runs, 0);  // (a real clock may already be past the deadline on a slow machine)
  }
  TypeParam::pass_time(2 * TypeParam::tick);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(run, now_is_read_at_construction) {
  using loop_t = tltest::loop_for<TypeParam>;
  const auto before = loop_t::clock::now();
  loop_t loop;
  const auto after = loop_t::clock::now();
  EXPECT_GE(loop.now(), before);
  EXPECT_LE(loop.now(), after);
}

TYPED_TEST_P(run, now_is_cached_during_an_iteration) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  std::vector<typename loop_t::time_point> seen;
  auto* l = &loop;
  auto* s = &seen;
  const auto deadline = loop.now() + TypeParam::tick;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(loop.at(deadline, [l, s] {
      s->push_back(l->now());
      TypeParam::pass_time(2 * TypeParam::tick);  // the clock moves during the callback
      s->push_back(l->now());
    }));
  }
  EXPECT_EQ(loop.run(), errc::ok);
  ASSERT_EQ(seen.size(), 6u);
  for (auto t : seen) EXPECT_EQ(t, seen[0]) << "now() changed within one iteration";
}

TYPED_TEST_P(run, now_advances_between_iterations) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  const auto first = loop.now();
  TypeParam::pass_time(TypeParam::tick);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_GE(loop.now() - first, std::chrono::ceil<typename loop_t::duration>(TypeParam::tick));
  EXPECT_LE(loop.now(), loop_t::clock::now());
}

TYPED_TEST_P(run, pending_timers_counts_armed_timers) {
  tltest::loop_for<TypeParam> loop;
  auto a = loop.after(TypeParam::tick, [] {});
  auto b = loop.every(TypeParam::tick, [] {});
  auto c = loop.after(std::chrono::hours(1), [] {});
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(loop.pending_timers(), 3u);
  EXPECT_EQ(loop.cancel(c.value()), errc::ok);
  EXPECT_EQ(loop.pending_timers(), 2u);
  TypeParam::pass_time(2 * TypeParam::tick);
  EXPECT_EQ(loop.poll(), errc::ok);  // the one-shot fired; the periodic one stays
  EXPECT_EQ(loop.pending_timers(), 1u);
  EXPECT_EQ(loop.cancel(b.value()), errc::ok);
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TYPED_TEST_P(run, active_sources_counts_registrations) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  auto ra = loop.add(a.fd(), events::read, [](events) {});
  EXPECT_EQ(loop.active_sources(), 1u);
  auto rb = loop.add(b.fd(), events::write, [](events) {});
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(loop.active_sources(), 2u);
  EXPECT_EQ(loop.remove(ra.value()), errc::ok);
  EXPECT_EQ(loop.active_sources(), 1u);
  EXPECT_EQ(loop.remove(rb.value()), errc::ok);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TYPED_TEST_P(run, callbacks_of_one_iteration_run_timers_io_posts) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  int runs = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events) {
    ++runs;
    ch.drain();
  });
  ASSERT_TRUE(r);
  ASSERT_TRUE(loop.after(0ms, [&runs] { ++runs; }));
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return runs == 3; }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

REGISTER_TYPED_TEST_SUITE_P(run, constructed_loop_is_ok, run_returns_at_once_when_nothing_is_left,
                            run_returns_after_the_last_timer, run_returns_when_the_last_source_is_removed,
                            paused_source_does_not_keep_run_alive, stop_before_run_makes_run_return,
                            stop_inside_callback_returns_after_it, stop_inside_timer_callback_stops_periodic_run,
                            run_once_runs_everything_ready_without_waiting, run_once_waits_for_the_next_timer,
                            run_once_returns_after_one_batch, run_once_with_nothing_registered_returns_on_wake,
                            poll_never_waits, poll_runs_due_timers_and_posts, poll_runs_timer_once_its_deadline_passed,
                            now_is_read_at_construction, now_is_cached_during_an_iteration,
                            now_advances_between_iterations, pending_timers_counts_armed_timers,
                            active_sources_counts_registrations, callbacks_of_one_iteration_run_timers_io_posts);

#if !defined(TLTEST_NO_INSTANTIATE)
INSTANTIATE_TYPED_TEST_SUITE_P(run, run, tltest::all_ports, tltest::port_name);
#endif

}  // namespace run_tests
