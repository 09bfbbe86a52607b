// POSIX signals: callback on the loop thread, coalescing, bad signal numbers, already watched,
// previous disposition restored by unwatch_signal and by the destructor, capacity; children left to
// waitpid(); on ports that watch signals themselves (kqueue's EVFILT_SIGNAL), the port's errors.
#include "support/ports.hpp"

#include <atomic>
#include <csignal>
#include <optional>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

namespace signal_tests {

using tinyloop::errc;
using namespace std::chrono_literals;

struct two_signals : tinyloop::default_config {
  static constexpr std::size_t max_signals = 2;
};

std::atomic<int> previous_handler_calls{0};
extern "C" void previous_handler(int) { previous_handler_calls.fetch_add(1, std::memory_order_relaxed); }

// The handler currently installed for signo.
inline void (*current_handler(int signo))(int) {
  struct sigaction sa {};
  ::sigaction(signo, nullptr, &sa);
  return sa.sa_handler;
}

inline void set_handler(int signo, void (*h)(int)) {
  struct sigaction sa {};
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  ::sigaction(signo, &sa, nullptr);
}

// Ports that register signals in their own kernel object (native_signals) can fail there; the
// kevent emulation can make them (tests/support/kqueue_emu.hpp).
template <class F>
constexpr bool port_watches_signals = tinyloop::detail::native_signals<typename F::port>::value;
#if defined(TINYLOOP_KQUEUE_EMULATED)
constexpr bool can_inject_port_errors = true;
inline void fail_next_signal_add(int err) { tinyloop_kqemu::inject_change_error(EVFILT_SIGNAL, EV_ADD, err); }
inline void fail_next_signal_delete(int err) { tinyloop_kqemu::inject_change_error(EVFILT_SIGNAL, EV_DELETE, err); }
#else
constexpr bool can_inject_port_errors = false;
inline void fail_next_signal_add(int) {}
inline void fail_next_signal_delete(int) {}
#endif
#define TLTEST_REQUIRE_PORT_SIGNAL_ERRORS()                                                     \
  TLTEST_REQUIRE(port_watches_signals<TypeParam> && can_inject_port_errors,                     \
                 "signals go through the loop's own handler here: no port registration to fail")

template <class F>
class signals : public tltest::port_test<F> {
 protected:
  void SetUp() override {
    tltest::port_test<F>::SetUp();
    previous_handler_calls = 0;
  }
  void TearDown() override {
    set_handler(SIGUSR1, SIG_DFL);
    set_handler(SIGUSR2, SIG_DFL);
    set_handler(SIGWINCH, SIG_DFL);
    set_handler(SIGCHLD, SIG_DFL);
  }
};

TYPED_TEST_SUITE_P(signals);

TYPED_TEST_P(signals, callback_runs_on_loop_thread) {
  TLTEST_REQUIRE_SIGNALS();
  TLTEST_REQUIRE_THREADS();
  tltest::loop_for<TypeParam> loop;
  const auto loop_thread = std::this_thread::get_id();
  int calls = 0, seen_signo = 0;
  bool on_loop_thread = false;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&](int signo) {
    ++calls;
    seen_signo = signo;
    on_loop_thread = std::this_thread::get_id() == loop_thread;
  }),
            errc::ok);
  // raise() in another thread: the handler runs there; the callback must run here
  std::thread raiser([] { std::raise(SIGUSR1); });
  raiser.join();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_signo, SIGUSR1);
  EXPECT_TRUE(on_loop_thread);
}

TYPED_TEST_P(signals, callback_never_runs_inside_the_handler) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  bool raising = false, ran_inside = false;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [&](int) {
    ++calls;
    if (raising) ran_inside = true;
  }),
            errc::ok);
  raising = true;
  std::raise(SIGUSR2);  // the handler runs synchronously on this thread, before raise returns
  raising = false;
  EXPECT_EQ(calls, 0) << "the callback ran inside the signal handler";
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_FALSE(ran_inside);
}

TYPED_TEST_P(signals, signal_from_another_thread_wakes_a_sleeping_loop) {
  TLTEST_REQUIRE_SIGNALS();
  TLTEST_REQUIRE_BLOCKING();
  tinyloop::event_loop<tltest::counting_port<typename TypeParam::port>> loop;
  int calls = 0;
  auto* l = &loop;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [l, &calls](int) {
    ++calls;
    EXPECT_EQ(l->unwatch_signal(SIGUSR1), errc::ok);
  }),
            errc::ok);
  std::thread raiser([&loop] {
    tltest::spin_until([&] { return loop.port().in_blocking_wait.load(); });
    std::raise(SIGUSR1);
  });
  EXPECT_EQ(loop.run(), errc::ok);  // a watched signal keeps run() alive until unwatched
  raiser.join();
  EXPECT_EQ(calls, 1);
}

TYPED_TEST_P(signals, signals_arriving_while_pending_may_coalesce) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok);
  for (int i = 0; i < 3; ++i) std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_GE(calls, 1);
  EXPECT_LE(calls, 3);
  const int after = calls;
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, after) << "callbacks ran with no new signal";
}

TYPED_TEST_P(signals, several_deliveries_before_an_iteration_give_one_callback) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok);
  for (int i = 0; i < 3; ++i) std::raise(SIGUSR1);  // all delivered before raise() returns
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 1);
}

TYPED_TEST_P(signals, poll_runs_a_signal_that_arrived_before_it) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;  // no fds: a port that watches signals must still be asked
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [&calls](int) { ++calls; }), errc::ok);
  std::raise(SIGUSR2);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 1);
}

// The disposition the loop sets must not be SIG_IGN for SIGCHLD: the kernel would reap the child
// itself and waitpid() would fail with ECHILD.
TYPED_TEST_P(signals, sigchld_leaves_children_to_waitpid) {
  TLTEST_REQUIRE_SIGNALS();
  TLTEST_REQUIRE_REAL_FDS();  // a real process
  tltest::loop_for<TypeParam> loop;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGCHLD, [&calls](int) { ++calls; }), errc::ok);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(7);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child) << "errno " << errno;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  EXPECT_EQ(loop.unwatch_signal(SIGCHLD), errc::ok);
  EXPECT_EQ(current_handler(SIGCHLD), SIG_DFL);
}

TYPED_TEST_P(signals, port_refusing_a_signal_leaves_everything_as_it_was) {
  TLTEST_REQUIRE_PORT_SIGNAL_ERRORS();
  set_handler(SIGUSR2, &previous_handler);
  tltest::loop_for<TypeParam> loop;
  int good = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&good](int) { ++good; }), errc::ok);

  fail_next_signal_add(ENOMEM);  // the EV_ERROR entry of an EV_RECEIPT change
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.watch_signal(SIGUSR2, tltest::tracker(&runs, &destroyed)), errc::os_error);
  EXPECT_EQ(loop.os_errno(), ENOMEM);
  EXPECT_EQ(destroyed, 1) << "the rejected callback was not destroyed";
  EXPECT_EQ(current_handler(SIGUSR2), &previous_handler) << "a refused watch changed the disposition";
  EXPECT_EQ(loop.unwatch_signal(SIGUSR2), errc::not_found);

  fail_next_signal_add(EINVAL);
  EXPECT_EQ(loop.watch_signal(SIGUSR2, [](int) {}), errc::invalid_argument);
  EXPECT_EQ(current_handler(SIGUSR2), &previous_handler);

  {
    tltest::loop_for<TypeParam> other;  // the number was released: another loop may take it
    EXPECT_EQ(other.watch_signal(SIGUSR2, [](int) {}), errc::ok);
  }
  EXPECT_EQ(current_handler(SIGUSR2), &previous_handler);

  std::raise(SIGUSR2);
  EXPECT_EQ(previous_handler_calls.load(), 1);
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return good > 0; })) << "the good watch was disturbed";
  EXPECT_EQ(runs, 0);
  int later = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [&later](int) { ++later; }), errc::ok) << "the failure was one-off";
  std::raise(SIGUSR2);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return later > 0; }));
}

TYPED_TEST_P(signals, port_error_on_unwatch_still_unwatches) {
  TLTEST_REQUIRE_PORT_SIGNAL_ERRORS();
  set_handler(SIGUSR1, &previous_handler);
  tltest::loop_for<TypeParam> loop;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok);
  fail_next_signal_delete(EIO);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::os_error);
  EXPECT_EQ(loop.os_errno(), EIO);
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
  // The kernel may still hold the knote: its reports are dropped, the callback is gone.
  std::raise(SIGUSR1);
  EXPECT_EQ(previous_handler_calls.load(), 1);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 0) << "an unwatched signal reached the loop";
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::not_found);
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok) << "watching it again works";
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
}

TYPED_TEST_P(signals, each_watched_signal_gets_its_own_callback) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  int usr1 = 0, usr2 = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&usr1](int s) { usr1 += s == SIGUSR1; }), errc::ok);
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [&usr2](int s) { usr2 += s == SIGUSR2; }), errc::ok);
  std::raise(SIGUSR2);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return usr2 > 0; }));
  EXPECT_EQ(usr1, 0);
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return usr1 > 0; }));
  EXPECT_EQ(usr2, 1);
}

TYPED_TEST_P(signals, bad_signal_numbers_are_invalid_argument) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  int good = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&good](int) { ++good; }), errc::ok);
  const int bad[] = {0, -1, -SIGUSR2, NSIG, NSIG + 1, 100000, SIGKILL, SIGSTOP};
  for (int signo : bad) {
    int runs = 0, destroyed = 0;
    EXPECT_EQ(loop.watch_signal(signo, tltest::tracker(&runs, &destroyed)), errc::invalid_argument) << signo;
    EXPECT_EQ(destroyed, 1) << signo;
    EXPECT_EQ(runs, 0);
  }
  EXPECT_EQ(loop.unwatch_signal(0), errc::invalid_argument);
  EXPECT_EQ(loop.unwatch_signal(-1), errc::invalid_argument);
  EXPECT_EQ(loop.unwatch_signal(NSIG), errc::invalid_argument);
  EXPECT_EQ(current_handler(SIGKILL), SIG_DFL);
  // the good one is undisturbed
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return good > 0; }));
}

TYPED_TEST_P(signals, empty_callback_is_invalid_argument) {
  TLTEST_REQUIRE_SIGNALS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  EXPECT_EQ(loop.watch_signal(SIGUSR1, typename loop_t::signal_callback{}), errc::invalid_argument);
  EXPECT_EQ(current_handler(SIGUSR1), SIG_DFL) << "a rejected watch installed a handler";
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::not_found);
}

TYPED_TEST_P(signals, watching_twice_is_already_exists) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  int first = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&first](int) { ++first; }), errc::ok);
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.watch_signal(SIGUSR1, tltest::tracker(&runs, &destroyed)), errc::already_exists);
  EXPECT_EQ(destroyed, 1);
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return first > 0; }));
  EXPECT_EQ(runs, 0) << "the rejected callback ran";
}

TYPED_TEST_P(signals, signal_watched_by_another_loop_is_already_exists) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> a, b;
  ASSERT_EQ(a.watch_signal(SIGUSR1, [](int) {}), errc::ok);
  EXPECT_EQ(b.watch_signal(SIGUSR1, [](int) {}), errc::already_exists);
  EXPECT_EQ(a.unwatch_signal(SIGUSR1), errc::ok);
  EXPECT_EQ(b.watch_signal(SIGUSR1, [](int) {}), errc::ok) << "free again once unwatched";
}

TYPED_TEST_P(signals, unwatch_of_unwatched_signal_is_not_found) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam> loop;
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::not_found);
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [](int) {}), errc::ok);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::ok);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::not_found);
}

TYPED_TEST_P(signals, unwatch_restores_previous_handler) {
  TLTEST_REQUIRE_SIGNALS();
  set_handler(SIGUSR1, &previous_handler);
  tltest::loop_for<TypeParam> loop;
  int calls = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok);
  EXPECT_NE(current_handler(SIGUSR1), &previous_handler);
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_EQ(previous_handler_calls.load(), 0);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::ok);
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
  std::raise(SIGUSR1);
  EXPECT_EQ(previous_handler_calls.load(), 1);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 1) << "an unwatched signal still reached the loop";
}

TYPED_TEST_P(signals, unwatch_restores_ignore) {
  TLTEST_REQUIRE_SIGNALS();
  set_handler(SIGUSR2, SIG_IGN);
  tltest::loop_for<TypeParam> loop;
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [](int) {}), errc::ok);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR2), errc::ok);
  EXPECT_EQ(current_handler(SIGUSR2), SIG_IGN);
}

TYPED_TEST_P(signals, destructor_restores_previous_handlers) {
  TLTEST_REQUIRE_SIGNALS();
  set_handler(SIGUSR1, &previous_handler);
  set_handler(SIGUSR2, SIG_IGN);
  {
    tltest::loop_for<TypeParam> loop;
    ASSERT_EQ(loop.watch_signal(SIGUSR1, [](int) {}), errc::ok);
    ASSERT_EQ(loop.watch_signal(SIGUSR2, [](int) {}), errc::ok);
    ASSERT_EQ(loop.watch_signal(SIGWINCH, [](int) {}), errc::ok);
  }
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
  EXPECT_EQ(current_handler(SIGUSR2), SIG_IGN);
  EXPECT_EQ(current_handler(SIGWINCH), SIG_DFL);
  // and the signals are free for a new loop
  tltest::loop_for<TypeParam> next;
  EXPECT_EQ(next.watch_signal(SIGUSR1, [](int) {}), errc::ok);
}

TYPED_TEST_P(signals, unwatch_inside_own_callback) {
  TLTEST_REQUIRE_SIGNALS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int calls = 0;
  auto* l = &loop;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [l, &calls](int) {
    ++calls;
    EXPECT_EQ(l->unwatch_signal(SIGUSR1), errc::ok);
  }),
            errc::ok);
  ASSERT_TRUE(loop.after(TypeParam::tick, [] { std::raise(SIGUSR1); }));
  EXPECT_EQ(loop.run(), errc::ok);  // returns once the signal is unwatched and the timer fired
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(current_handler(SIGUSR1), SIG_DFL);
  // watching it again works
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&calls](int) { ++calls; }), errc::ok);
  std::raise(SIGUSR1);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls == 2; }));
}

TYPED_TEST_P(signals, full_is_rejected_and_nothing_disturbed) {
  TLTEST_REQUIRE_SIGNALS();
  tltest::loop_for<TypeParam, two_signals> loop;
  int usr1 = 0, usr2 = 0;
  ASSERT_EQ(loop.watch_signal(SIGUSR1, [&usr1](int) { ++usr1; }), errc::ok);
  ASSERT_EQ(loop.watch_signal(SIGUSR2, [&usr2](int) { ++usr2; }), errc::ok);
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.watch_signal(SIGWINCH, tltest::tracker(&runs, &destroyed)), errc::full);
  EXPECT_EQ(destroyed, 1) << "the rejected callback was not destroyed";
  EXPECT_EQ(current_handler(SIGWINCH), SIG_DFL) << "a rejected watch installed a handler";
  std::raise(SIGUSR1);
  std::raise(SIGUSR2);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return usr1 > 0 && usr2 > 0; }));
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR2), errc::ok);
  EXPECT_EQ(loop.watch_signal(SIGWINCH, [](int) {}), errc::ok) << "room again after unwatch";
}

TYPED_TEST_P(signals, unsupported_without_signals) {
  TLTEST_REQUIRE(!TypeParam::port::has_signals, "this port has signals (the other signal tests cover it)");
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.watch_signal(SIGUSR1, tltest::tracker(&runs, &destroyed)), errc::unsupported);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop.unwatch_signal(SIGUSR1), errc::unsupported);
  EXPECT_EQ(current_handler(SIGUSR1), SIG_DFL);
}

REGISTER_TYPED_TEST_SUITE_P(signals, callback_runs_on_loop_thread, callback_never_runs_inside_the_handler,
                            signal_from_another_thread_wakes_a_sleeping_loop,
                            signals_arriving_while_pending_may_coalesce,
                            several_deliveries_before_an_iteration_give_one_callback,
                            poll_runs_a_signal_that_arrived_before_it, sigchld_leaves_children_to_waitpid,
                            port_refusing_a_signal_leaves_everything_as_it_was, port_error_on_unwatch_still_unwatches,
                            each_watched_signal_gets_its_own_callback,
                            bad_signal_numbers_are_invalid_argument, empty_callback_is_invalid_argument,
                            watching_twice_is_already_exists, signal_watched_by_another_loop_is_already_exists,
                            unwatch_of_unwatched_signal_is_not_found, unwatch_restores_previous_handler,
                            unwatch_restores_ignore, destructor_restores_previous_handlers,
                            unwatch_inside_own_callback, full_is_rejected_and_nothing_disturbed,
                            unsupported_without_signals);

INSTANTIATE_TYPED_TEST_SUITE_P(signals, signals, tltest::all_ports, tltest::port_name);

#if defined(TINYLOOP_HAS_KQUEUE) && defined(TINYLOOP_HAS_EPOLL)
// Ownership is process-wide whichever way a loop watches: kqueue's knotes or the loop's handler.
TEST(signal_ownership, one_loop_per_signal_whatever_the_port) {
  {
    tinyloop::event_loop<tinyloop::kqueue_port> kq;
    tinyloop::event_loop<tinyloop::epoll_port> ep;
    int on_kq = 0, on_ep = 0;
    ASSERT_EQ(kq.watch_signal(SIGUSR1, [&on_kq](int) { ++on_kq; }), errc::ok);
    EXPECT_EQ(ep.watch_signal(SIGUSR1, [](int) {}), errc::already_exists);
    ASSERT_EQ(ep.watch_signal(SIGUSR2, [&on_ep](int) { ++on_ep; }), errc::ok);
    EXPECT_EQ(kq.watch_signal(SIGUSR2, [](int) {}), errc::already_exists);
    std::raise(SIGUSR1);
    std::raise(SIGUSR2);
    EXPECT_TRUE(tltest::run_until(kq, [&] { return on_kq > 0; }));
    EXPECT_TRUE(tltest::run_until(ep, [&] { return on_ep > 0; }));
    EXPECT_EQ(kq.unwatch_signal(SIGUSR1), errc::ok);
    ASSERT_EQ(ep.watch_signal(SIGUSR1, [&on_ep](int) { ++on_ep; }), errc::ok) << "free once unwatched";
    std::raise(SIGUSR1);
    EXPECT_TRUE(tltest::run_until(ep, [&] { return on_ep > 1; }));
    EXPECT_EQ(on_kq, 1);
  }
  EXPECT_EQ(current_handler(SIGUSR1), SIG_DFL);
  EXPECT_EQ(current_handler(SIGUSR2), SIG_DFL);
}
#endif

}  // namespace signal_tests
