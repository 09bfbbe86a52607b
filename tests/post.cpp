// Cross-thread: post, wake, stop. Order per producer, nothing lost or run twice, bounded
// iterations, capacity, wake coalescing (counted through a wrapping port), and waking a sleeping
// loop. Type-parameterized; tests/custom_port.cpp instantiates it for its own port too.
#include "support/ports.hpp"

#include <atomic>
#include <thread>
#include <vector>

namespace post_tests {

using tinyloop::errc;
using namespace std::chrono_literals;

struct roomy_posts : tinyloop::default_config {
  static constexpr std::size_t post_capacity = 128;
};

template <class F>
using counted_loop = tinyloop::event_loop<tltest::counting_port<typename F::port>, roomy_posts>;

template <class F>
class post : public tltest::port_test<F> {};

TYPED_TEST_SUITE_P(post);

TYPED_TEST_P(post, runs_in_order_on_loop_thread) {
  tltest::loop_for<TypeParam> loop;
  std::vector<int> order;
  bool on_loop_thread = true;
  const auto self = std::this_thread::get_id();
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(loop.post([&order, &on_loop_thread, self, i] {
      order.push_back(i);
      if (std::this_thread::get_id() != self) on_loop_thread = false;
    }),
              errc::ok);
  }
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(on_loop_thread);
}

TYPED_TEST_P(post, run_returns_after_running_posts) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0;
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(runs, 2);
}

TYPED_TEST_P(post, posted_while_draining_runs_next_iteration) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int outer = 0, inner = 0;
  auto* l = &loop;
  ASSERT_EQ(loop.post([l, &outer, &inner] {
    ++outer;
    EXPECT_EQ(l->post([&inner] { ++inner; }), errc::ok);
  }),
            errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(outer, 1);
  EXPECT_EQ(inner, 0) << "a callback posted during the drain ran in the same iteration";
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(inner, 1);
}

TYPED_TEST_P(post, self_reposting_callback_does_not_starve_timers) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  struct ctx {
    loop_t* loop;
    bool timer_ran = false;
    int posts = 0;
    static void again(ctx* c) {
      EXPECT_EQ(c->loop->post([c] {
        ++c->posts;
        TypeParam::pass_time(1ms);  // each callback takes a while (virtual time moves too)
        if (!c->timer_ran) again(c);
      }),
                errc::ok);
    }
  } c{&loop};
  ctx::again(&c);
  auto* cp = &c;
  ASSERT_TRUE(loop.after(TypeParam::tick, [cp] { cp->timer_ran = true; }));
  EXPECT_EQ(loop.run(), errc::ok);  // returns once the timer ran and the chain ended
  EXPECT_TRUE(c.timer_ran);
  EXPECT_GE(c.posts, 1);
}

TYPED_TEST_P(post, full_is_rejected_and_nothing_disturbed) {
  tltest::loop_for<TypeParam> loop;  // post_capacity 32
  std::vector<int> order;
  for (int i = 0; i < 32; ++i) ASSERT_EQ(loop.post([&order, i] { order.push_back(i); }), errc::ok) << i;
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.post(tltest::tracker(&runs, &destroyed)), errc::full);
  EXPECT_EQ(destroyed, 1) << "the rejected callback was not destroyed";
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 0);
  ASSERT_EQ(order.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(loop.post([] {}), errc::ok) << "room again after the drain";
  EXPECT_EQ(loop.poll(), errc::ok);
}

TYPED_TEST_P(post, empty_callback_is_invalid_argument) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int runs = 0;
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  EXPECT_EQ(loop.post(typename loop_t::callback{}), errc::invalid_argument);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(post, callback_destroyed_after_running) {
  tltest::loop_for<TypeParam> loop;
  int runs = 0, destroyed = 0;
  ASSERT_EQ(loop.post(tltest::tracker(&runs, &destroyed)), errc::ok);
  EXPECT_EQ(destroyed, 0);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(destroyed, 1);
}

TYPED_TEST_P(post, destructor_destroys_pending_posts_unrun) {
  int runs = 0, destroyed = 0;
  {
    tltest::loop_for<TypeParam> loop;
    for (int i = 0; i < 5; ++i) ASSERT_EQ(loop.post(tltest::tracker(&runs, &destroyed)), errc::ok);
  }
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(destroyed, 5);
}

// A stop() that no run call consumed does not keep the destructor from destroying every post.
TYPED_TEST_P(post, destructor_destroys_pending_posts_after_a_stop) {
  int runs = 0, destroyed = 0;
  {
    tltest::loop_for<TypeParam> loop;
    for (int i = 0; i < 3; ++i) ASSERT_EQ(loop.post(tltest::tracker(&runs, &destroyed)), errc::ok);
    loop.stop();
  }
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(destroyed, 3);
}

// Several producer threads: each one's callbacks run in its order, all on the loop thread, none
// lost, none twice. Producers retry on errc::full (the queue is much smaller than the traffic).
TYPED_TEST_P(post, several_producers_none_lost_none_twice_in_order) {
  TLTEST_REQUIRE_THREADS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  constexpr int producers = 3;
  constexpr int per_producer = 3000;
  struct ctx {
    int next[producers] = {};
    int received = 0;
    bool in_order = true;
    bool on_loop_thread = true;
    std::thread::id loop_thread = std::this_thread::get_id();
    tltest::traffic traffic;
  } c;
  tltest::gate go;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&loop, &c, &go, p] {
      go.wait();
      ctx* cp = &c;
      for (int i = 0; i < per_producer; ++i) {
        EXPECT_EQ(cp->traffic.post(loop,
                                   [cp, p, i] {
                                     if (cp->next[p] != i) cp->in_order = false;
                                     cp->next[p] = i + 1;
                                     ++cp->received;
                                     if (std::this_thread::get_id() != cp->loop_thread) cp->on_loop_thread = false;
                                     cp->traffic.done();
                                   }),
                  errc::ok);
      }
    });
  }
  go.open();
  tltest::run_once_until(
      loop, [&] { return c.received == producers * per_producer; }, [&] { c.traffic.template idle<TypeParam>(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(c.received, producers * per_producer) << "a callback ran twice";
  for (int p = 0; p < producers; ++p) EXPECT_EQ(c.next[p], per_producer);
  EXPECT_TRUE(c.in_order);
  EXPECT_TRUE(c.on_loop_thread);
}

// Ping-pong: the producer posts one callback, waits for it to run, posts the next. The loop goes
// to sleep between most of them, so every post must end a sleep: a lost wake hangs the test.
// (On sim, which cannot sleep, the loop thread waits for the producer's post between iterations.)
TYPED_TEST_P(post, post_to_sleeping_loop_is_never_lost) {
  TLTEST_REQUIRE_THREADS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  constexpr int rounds = 2000;
  tltest::traffic t;
  std::thread producer([&loop, &t] {
    for (int i = 0; i < rounds; ++i) {
      tltest::traffic* tp = &t;
      EXPECT_EQ(t.post(loop, [tp] { tp->done(); }), errc::ok);
      t.ran.wait_for(i + 1);
    }
  });
  tltest::run_once_until(
      loop, [&] { return t.ran.value() == rounds; }, [&] { t.template idle<TypeParam>(); });
  producer.join();
  EXPECT_EQ(t.ran.value(), rounds);
}

// The same with an idle fd registered: then even the loop's non-blocking waits go to the port,
// which drains its wake channel there.
TYPED_TEST_P(post, post_to_sleeping_loop_with_a_source_is_never_lost) {
  TLTEST_REQUIRE_THREADS();
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> idle(loop);
  ASSERT_TRUE(idle.ok());
  auto src = loop.add(idle.fd(), tinyloop::events::read, [](tinyloop::events) {});
  ASSERT_TRUE(src);
  constexpr int rounds = 2000;
  tltest::traffic t;
  std::atomic<int> ran{0};
  std::thread producer([&loop, &t, &ran] {
    tltest::traffic* tp = &t;
    std::atomic<int>* r = &ran;
    long posts = 0;
    for (int i = 0; i < rounds; ++i) {
      EXPECT_EQ(t.post(loop,
                       [tp, r] {
                         r->fetch_add(1, std::memory_order_relaxed);
                         tp->done();
                       }),
                errc::ok);
      ++posts;
      if (i % 2 == 0) {
        // every other round, a second post right behind: the loop may be between waits
        EXPECT_EQ(t.post(loop, [tp] { tp->done(); }), errc::ok);
        ++posts;
      }
      t.ran.wait_for(posts);
    }
  });
  tltest::run_once_until(
      loop, [&] { return ran.load(std::memory_order_relaxed) == rounds; }, [&] { t.template idle<TypeParam>(); });
  producer.join();
  EXPECT_EQ(ran.load(), rounds);
  EXPECT_EQ(loop.remove(src.value()), errc::ok);
}

TYPED_TEST_P(post, posts_from_loop_thread_cost_no_wake) {
  counted_loop<TypeParam> loop;
  int runs = 0;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  for (int i = 0; i < 50; ++i) loop.wake();
  EXPECT_EQ(loop.port().wakes.load(), 0) << "the loop was not sleeping: no port wake was needed";
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 50);
  EXPECT_EQ(loop.port().wakes.load(), 0);
}

TYPED_TEST_P(post, posts_while_loop_runs_a_callback_cost_no_wake) {
  TLTEST_REQUIRE_THREADS();
  using loop_t = counted_loop<TypeParam>;
  loop_t loop;
  int runs = 0;
  auto* l = &loop;
  int* r = &runs;
  // Inside a callback the loop is awake: a producer running meanwhile must not wake the port.
  ASSERT_EQ(loop.post([l, r] {
    std::thread producer([l, r] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(l->post([r] { ++*r; }), errc::ok);
        l->wake();
      }
    });
    producer.join();
  }),
            errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.port().wakes.load(), 0);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 50);
}

TYPED_TEST_P(post, many_posts_to_a_sleeping_loop_cost_one_wake) {
  TLTEST_REQUIRE_BLOCKING();
  using loop_t = counted_loop<TypeParam>;
  loop_t loop;
  int runs = 0;
  std::thread producer([&loop, &runs] {
    // The loop is in a wait without deadline (no timers, nothing registered).
    loop.port().await_blocking_wait();
    int* r = &runs;
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(loop.post([r] { ++*r; }), errc::ok);
      loop.wake();
    }
  });
  EXPECT_EQ(loop.run_once(), errc::ok);
  producer.join();
  // poll, not run_once: the loop must not sleep again, or the count would include later sleeps
  for (int i = 0; i < 1000 && runs < 100; ++i) EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 100);
  const int wakes = loop.port().wakes.load();
  EXPECT_GE(wakes, 1) << "the sleeping loop was never woken";
  // One wake for the sleep; at most one more from a producer that saw the loop asleep just as it
  // woke (that wake is consumed by a later wait). Never one per post.
  EXPECT_LE(wakes, 2);
  EXPECT_LE(wakes, loop.port().waits.load() + 1);
}

TYPED_TEST_P(post, wakes_never_exceed_sleeps) {
  TLTEST_REQUIRE_THREADS();
  using loop_t = counted_loop<TypeParam>;
  loop_t loop;
  constexpr int total = 5000;
  tltest::traffic t;
  std::thread producer([&loop, &t] {
    tltest::traffic* tp = &t;
    for (int i = 0; i < total; ++i) {
      EXPECT_EQ(t.post(loop, [tp] { tp->done(); }), errc::ok);
      if (i % 7 == 0) loop.wake();
    }
  });
  tltest::run_once_until(
      loop, [&] { return t.ran.value() == total; }, [&] { t.template idle<TypeParam>(); });
  producer.join();
  EXPECT_LE(loop.port().wakes.load(), loop.port().waits.load() + 1);
}

TYPED_TEST_P(post, stop_from_another_thread_ends_run) {
  TLTEST_REQUIRE_REAL_TIME();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int fired = 0;
  auto keepalive = loop.after(std::chrono::hours(1), [&fired] { ++fired; });
  ASSERT_TRUE(keepalive);
  tltest::gate running;
  ASSERT_EQ(loop.post([&running] { running.open(); }), errc::ok);
  std::thread stopper([&loop, &running] {
    running.wait();
    loop.stop();
  });
  EXPECT_EQ(loop.run(), errc::ok);
  stopper.join();
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(loop.cancel(keepalive.value()), errc::ok);
}

TYPED_TEST_P(post, stop_from_another_thread_returns_after_the_running_callback) {
  TLTEST_REQUIRE_THREADS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::gate in_callback, stopped;
  bool first_finished = false;
  int later = 0;
  ASSERT_EQ(loop.post([&] {
    in_callback.open();
    stopped.wait();  // stop() arrives while this callback runs
    first_finished = true;
  }),
            errc::ok);
  ASSERT_EQ(loop.post([&later] { ++later; }), errc::ok);
  std::thread stopper([&] {
    in_callback.wait();
    loop.stop();
    stopped.open();
  });
  EXPECT_EQ(loop.run(), errc::ok);
  stopper.join();
  EXPECT_TRUE(first_finished);
  EXPECT_EQ(later, 0) << "run() went on running callbacks after stop()";
  EXPECT_EQ(loop.run(), errc::ok);  // a new run picks up where it stopped
  EXPECT_EQ(later, 1);
}

TYPED_TEST_P(post, run_once_woken_by_wake_from_another_thread) {
  TLTEST_REQUIRE_BLOCKING();
  counted_loop<TypeParam> loop;
  std::thread waker([&loop] {
    loop.port().await_blocking_wait();
    loop.wake();
  });
  EXPECT_EQ(loop.run_once(), errc::ok);  // nothing to run: only the wake can end it
  waker.join();
  EXPECT_EQ(loop.port().wakes.load(), 1);
}

TYPED_TEST_P(post, run_once_woken_by_stop_from_another_thread) {
  TLTEST_REQUIRE_BLOCKING();
  counted_loop<TypeParam> loop;
  std::thread stopper([&loop] {
    loop.port().await_blocking_wait();
    loop.stop();
  });
  EXPECT_EQ(loop.run_once(), errc::ok);
  stopper.join();
}

TYPED_TEST_P(post, post_from_another_thread_ends_run_once_wait) {
  TLTEST_REQUIRE_REAL_TIME();
  using loop_t = counted_loop<TypeParam>;
  loop_t loop;
  int runs = 0;
  auto far = loop.after(std::chrono::hours(1), [] {});
  ASSERT_TRUE(far);
  std::thread producer([&loop, &runs] {
    // the loop waits for a timer an hour away
    loop.port().await_blocking_wait();
    EXPECT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  });
  tltest::run_once_until(loop, [&] { return runs == 1; });
  producer.join();
  EXPECT_EQ(loop.cancel(far.value()), errc::ok);
}

REGISTER_TYPED_TEST_SUITE_P(post, runs_in_order_on_loop_thread, run_returns_after_running_posts,
                            posted_while_draining_runs_next_iteration, self_reposting_callback_does_not_starve_timers,
                            full_is_rejected_and_nothing_disturbed, empty_callback_is_invalid_argument,
                            callback_destroyed_after_running, destructor_destroys_pending_posts_unrun,
                            destructor_destroys_pending_posts_after_a_stop,
                            several_producers_none_lost_none_twice_in_order, post_to_sleeping_loop_is_never_lost,
                            post_to_sleeping_loop_with_a_source_is_never_lost,
                            posts_from_loop_thread_cost_no_wake, posts_while_loop_runs_a_callback_cost_no_wake,
                            many_posts_to_a_sleeping_loop_cost_one_wake, wakes_never_exceed_sleeps,
                            stop_from_another_thread_ends_run,
                            stop_from_another_thread_returns_after_the_running_callback,
                            run_once_woken_by_wake_from_another_thread, run_once_woken_by_stop_from_another_thread,
                            post_from_another_thread_ends_run_once_wait);

#if !defined(TLTEST_NO_INSTANTIATE)
INSTANTIATE_TYPED_TEST_SUITE_P(post, post, tltest::all_ports, tltest::port_name);
#endif

}  // namespace post_tests
