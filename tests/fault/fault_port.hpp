// A test-only port adaptor: wraps a real port's backend and makes chosen calls fail.
//
//   using loop = tinyloop::event_loop<tlfault::fault_port<tinyloop::epoll_port>>;
//   loop l;
//   l.port().plan().fail_add(ENOMEM);          // the next add() fails as the OS would: os_error, errno ENOMEM
//   l.port().plan().fail_wait(EBADF, 2);       // the next two waits fail
//   l.port().plan().saturate_wake = true;      // fill the wake channel so the real write sees EAGAIN
//   l.port().plan().linger_after_wake = 50ms;  // wake() stays inside the port that long after waking
//                                              // the loop, then writes to it (a preempted handler)
//   tlfault::open_failure = EMFILE;            // the next backend open() fails (static: the loop opens
//                                              // its port inside its constructor)
//
// Injected failures are reported exactly as the wrapped port reports the same errno from the OS
// (tinyloop::detail::errno_to_errc: EBADF/EPERM/EINVAL -> invalid_argument, EEXIST ->
// already_exists, anything else -> os_error), with last_errno() giving the errno. A failed call does
// not reach the wrapped port, so the OS state is what it would be after a real refusal.
//
// Signals during waits are real: signal_storm sends a signal to the loop thread over and over while it
// is inside the wrapped port's wait, so the OS call returns EINTR and the port's retry path runs.
#pragma once

#include "loop.hpp"
#include "support/sync.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <pthread.h>
#include <thread>
#include <time.h>

namespace tlfault {

// The errno the next backend open() fails with (0: none). Consumed by that open().
inline std::atomic<int> open_failure{0};

struct call_faults {
  int error = 0;      // errno to inject
  int remaining = 0;  // how many of the next calls fail
  bool take(int& err) noexcept {
    if (remaining <= 0) return false;
    --remaining;
    err = error;
    return true;
  }
};

struct plan {
  call_faults add, modify, remove, wait;
  bool saturate_wake = false;  // wake(): fill the wake channel first (a pipe then returns EAGAIN)
  // wake(): after the real wake, sleep this long (nanosleep: async-signal-safe), then write to this
  // plan. Models a signal handler preempted inside the loop's code while the loop, already woken,
  // goes on and may be destroyed: the loop must not free itself under the handler.
  std::chrono::microseconds linger_after_wake{0};
  std::atomic<int> wakes_finished{0};

  // What happened (loop thread, except wakes).
  int injected = 0;
  int waits = 0;
  std::atomic<int> wakes{0};
  std::atomic<bool> in_wait{false};  // the loop thread is inside the wrapped port's wait
  tltest::counter waits_entered;      // waits that reached the wrapped port (another thread may wait on it)

  void fail_add(int err, int times = 1) noexcept { add = {err, times}; }
  void fail_modify(int err, int times = 1) noexcept { modify = {err, times}; }
  void fail_remove(int err, int times = 1) noexcept { remove = {err, times}; }
  void fail_wait(int err, int times = 1) noexcept { wait = {err, times}; }
};

template <class Inner>
struct fault_port {
  using clock = typename Inner::clock;
  static constexpr bool has_fds = Inner::has_fds;
  static constexpr bool has_signals = Inner::has_signals;
  static constexpr bool interrupt_safe_wake = Inner::interrupt_safe_wake;

  template <class Config>
  class backend {
   public:
    tinyloop::errc open() noexcept {
      const int err = open_failure.exchange(0);
      if (err != 0) return inject(err);
      return inner_.open();
    }
    void close() noexcept { inner_.close(); }
    int last_errno() const noexcept { return injected_errno_ != 0 ? injected_errno_ : inner_.last_errno(); }

    tinyloop::errc add(int fd, tinyloop::events interest, std::uint64_t token) noexcept {
      int err;
      if (plan_.add.take(err)) return inject(err);
      injected_errno_ = 0;
      return inner_.add(fd, interest, token);
    }
    tinyloop::errc modify(int fd, tinyloop::events interest, std::uint64_t token) noexcept {
      int err;
      if (plan_.modify.take(err)) return inject(err);
      injected_errno_ = 0;
      return inner_.modify(fd, interest, token);
    }
    tinyloop::errc remove(int fd, std::uint64_t token) noexcept {
      int err;
      if (plan_.remove.take(err)) return inject(err);
      injected_errno_ = 0;
      return inner_.remove(fd, token);
    }

    template <class Sink>
    tinyloop::errc wait(typename clock::time_point deadline, Sink& sink) noexcept {
      ++plan_.waits;
      int err;
      if (plan_.wait.take(err)) {
        ++plan_.injected;
        injected_errno_ = err;
        return tinyloop::errc::os_error;  // a wait has no errno mapping: any failure is os_error
      }
      injected_errno_ = 0;
      plan_.in_wait.store(true);
      plan_.waits_entered.add();
      const tinyloop::errc e = inner_.wait(deadline, sink);
      plan_.in_wait.store(false);
      return e;
    }

    void wake() noexcept {
      plan_.wakes.fetch_add(1, std::memory_order_relaxed);
      if (plan_.saturate_wake) {
        // A pipe holds 64 KiB by default (one byte per wake): fill it, so the real wake()
        // below meets EAGAIN, as it does when a burst of wakes outruns the loop.
        for (int i = 0; i < (1 << 17); ++i) inner_.wake();
      }
      inner_.wake();
      if (plan_.linger_after_wake.count() > 0) {
        const auto us = plan_.linger_after_wake.count();
        timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
        while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        plan_.wakes_finished.fetch_add(1);  // after a use after free, ASan stops the test here
      }
    }

    tlfault::plan& plan() noexcept { return plan_; }
    typename Inner::template backend<Config>& inner() noexcept { return inner_; }

   private:
    tinyloop::errc inject(int err) noexcept {
      ++plan_.injected;
      injected_errno_ = err;
      return tinyloop::detail::errno_to_errc(err);
    }

    typename Inner::template backend<Config> inner_;
    tlfault::plan plan_;
    int injected_errno_ = 0;
  };
};

// Sends `signo` to `target` again and again (every `gap`) while `plan.in_wait` says the target is
// inside a wait: an EINTR storm for the OS call under it. Counts the signals sent during waits.
class signal_storm {
 public:
  signal_storm(plan& p, pthread_t target, int signo, std::chrono::microseconds gap)
      : thread_([this, &p, target, signo, gap] {
          while (!done_.load()) {
            if (p.in_wait.load()) {
              if (pthread_kill(target, signo) == 0) sent_.fetch_add(1);
            }
            std::this_thread::sleep_for(gap);
          }
        }) {}
  ~signal_storm() {
    done_.store(true);
    thread_.join();
  }
  signal_storm(const signal_storm&) = delete;
  signal_storm& operator=(const signal_storm&) = delete;
  int sent() const noexcept { return sent_.load(); }

 private:
  std::atomic<bool> done_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;  // last: starts after the counters exist
};

// Installs a handler that only counts, without SA_RESTART (so blocking calls return EINTR), and
// restores the previous one.
class counting_handler {
 public:
  explicit counting_handler(int signo) : signo_(signo) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { count().fetch_add(1, std::memory_order_relaxed); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(signo_, &sa, &previous_);
    count().store(0);
  }
  ~counting_handler() { sigaction(signo_, &previous_, nullptr); }
  counting_handler(const counting_handler&) = delete;
  counting_handler& operator=(const counting_handler&) = delete;
  static std::atomic<int>& count() noexcept {
    static std::atomic<int> n{0};
    return n;
  }

 private:
  int signo_;
  struct sigaction previous_ {};
};

}  // namespace tlfault
