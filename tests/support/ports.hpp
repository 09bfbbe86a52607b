// Typed-test machinery: one fixture per port, so each test runs against every port that has the
// feature it needs, and says so (GTEST_SKIP with a reason) on the ports that do not.
//
// A fixture F provides:
//   using port                        the tinyloop port type
//   name                              shown in test names (timers/timers/epoll/0.order) and skips
//   virtual_time                      time passes only when the loop waits (or pass_time is called)
//   blocking_wait                     a wait without deadline really sleeps until another thread wakes it
//   real_fds                          channels are OS file descriptors (closed fds, user-owned fds)
//   threads                           std::thread is available
//   tick                              a short duration: a few ms on real ports
//   reset()                           called before every test (sim: the virtual clock back to 0)
//   pass_time(d)                      lets at least d pass on the port's clock
//   channel<Loop>                     something the loop can watch, which the test makes ready
//
// A channel (constructed from the loop) provides fd(), ok(), make_readable(), drain(),
// make_writable(), hang_up(), make_error() and close_watched(). Real ports use a non-blocking AF_UNIX socketpair
// (kind::socket) or a pipe whose write end is watched (kind::pipe_writer, for error reports).
//
// Real-time ports use short real durations and never assert an upper bound on elapsed time (a
// loaded 2-core machine or qemu-user may stretch anything); they wait on events, not sleeps.
// Helpers: run_until (run_once with a guard timer), run_once_until (no guard, for threads),
// tracker (a callable that records runs and destruction), counting_port (counts the loop's port
// wakes and waits, and lets another thread wait until the loop sleeps). Threads wait for each other
// on events (support/sync.hpp: gate, counter), never by spinning or sleeping.
#pragma once

#include "loop.hpp"
#include "support/sync.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <type_traits>

#if TINYLOOP_HOSTED
#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace tltest {

using namespace std::chrono_literals;

template <class F, class Config = tinyloop::default_config>
using loop_for = tinyloop::event_loop<typename F::port, Config>;

enum class kind { socket, pipe_writer };

#if TINYLOOP_HOSTED

// Both ends non-blocking. For kind::socket, fd() is one end of a socketpair and the test acts on
// the other; for kind::pipe_writer, fd() is a pipe's write end and make_error() closes the reader.
class os_channel {
 public:
  template <class Loop>
  explicit os_channel(Loop&, kind k = kind::socket) {
    if (k == kind::socket) {
      ok_ = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) == 0;
      watched_ = 0;
    } else {
      ok_ = ::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) == 0;
      watched_ = 1;
    }
  }
  ~os_channel() {
    for (int& fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  os_channel(const os_channel&) = delete;
  os_channel& operator=(const os_channel&) = delete;

  int fd() const noexcept { return fds_[watched_]; }
  int peer() const noexcept { return fds_[1 - watched_]; }
  bool ok() const noexcept { return ok_; }

  void make_readable() {
    const char byte = 'x';
    ASSERT_EQ(::write(peer(), &byte, 1), 1) << "errno " << errno;
  }
  // Reads until EAGAIN; returns the number of bytes read.
  std::size_t drain() {
    std::size_t total = 0;
    char buf[256];
    for (;;) {
      const ssize_t n = ::read(fd(), buf, sizeof buf);
      if (n > 0) {
        total += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return total;
    }
  }
  void make_writable() {}  // a fresh socket or pipe has room
  void hang_up() { close_end(1 - watched_); }
  void make_error() { close_end(1 - watched_); }  // pipe_writer: a write end without reader
  // The user closes the watched fd (the loop must cope, and must never have closed it itself).
  void close_watched() { close_end(watched_); }

 private:
  void close_end(int i) {
    if (fds_[i] >= 0) ::close(fds_[i]);
    fds_[i] = -1;
  }
  int fds_[2] = {-1, -1};
  int watched_ = 0;
  bool ok_ = false;
};

// True while fd is an open descriptor of this process.
inline bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

#endif

// Channel numbers handed to sim channels; reset to 3 before each test.
inline int& sim_channel_counter() {
  static int n = 3;
  return n;
}

// A sim_port channel: a number the test picks, made ready through the port's test API.
template <class Loop>
class sim_channel {
 public:
  explicit sim_channel(Loop& loop, kind = kind::socket) : loop_(&loop), number_(sim_channel_counter()++) {}
  sim_channel(const sim_channel&) = delete;
  sim_channel& operator=(const sim_channel&) = delete;

  int fd() const noexcept { return number_; }
  bool ok() const noexcept { return true; }
  void make_readable() { loop_->port().make_ready(number_, tinyloop::events::read); }
  std::size_t drain() {
    loop_->port().clear_ready(number_);
    return 1;
  }
  void make_writable() { loop_->port().make_ready(number_, tinyloop::events::write); }
  void hang_up() { loop_->port().make_ready(number_, tinyloop::events::hangup); }
  void make_error() { loop_->port().make_ready(number_, tinyloop::events::error); }
  void close_watched() {}

 private:
  Loop* loop_;
  int number_;
};

#if TINYLOOP_HOSTED
struct real_time_fixture {
  static constexpr bool virtual_time = false;
  static constexpr bool blocking_wait = true;
  static constexpr bool real_fds = true;
  static constexpr bool threads = true;
  static constexpr std::chrono::milliseconds tick{3};
  static void reset() {}
  // Not synchronisation: lets time pass on a real clock (for "the loop fell behind" tests).
  template <class Rep, class Period>
  static void pass_time(std::chrono::duration<Rep, Period> d) {
    std::this_thread::sleep_for(d);
  }
  template <class Loop>
  using channel = os_channel;
};
#endif

#if defined(TINYLOOP_HAS_EPOLL)
struct epoll_fixture : real_time_fixture {
  using port = tinyloop::epoll_port;
  static constexpr const char* name = "epoll";
};
#endif

#if defined(TINYLOOP_HAS_POLL)
struct poll_fixture : real_time_fixture {
  using port = tinyloop::poll_port;
  static constexpr const char* name = "poll";
};
#endif

#if defined(TINYLOOP_HAS_KQUEUE)
struct kqueue_fixture : real_time_fixture {
  using port = tinyloop::kqueue_port;
  static constexpr const char* name = "kqueue";
};
#endif

struct sim_fixture {
  using port = tinyloop::sim_port;
  static constexpr const char* name = "sim";
  static constexpr bool virtual_time = true;
  static constexpr bool blocking_wait = false;
  static constexpr bool real_fds = false;
  static constexpr bool threads = TINYLOOP_HOSTED != 0;
  static constexpr std::chrono::milliseconds tick{3};
  static void reset() {
    port::clock::reset();
    sim_channel_counter() = 3;
  }
  template <class Rep, class Period>
  static void pass_time(std::chrono::duration<Rep, Period> d) {
    port::clock::advance(std::chrono::ceil<port::clock::duration>(d));
  }
  template <class Loop>
  using channel = sim_channel<Loop>;
};

template <class F, class Loop>
using channel_for = typename F::template channel<Loop>;

// Every port this platform has, plus sim.
using all_ports = ::testing::Types<
#if defined(TINYLOOP_HAS_EPOLL)
    epoll_fixture,
#endif
#if defined(TINYLOOP_HAS_POLL)
    poll_fixture,
#endif
#if defined(TINYLOOP_HAS_KQUEUE)
    kqueue_fixture,
#endif
    sim_fixture>;

// Test names read area/area/port/index (gtest) and area.test<fixture type> (CTest): the "/index"
// suffix is what CMake's gtest_discover_tests needs to print the fixture type in CTest names.
struct port_name {
  template <class F>
  static std::string GetName(int index) {
    return std::string(F::name) + "/" + std::to_string(index);
  }
};

template <class F>
class port_test : public ::testing::Test {
 protected:
  void SetUp() override { F::reset(); }
};

// A callable that records whether it ran and how often a live (not moved-from) instance was
// destroyed: a rejected callback must be destroyed exactly once without running.
struct tracker {
  int* runs;
  int* destroyed;
  bool live = true;

  tracker(int* r, int* d) noexcept : runs(r), destroyed(d) {}
  tracker(tracker&& o) noexcept : runs(o.runs), destroyed(o.destroyed), live(o.live) { o.live = false; }
  tracker& operator=(tracker&&) = delete;
  tracker(const tracker&) = delete;
  ~tracker() {
    if (live) ++*destroyed;
  }
  void operator()() { ++*runs; }
  template <class Arg>
  void operator()(Arg) {
    ++*runs;
  }
};

// Spins (yielding) until pred() holds. No timeout: CTest's TIMEOUT ends a hung test.
// Kept for tests/signals.cpp only; new code waits on an event (support/sync.hpp) instead: a
// spinning waiter starves the thread it waits for under valgrind, qemu-user and load.
template <class Pred>
void spin_until(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

// Runs the loop (run_once) until pred() holds or a guard timer of `guard` fires: a broken loop
// fails the test instead of hanging it. Returns pred().
template <class Loop, class Pred>
bool run_until(Loop& loop, Pred pred, std::chrono::milliseconds guard = std::chrono::seconds(20)) {
  bool expired = false;
  auto g = loop.after(guard, [&expired] { expired = true; });
  for (int spins = 0; !pred() && !expired; ++spins) {
    if (loop.run_once() != tinyloop::errc::ok) break;
    if (!g && spins > 10000) break;  // no room for a guard timer: bound the iterations instead
  }
  if (g && !expired) (void)loop.cancel(g.value());
  return pred();
}

// run_once until pred() holds, with no guard timer (a guard would let virtual time jump past
// work that another thread is about to post). A lost wake hangs here; CTest's TIMEOUT ends it.
// On a port whose wait cannot block (sim_port: virtual time), run_once returns at once when there
// is nothing to do, so the loop thread would spin while the thread it waits for needs the CPU:
// `idle` (called after every run_once that left pred() false) must then block until that thread
// has given the loop something to do. On blocking ports pass nothing: the loop sleeps in its wait.
template <class Loop, class Pred, class Idle>
void run_once_until(Loop& loop, Pred pred, Idle idle) {
  while (!pred()) {
    if (loop.run_once() != tinyloop::errc::ok) return;
    if (!pred()) idle();
  }
}
template <class Loop, class Pred>
void run_once_until(Loop& loop, Pred pred) {
  run_once_until(loop, pred, [] {});
}

// Cross-thread posting without spinning. Every callback in the loop's post queue must call done()
// (on the loop thread) and be counted in `posted` (post() does it). A producer that meets errc::full blocks until the loop has run one more
// callback; a loop on a port that cannot block (sim: virtual time) waits in idle<F>() until a
// producer posted something it has not run yet; on blocking ports idle<F>() does nothing (the loop
// sleeps in its wait, which is what the tests are about).
struct traffic {
  counter posted;  // accepted posts
  counter ran;     // callbacks that called done()
  std::atomic<long> full_retries{0};

  // Producer thread: posts a copy of fn, retrying (after the loop made room) while the queue is
  // full. Returns ok, or the first error other than full.
  template <class Loop, class Fn>
  tinyloop::errc post(Loop& loop, const Fn& fn) {
    for (;;) {
      const long seen = ran.value();
      const tinyloop::errc e = loop.post(Fn(fn));
      if (e == tinyloop::errc::ok) {
        posted.add();
        return e;
      }
      if (e != tinyloop::errc::full) return e;
      full_retries.fetch_add(1, std::memory_order_relaxed);
      ran.wait_past(seen);  // a full queue is drained by the loop thread, one callback at a time
    }
  }
  void done() { ran.add(); }
  template <class F>
  void idle() {
    if constexpr (!F::blocking_wait) posted.wait_for(ran.value() + 1);
  }
};

// Wraps a port's backend to count the loop's wake() calls and waits, and to show when the loop is
// in a wait that may block (the loop sets its sleeping flag before such a wait).
// The concept allows deriving: a port is a type with the documented members, nothing more.
template <class Port>
struct counting_port : Port {
  template <class Config>
  class backend : public Port::template backend<Config> {
    using base = typename Port::template backend<Config>;

   public:
    template <class Sink>
    tinyloop::errc wait(typename Port::clock::time_point deadline, Sink& sink) noexcept {
      waits.fetch_add(1, std::memory_order_relaxed);
      const bool may_block = deadline != Port::clock::time_point::min();
      if (may_block) {
        in_blocking_wait.store(true, std::memory_order_seq_cst);
        blocking_waits.add();
      }
      const tinyloop::errc e = base::wait(deadline, sink);
      in_blocking_wait.store(false, std::memory_order_seq_cst);
      return e;
    }
    void wake() noexcept {
      wakes.fetch_add(1, std::memory_order_relaxed);
      base::wake();
    }
    // Another thread: blocks until the loop thread has entered its n-th wait that may block (it
    // has set its sleeping flag by then, so a post or wake from now on must end that wait).
    void await_blocking_wait(long n = 1) { blocking_waits.wait_for(n); }

    std::atomic<int> wakes{0};
    std::atomic<int> waits{0};
    std::atomic<bool> in_blocking_wait{false};
    counter blocking_waits;  // waits entered that may block
  };
};

}  // namespace tltest

// Skips the running typed test, naming the port and why (never a silent pass).
#define TLTEST_REQUIRE(cond, why)                                          \
  do {                                                                     \
    if (!(cond)) GTEST_SKIP() << TypeParam::name << " port: " << (why);    \
  } while (0)

#define TLTEST_REQUIRE_FDS() TLTEST_REQUIRE(TypeParam::port::has_fds, "no fd-like channels")
#define TLTEST_REQUIRE_REAL_FDS() TLTEST_REQUIRE(TypeParam::real_fds, "channels are not OS fds")
#define TLTEST_REQUIRE_SIGNALS() TLTEST_REQUIRE(TypeParam::port::has_signals, "no POSIX signals")
#define TLTEST_REQUIRE_THREADS() TLTEST_REQUIRE(TypeParam::threads, "no threads")
#define TLTEST_REQUIRE_BLOCKING() \
  TLTEST_REQUIRE(TypeParam::blocking_wait, "virtual time: the loop never sleeps waiting for another thread")
#define TLTEST_REQUIRE_REAL_TIME()                                                                            \
  TLTEST_REQUIRE(!TypeParam::virtual_time && TypeParam::blocking_wait,                                      \
                 "virtual time: a wait for a far deadline returns at once, so it cannot stand for a long sleep")
#define TLTEST_REQUIRE_VIRTUAL_TIME() \
  TLTEST_REQUIRE(TypeParam::virtual_time, "exact firing times need virtual time; real clocks only bound them below")
