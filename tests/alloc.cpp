// After an event_loop is constructed, no operation of the loop allocates heap memory.
//
// This binary counts every heap allocation of the process (support/alloc_counter.hpp: malloc and
// operator new interposed, or the sanitizers' malloc hook). Counting is switched on after the
// loop, the channels and the producer threads exist (std::thread allocates when it starts), and off
// before the threads are released and joined.
#include "support/alloc_counter.hpp"
#include "support/ports.hpp"

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

namespace alloc_tests {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

struct tiny : tinyloop::default_config {
  static constexpr std::size_t max_timers = 1;
  static constexpr std::size_t max_sources = 1;
  static constexpr std::size_t post_capacity = 2;
};

using tltest::allocation_counter;

// A counter that cannot see allocations would make every test here pass: skip instead, saying why.
#define TLTEST_REQUIRE_COUNTING()                                                                    \
  do {                                                                                               \
    if (!tltest::allocations::countable()) GTEST_SKIP() << tltest::allocations::why_not_countable(); \
  } while (0)

TEST(alloc, the_counter_sees_allocations) {
  TLTEST_REQUIRE_COUNTING();
  EXPECT_GE(tltest::allocations::self_test(), 2)
      << "the interposition does not work: the zero-allocation tests would prove nothing";
  long n;
  {
    allocation_counter c;
    std::vector<int>* v = new std::vector<int>(100);
    delete v;
    void* p = std::malloc(10);
    std::free(p);
    n = c.stop();
  }
  EXPECT_GE(n, 3) << "the interposition does not work: the zero-allocation tests would prove nothing";
}

TEST(alloc, inplace_function_never_allocates) {
  TLTEST_REQUIRE_COUNTING();
  int hits = 0;
  long n;
  {
    allocation_counter c;
    using fn = tinyloop::inplace_function<void(), 4 * sizeof(void*)>;
    int* h = &hits;
    fn a([h] { ++*h; });
    fn b(std::move(a));
    fn d;
    d = std::move(b);
    d();
    d = nullptr;
    n = c.stop();
  }
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(n, 0);
}

template <class F>
class alloc_workload : public tltest::port_test<F> {};
TYPED_TEST_SUITE(alloc_workload, tltest::all_ports, tltest::port_name);

// The mixed workload: one-shot, periodic and absolute timers, cancels, fds added, modified,
// removed and re-added, posts from two threads (retrying when full), a signal, stop and poll.
TYPED_TEST(alloc_workload, mixed_workload_allocates_nothing) {
  TLTEST_REQUIRE_COUNTING();
  using loop_t = tltest::loop_for<TypeParam>;
  constexpr int per_producer = 500;
  loop_t loop;
  ASSERT_EQ(loop.status(), errc::ok);
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  ASSERT_TRUE(a.ok() && b.ok());

  struct state {
    loop_t* loop;
    int timer_runs = 0;
    int periodic_runs = 0;
    int io_runs = 0;
    int signal_runs = 0;
    std::atomic<int> posts{0};
    tinyloop::timer_id periodic{};
  } s;
  s.loop = &loop;
  state* sp = &s;

  // The producers' posts go through a tltest::traffic: a producer that meets a full queue waits
  // for the loop to run a callback, and on sim (which cannot sleep) the loop thread waits for a post
  // instead of spinning. Its mutex and condition variable do not allocate.
  tltest::gate go, release;
  tltest::counter started;
  tltest::traffic traffic;
  tltest::traffic* tp = &traffic;
  std::vector<std::thread> producers;
  const int producer_count = TypeParam::threads ? 2 : 0;
  for (int p = 0; p < producer_count; ++p) {
    producers.emplace_back([&loop, &go, &release, &started, sp, tp] {
      started.add();  // the thread's own start-up (libc, sanitizers) may allocate: done by now
      go.wait();
      for (int i = 0; i < per_producer; ++i) {
        EXPECT_EQ(tp->post(loop,
                           [sp, tp] {
                             sp->posts.fetch_add(1, std::memory_order_relaxed);
                             tp->done();
                           }),
                  errc::ok);
        if (i % 50 == 0) loop.wake();
      }
      release.wait();
    });
  }

  started.wait_for(producer_count);
  long counted;
  bool done = false;
  {
    allocation_counter counter;
    go.open();
    // timers
    for (int i = 0; i < 8; ++i) (void)loop.after(i * 1ms, [sp] { ++sp->timer_runs; });
    auto doomed = loop.after(1h, [sp] { sp->timer_runs += 1000; });
    auto absolute = loop.at(loop.now() + 2ms, [sp] { ++sp->timer_runs; });
    auto periodic = loop.every(1ms, [sp] {
      if (++sp->periodic_runs == 5) (void)sp->loop->cancel(sp->periodic);
    });
    if (periodic) s.periodic = periodic.value();
    if (doomed) (void)loop.cancel(doomed.value());
    (void)absolute;
    // fds
    auto ra = loop.add(a.fd(), events::read, [sp, &a](events) {
      ++sp->io_runs;
      a.drain();
    });
    auto rb = loop.add(b.fd(), events::read | events::write, [sp](events) { ++sp->io_runs; });
    if (rb) (void)loop.modify(rb.value(), events::read);
    if (rb) (void)loop.remove(rb.value());
    auto rb2 = loop.add(b.fd(), events::read, [sp, &b](events) {
      ++sp->io_runs;
      b.drain();
    });
    a.make_readable();
    b.make_readable();
    // a signal
    if constexpr (TypeParam::port::has_signals) {
      (void)loop.watch_signal(SIGUSR1, [sp](int) { ++sp->signal_runs; });
      std::raise(SIGUSR1);
    }
    // posts from this thread too, a stop, and a poll
    // (the producers may have filled the queue: count only the posts it took)
    int own_posts = 0;
    for (int i = 0; i < 10; ++i) {
      if (loop.post([sp, tp] {
            sp->posts.fetch_add(1, std::memory_order_relaxed);
            tp->done();
          }) == errc::ok) {
        ++own_posts;
        traffic.posted.add();
      }
    }
    loop.stop();
    (void)loop.run();
    (void)loop.poll();
    const int expected_posts = producer_count * per_producer + own_posts;
    tltest::run_once_until(
        loop,
        [&] {
          return s.posts.load() == expected_posts && s.timer_runs >= 9 && s.periodic_runs >= 5 && s.io_runs >= 2 &&
                 (!TypeParam::port::has_signals || s.signal_runs >= 1);
        },
        [&] {
          // Only posts can be missing on a port that cannot sleep: timers and channels are due at
          // once there.
          if (traffic.ran.value() < expected_posts) traffic.template idle<TypeParam>();
        });
    done = true;
    if constexpr (TypeParam::port::has_signals) (void)loop.unwatch_signal(SIGUSR1);
    if (ra) (void)loop.remove(ra.value());
    if (rb2) (void)loop.remove(rb2.value());
    (void)loop.run();
    counted = counter.stop();
  }
  release.open();
  for (auto& t : producers) t.join();

  EXPECT_TRUE(done) << "posts " << s.posts.load() << " timers " << s.timer_runs << " periodic " << s.periodic_runs
                    << " io " << s.io_runs << " signals " << s.signal_runs;
  EXPECT_EQ(s.timer_runs, 9);
  EXPECT_EQ(s.periodic_runs, 5);
  EXPECT_EQ(counted, 0) << "heap allocations after the loop was constructed";
}

TYPED_TEST(alloc_workload, full_capacity_rejections_allocate_nothing) {
  TLTEST_REQUIRE_COUNTING();
  using loop_t = tltest::loop_for<TypeParam, tiny>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  long counted;
  errc timer_full, source_full, post_full;
  {
    allocation_counter counter;
    auto t = loop.after(1h, [] {});
    timer_full = loop.after(1h, [] {}).error();
    auto r = loop.add(a.fd(), events::read, [](events) {});
    source_full = loop.add(b.fd(), events::read, [](events) {}).error();
    (void)loop.post([] {});
    (void)loop.post([] {});
    post_full = loop.post([] {});
    (void)loop.poll();
    if (t) (void)loop.cancel(t.value());
    if (r) (void)loop.remove(r.value());
    counted = counter.stop();
  }
  EXPECT_EQ(timer_full, errc::full);
  EXPECT_EQ(source_full, TypeParam::port::has_fds ? errc::full : errc::unsupported);
  EXPECT_EQ(post_full, errc::full);
  EXPECT_EQ(counted, 0);
}

TYPED_TEST(alloc_workload, destructor_allocates_nothing) {
  TLTEST_REQUIRE_COUNTING();
  using loop_t = tltest::loop_for<TypeParam>;
  std::optional<loop_t> loop;
  loop.emplace();
  tltest::channel_for<TypeParam, loop_t> a(*loop);
  (void)loop->after(1h, [] {});
  (void)loop->post([] {});
  (void)loop->add(a.fd(), events::read, [](events) {});
  long counted;
  {
    allocation_counter counter;
    loop.reset();
    counted = counter.stop();
  }
  EXPECT_EQ(counted, 0);
}

}  // namespace alloc_tests
