// A port written outside loop.hpp, the way a user would write one for an RTOS: only the members
// the port concept names (README "Writing a port"). It has a virtual microsecond clock, no fds, no
// signals, and a wait that, when there is no deadline, sleeps on a flag until wake() sets it (a
// Linux futex here; an RTOS task would take a semaphore or wait for a task notification). It does
// not spin: a spinning loop thread starves the thread that must wake it (valgrind, qemu, load).
// The timer and post suites of tests/timers.cpp and tests/post.cpp run against it unchanged.
#include "support/ports.hpp"

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace custom_port_tests {

struct tick_port {
  struct clock {
    using rep = std::int64_t;
    using period = std::micro;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<clock, duration>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept { return time_point(duration(ticks.load(std::memory_order_acquire))); }
    static void reset() noexcept { ticks.store(0, std::memory_order_release); }
    static void advance_to(time_point t) noexcept {
      rep cur = ticks.load(std::memory_order_relaxed);
      const rep want = t.time_since_epoch().count();
      while (cur < want && !ticks.compare_exchange_weak(cur, want, std::memory_order_acq_rel)) {
      }
    }
    static inline std::atomic<rep> ticks{0};
  };

  static constexpr bool has_fds = false;
  static constexpr bool has_signals = false;
  static constexpr bool interrupt_safe_wake = true;

  template <class Config>
  class backend {
   public:
    tinyloop::errc open() noexcept { return tinyloop::errc::ok; }
    void close() noexcept {}
    int last_errno() const noexcept { return 0; }

    template <class Sink>
    tinyloop::errc wait(clock::time_point deadline, Sink&) noexcept {
      // acq_rel: the waker published its work before setting the flag
      if (woken_.exchange(0, std::memory_order_acq_rel) != 0) return tinyloop::errc::ok;
      if (deadline == clock::time_point::min()) return tinyloop::errc::ok;
      if (deadline != clock::time_point::max()) {
        clock::advance_to(deadline);  // virtual time: the deadline has come
        return tinyloop::errc::ok;
      }
      // Sleeps while the flag is still 0; a wake() between the exchange and the sleep makes the
      // futex call return at once (the kernel compares the value first).
      while (woken_.exchange(0, std::memory_order_acq_rel) == 0) futex(FUTEX_WAIT_PRIVATE, 0);
      return tinyloop::errc::ok;
    }
    // A store and a futex wake: both async-signal-safe, as interrupt_safe_wake promises.
    void wake() noexcept {
      woken_.store(1, std::memory_order_release);
      futex(FUTEX_WAKE_PRIVATE, 1);
    }

   private:
    void futex(int op, int value) noexcept {
      (void)::syscall(SYS_futex, reinterpret_cast<int*>(&woken_), op, value, nullptr, nullptr, 0);
    }
    static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free,
                  "the futex word is the atomic's own int");
    std::atomic<int> woken_{0};
  };
};

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
static_assert(tinyloop::port<tick_port>, "the test port satisfies the port concept");
#endif

// Channels do not exist on this port; the fd tests skip before using one.
class no_channel {
 public:
  template <class Loop>
  explicit no_channel(Loop&, tltest::kind = tltest::kind::socket) {}
  int fd() const noexcept { return -1; }
  bool ok() const noexcept { return false; }
  void make_readable() {}
  std::size_t drain() { return 0; }
  void make_writable() {}
  void hang_up() {}
  void make_error() {}
  void close_watched() {}
};

struct custom_fixture {
  using port = tick_port;
  static constexpr const char* name = "custom";
  static constexpr bool virtual_time = true;
  static constexpr bool blocking_wait = true;  // a wait without deadline sleeps until wake()
  static constexpr bool real_fds = false;
  static constexpr bool threads = true;
  static constexpr std::chrono::milliseconds tick{3};
  static void reset() { port::clock::reset(); }
  template <class Rep, class Period>
  static void pass_time(std::chrono::duration<Rep, Period> d) {
    port::clock::advance_to(port::clock::now() + std::chrono::ceil<port::clock::duration>(d));
  }
  template <class Loop>
  using channel = no_channel;
};

}  // namespace custom_port_tests

#define TLTEST_NO_INSTANTIATE
#include "post.cpp"
#include "timers.cpp"

namespace timer_tests {
INSTANTIATE_TYPED_TEST_SUITE_P(custom_timers, timers, ::testing::Types<custom_port_tests::custom_fixture>,
                               tltest::port_name);
}
namespace post_tests {
INSTANTIATE_TYPED_TEST_SUITE_P(custom_post, post, ::testing::Types<custom_port_tests::custom_fixture>,
                               tltest::port_name);
}

namespace custom_port_tests {

using tinyloop::errc;
using custom_loop = tinyloop::event_loop<tick_port>;

TEST(custom_port, loop_constructs_with_the_users_clock) {
  tick_port::clock::reset();
  custom_loop loop;
  EXPECT_EQ(loop.status(), errc::ok);
  static_assert(std::is_same_v<custom_loop::clock, tick_port::clock>);
  static_assert(std::is_same_v<custom_loop::duration, std::chrono::microseconds>);
  EXPECT_EQ(loop.now().time_since_epoch().count(), 0);
}

TEST(custom_port, fds_are_unsupported) {
  custom_loop loop;
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.add(3, tinyloop::events::read, tltest::tracker(&runs, &destroyed)).error(), errc::unsupported);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop.modify(tinyloop::source_id{}, tinyloop::events::read), errc::unsupported);
  EXPECT_EQ(loop.remove(tinyloop::source_id{}), errc::unsupported);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TEST(custom_port, signals_are_unsupported) {
  custom_loop loop;
  EXPECT_EQ(loop.watch_signal(SIGUSR1, [](int) {}), errc::unsupported);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::unsupported);
}

TEST(custom_port, an_hour_of_timers_runs_in_virtual_time) {
  tick_port::clock::reset();
  custom_loop loop;
  int fired = 0;
  tinyloop::timer_id id;
  auto* l = &loop;
  auto r = loop.every(std::chrono::minutes(1), [l, &fired, &id] {
    if (++fired == 60) {
      EXPECT_EQ(l->cancel(id), errc::ok);
    }
  });
  ASSERT_TRUE(r);
  id = r.value();
  EXPECT_EQ(loop.run(), errc::ok);
  EXPECT_EQ(fired, 60);
  EXPECT_EQ(loop.now().time_since_epoch(), std::chrono::hours(1));
}

}  // namespace custom_port_tests
