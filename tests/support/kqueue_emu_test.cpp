// Tests of the test-only kevent emulation itself (kqueue_emu.hpp says what it models). Written
// against kqueue(2) semantics, so each would hold on FreeBSD too, except those named emulation_*.
#include "support/kqueue_emu.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

struct kevent change(int ident, int filter, int flags, unsigned fflags = 0, void* udata = nullptr) {
  struct kevent k;
  EV_SET(&k, ident, filter, flags, fflags, 0, udata);
  return k;
}

const timespec zero_timeout{0, 0};

// A kqueue and a non-blocking socket pair, closed at the end of the test.
class kq : public ::testing::Test {
 protected:
  void SetUp() override {
    fd = ::kqueue();
    ASSERT_GE(fd, 0) << errno;
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  }
  void TearDown() override {
    for (int s : sv)
      if (s >= 0) ::close(s);
    if (fd >= 0) ::close(fd);
  }
  // Applies one change with EV_RECEIPT; returns its errno (0 on success).
  int apply(struct kevent c) {
    c.flags |= EV_RECEIPT;
    struct kevent r;
    const int n = ::kevent(fd, &c, 1, &r, 1, &zero_timeout);
    EXPECT_EQ(n, 1);
    EXPECT_TRUE(r.flags & EV_ERROR);
    return static_cast<int>(r.data);
  }
  int poll(struct kevent* out, int n) { return ::kevent(fd, nullptr, 0, out, n, &zero_timeout); }
  void send(int s) { ASSERT_EQ(::write(s, "x", 1), 1); }
  void drain(int s) {
    char buf[64];
    while (::read(s, buf, sizeof buf) > 0) {
    }
  }

  int fd = -1;
  int sv[2] = {-1, -1};
};

TEST_F(kq, receipt_answers_each_change_with_ev_error_and_zero) {
  struct kevent ch[2] = {change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT),
                         change(sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT)};
  struct kevent out[2];
  ASSERT_EQ(::kevent(fd, ch, 2, out, 2, &zero_timeout), 2);
  for (const struct kevent& r : out) {
    EXPECT_EQ(r.flags, EV_ERROR);
    EXPECT_EQ(r.data, 0);
  }
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[1].filter, EVFILT_WRITE);
}

TEST_F(kq, receipt_reports_a_failed_change_without_hiding_the_others) {
  struct kevent ch[2] = {change(9999, EVFILT_READ, EV_ADD | EV_RECEIPT),
                         change(sv[0], EVFILT_READ, EV_ADD | EV_RECEIPT)};
  struct kevent out[2];
  ASSERT_EQ(::kevent(fd, ch, 2, out, 2, &zero_timeout), 2);
  EXPECT_EQ(out[0].data, EBADF);
  EXPECT_EQ(out[1].data, 0);
}

TEST_F(kq, event_list_may_be_the_change_list) {
  struct kevent ch[2] = {change(sv[0], EVFILT_READ, EV_ADD | EV_RECEIPT),
                         change(sv[1], EVFILT_READ, EV_DELETE | EV_RECEIPT)};
  ASSERT_EQ(::kevent(fd, ch, 2, ch, 2, &zero_timeout), 2);
  EXPECT_EQ(ch[0].data, 0);
  EXPECT_EQ(ch[1].data, ENOENT);
}

TEST_F(kq, failed_change_with_no_room_fails_the_call) {
  struct kevent c = change(9999, EVFILT_READ, EV_ADD);
  EXPECT_EQ(::kevent(fd, &c, 1, nullptr, 0, &zero_timeout), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(kq, deleting_a_missing_knote_is_enoent) {
  EXPECT_EQ(apply(change(sv[0], EVFILT_READ, EV_DELETE)), ENOENT);
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD)), 0);
  EXPECT_EQ(apply(change(sv[0], EVFILT_WRITE, EV_DELETE)), ENOENT);  // per filter
  EXPECT_EQ(apply(change(sv[0], EVFILT_READ, EV_DELETE)), 0);
  EXPECT_EQ(apply(change(sv[0], EVFILT_READ, EV_DELETE)), ENOENT);
}

TEST_F(kq, readable_fd_is_reported_with_its_udata) {
  int tag = 0;
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, &tag)), 0);
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 0);
  send(sv[1]);
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(out[0].ident, static_cast<std::uintptr_t>(sv[0]));
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].udata, &tag);
  EXPECT_FALSE(out[0].flags & EV_EOF);
}

TEST_F(kq, readding_updates_udata) {
  int a = 0, b = 0;
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, &a)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, &b)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);  // one knote, not two
  EXPECT_EQ(out[0].udata, &b);
}

TEST_F(kq, ev_clear_reports_an_edge_once) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(poll(out, 4), 0);  // still readable, but already reported
  send(sv[1]);
  EXPECT_EQ(poll(out, 4), 1);  // new data: a new edge
}

TEST_F(kq, without_ev_clear_readiness_is_reported_until_drained) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD)), 0);
  send(sv[1]);
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 1);
  EXPECT_EQ(poll(out, 4), 1);
  drain(sv[0]);
  EXPECT_EQ(poll(out, 4), 0);
}

TEST_F(kq, readding_reevaluates_a_ready_filter) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  EXPECT_EQ(poll(out, 4), 1);
}

TEST_F(kq, disabled_filter_is_silent_until_enabled) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR | EV_DISABLE)), 0);
  send(sv[1]);
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ENABLE)), 0);
  EXPECT_EQ(poll(out, 4), 1);
}

TEST_F(kq, oneshot_knote_is_deleted_once_reported) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_ONESHOT)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(poll(out, 4), 0);
  EXPECT_EQ(apply(change(sv[0], EVFILT_READ, EV_DELETE)), ENOENT);
}

TEST_F(kq, read_and_write_filters_are_separate_reports) {
  int r = 0, w = 0;
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, &r)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, &w)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 2);
  const bool read_first = out[0].filter == EVFILT_READ;
  EXPECT_EQ(out[read_first ? 0 : 1].udata, &r);
  EXPECT_EQ(out[read_first ? 1 : 0].udata, &w);
}

TEST_F(kq, a_short_event_list_loses_no_report) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR)), 0);
  send(sv[1]);
  struct kevent a, b, c;
  ASSERT_EQ(poll(&a, 1), 1);
  ASSERT_EQ(poll(&b, 1), 1);
  EXPECT_NE(a.filter, b.filter);
  EXPECT_EQ(poll(&c, 1), 0);
}

TEST_F(kq, deleting_a_filter_drops_its_undelivered_report) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR)), 0);
  send(sv[1]);
  struct kevent a;
  ASSERT_EQ(poll(&a, 1), 1);
  const int other = a.filter == EVFILT_READ ? EVFILT_WRITE : EVFILT_READ;
  ASSERT_EQ(apply(change(sv[0], other, EV_DELETE)), 0);
  struct kevent out[4];
  for (int n = poll(out, 4), i = 0; i < n; ++i) EXPECT_NE(out[i].filter, other);
}

TEST_F(kq, peer_close_sets_ev_eof_on_the_read_filter) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ::close(sv[1]);
  sv[1] = -1;
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_TRUE(out[0].flags & EV_EOF);
  EXPECT_EQ(out[0].fflags, 0u);  // a clean close is not an error
}

TEST_F(kq, pipe_reader_gone_sets_ev_eof_on_the_write_filter) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_EQ(apply(change(p[1], EVFILT_WRITE, EV_ADD | EV_CLEAR)), 0);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);  // writable at first
  EXPECT_FALSE(out[0].flags & EV_EOF);
  ::close(p[0]);
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_TRUE(out[0].flags & EV_EOF);
  ::close(p[1]);
}

TEST_F(kq, read_filter_on_a_pipe_write_end_is_accepted_and_never_fires) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_EQ(apply(change(p[1], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ::close(p[0]);  // epoll would say EPOLLERR here; kqueue's read filter stays silent
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 0);
  EXPECT_EQ(apply(change(p[1], EVFILT_READ, EV_DELETE)), 0);
  ::close(p[1]);
}

TEST_F(kq, write_filter_on_a_pipe_without_reader_is_epipe) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  ::close(p[0]);
  EXPECT_EQ(apply(change(p[1], EVFILT_WRITE, EV_ADD | EV_CLEAR)), EPIPE);
  EXPECT_EQ(apply(change(p[1], EVFILT_WRITE, EV_DELETE)), ENOENT);
  ::close(p[1]);
}

TEST_F(kq, closed_fd_is_ebadf_and_its_knotes_are_gone) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ::close(sv[0]);
  const int closed = sv[0];
  sv[0] = -1;
  EXPECT_EQ(apply(change(closed, EVFILT_READ, EV_DELETE)), EBADF);
}

TEST_F(kq, reused_fd_number_starts_without_knotes) {
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR)), 0);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  const int number = sv[0];
  ::close(sv[0]);
  ASSERT_EQ(::dup2(p[0], number), number);  // the old number, a new file
  ::close(p[0]);
  sv[0] = number;
  EXPECT_EQ(apply(change(number, EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  EXPECT_EQ(apply(change(number, EVFILT_WRITE, EV_DELETE)), ENOENT);  // died with the old file
  ASSERT_EQ(::write(p[1], "x", 1), 1);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  ::close(p[1]);
}

TEST_F(kq, emulation_refuses_regular_files) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(apply(change(::fileno(f), EVFILT_READ, EV_ADD)), EINVAL);
  std::fclose(f);
}

TEST_F(kq, unsupported_filter_is_einval) {
  EXPECT_EQ(apply(change(1, -7 /* EVFILT_TIMER */, EV_ADD)), EINVAL);
}

TEST_F(kq, user_event_fires_once_with_ev_clear) {
  int tag = 0;
  ASSERT_EQ(apply(change(0, EVFILT_USER, EV_ADD | EV_CLEAR, 0, &tag)), 0);
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 0);
  struct kevent t = change(0, EVFILT_USER, 0, NOTE_TRIGGER);
  ASSERT_EQ(::kevent(fd, &t, 1, nullptr, 0, nullptr), 0);
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(out[0].filter, EVFILT_USER);
  EXPECT_EQ(out[0].ident, 0u);
  EXPECT_EQ(out[0].udata, &tag);
  EXPECT_EQ(poll(out, 4), 0);
}

TEST_F(kq, user_ident_does_not_collide_with_fd_of_same_number) {
  ASSERT_EQ(apply(change(0, EVFILT_USER, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_USER, EV_ADD | EV_CLEAR)), 0);
  ASSERT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD | EV_CLEAR)), 0);
  send(sv[1]);
  struct kevent out[4];
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(out[0].filter, EVFILT_READ);
}

TEST_F(kq, user_trigger_without_knote_is_enoent) {
  EXPECT_EQ(apply(change(7, EVFILT_USER, 0, NOTE_TRIGGER)), ENOENT);
}

TEST_F(kq, trigger_from_another_thread_ends_a_blocking_wait) {
  ASSERT_EQ(apply(change(0, EVFILT_USER, EV_ADD | EV_CLEAR)), 0);
  std::thread t([this] {
    struct kevent c = change(0, EVFILT_USER, 0, NOTE_TRIGGER);
    ::kevent(fd, &c, 1, nullptr, 0, nullptr);
  });
  struct kevent out[4];
  const int n = ::kevent(fd, nullptr, 0, out, 4, nullptr);  // no timeout: only the trigger ends it
  t.join();
  ASSERT_EQ(n, 1);
  EXPECT_EQ(out[0].filter, EVFILT_USER);
}

TEST_F(kq, timeout_never_ends_early) {
  const auto start = std::chrono::steady_clock::now();
  const timespec ts{0, 15 * 1000 * 1000};
  struct kevent out[4];
  EXPECT_EQ(::kevent(fd, nullptr, 0, out, 4, &ts), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(15));
}

TEST_F(kq, invalid_timeout_is_einval) {
  const timespec ts{0, 1000 * 1000 * 1000};
  struct kevent out[1];
  EXPECT_EQ(::kevent(fd, nullptr, 0, out, 1, &ts), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(kq, not_a_kqueue_is_ebadf) {
  struct kevent out[1];
  EXPECT_EQ(::kevent(sv[0], nullptr, 0, out, 1, &zero_timeout), -1);
  EXPECT_EQ(errno, EBADF);
}

std::atomic<int> signals_seen{0};
extern "C" void on_signal(int) { signals_seen.fetch_add(1); }

TEST_F(kq, signal_interrupts_a_blocking_wait_with_eintr) {
  struct sigaction sa {}, old {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR2, &sa, &old), 0);  // no SA_RESTART
  std::atomic<bool> done{false};
  const pthread_t waiter = ::pthread_self();
  std::thread t([&] {
    // The waiter may not be inside kevent yet: signal until it comes back.
    while (!done.load()) {
      ::pthread_kill(waiter, SIGUSR2);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  struct kevent out[1];
  const int n = ::kevent(fd, nullptr, 0, out, 1, nullptr);
  const int err = errno;
  done.store(true);
  t.join();
  ::sigaction(SIGUSR2, &old, nullptr);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EINTR);
}

// ---- EVFILT_SIGNAL ----------------------------------------------------------------------------

void (*handler_of(int signo))(int) {
  struct sigaction sa {};
  ::sigaction(signo, nullptr, &sa);
  return sa.sa_handler;
}

void set_disposition(int signo, void (*h)(int)) {
  struct sigaction sa {};
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(::sigaction(signo, &sa, nullptr), 0);
}

TEST_F(kq, signal_knote_counts_deliveries_in_data_and_clears) {
  set_disposition(SIGUSR1, &on_signal);
  signals_seen = 0;
  int tag = 0;
  ASSERT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, &tag)), 0);
  struct kevent out[4];
  EXPECT_EQ(poll(out, 4), 0) << "no signal yet";
  for (int i = 0; i < 3; ++i) ::raise(SIGUSR1);
  EXPECT_EQ(signals_seen.load(), 3) << "the process's handler still runs for each";
  ASSERT_EQ(poll(out, 4), 1);
  EXPECT_EQ(out[0].filter, EVFILT_SIGNAL);
  EXPECT_EQ(out[0].ident, static_cast<std::uintptr_t>(SIGUSR1));
  EXPECT_EQ(out[0].data, 3);
  EXPECT_EQ(out[0].udata, &tag);
  EXPECT_TRUE(out[0].flags & EV_CLEAR) << "EV_CLEAR is implied";
  EXPECT_EQ(poll(out, 4), 0) << "reported once";
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), 0);
  set_disposition(SIGUSR1, SIG_DFL);
}

TEST_F(kq, signal_is_recorded_even_when_ignored) {
  set_disposition(SIGUSR2, SIG_IGN);
  ASSERT_EQ(apply(change(SIGUSR2, EVFILT_SIGNAL, EV_ADD)), 0);
  ::raise(SIGUSR2);
  struct kevent out[2];
  ASSERT_EQ(poll(out, 2), 1);
  EXPECT_EQ(out[0].ident, static_cast<std::uintptr_t>(SIGUSR2));
  EXPECT_EQ(apply(change(SIGUSR2, EVFILT_SIGNAL, EV_DELETE)), 0);
  set_disposition(SIGUSR2, SIG_DFL);
}

TEST_F(kq, signal_ends_a_blocking_wait) {
  set_disposition(SIGUSR1, &on_signal);
  ASSERT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_ADD)), 0);
  std::atomic<bool> done{false};
  const pthread_t waiter = ::pthread_self();
  std::thread t([&] {
    while (!done.load()) {  // the waiter may not be inside kevent yet
      ::pthread_kill(waiter, SIGUSR1);  // handled by the waiter before join() returns
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  struct kevent out[2];
  int n;
  do n = ::kevent(fd, nullptr, 0, out, 2, nullptr);  // no timeout: only the signal ends it
  while (n < 0 && errno == EINTR);
  done.store(true);
  t.join();
  ASSERT_EQ(n, 1);
  EXPECT_EQ(out[0].filter, EVFILT_SIGNAL);
  EXPECT_GE(out[0].data, 1);
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), 0);
  set_disposition(SIGUSR1, SIG_DFL);
}

TEST_F(kq, signal_knote_errors) {
  EXPECT_EQ(apply(change(0, EVFILT_SIGNAL, EV_ADD)), EINVAL);
  EXPECT_EQ(apply(change(NSIG, EVFILT_SIGNAL, EV_ADD)), EINVAL);
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), ENOENT);
}

TEST_F(kq, signal_knotes_in_two_kqueues_each_count) {
  set_disposition(SIGUSR1, &on_signal);
  const int other = ::kqueue();
  ASSERT_GE(other, 0);
  ASSERT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_ADD)), 0);
  struct kevent c = change(SIGUSR1, EVFILT_SIGNAL, EV_ADD);
  ASSERT_EQ(::kevent(other, &c, 1, nullptr, 0, nullptr), 0);
  ::raise(SIGUSR1);
  struct kevent out[2];
  EXPECT_EQ(poll(out, 2), 1);
  EXPECT_EQ(::kevent(other, nullptr, 0, out, 2, &zero_timeout), 1);
  ::close(other);
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), 0);
  (void)tinyloop_kqemu::live_kqueues();  // reclaims `other`, whose knote held the disposition too
  EXPECT_EQ(handler_of(SIGUSR1), &on_signal);
  set_disposition(SIGUSR1, SIG_DFL);
}

// The shadow disposition: the program reads and sets its own disposition through sigaction() while
// a knote exists, and gets it back in the kernel when the knote goes.
TEST_F(kq, emulation_keeps_the_programs_disposition_while_watched) {
  set_disposition(SIGUSR2, &on_signal);
  ASSERT_EQ(apply(change(SIGUSR2, EVFILT_SIGNAL, EV_ADD)), 0);
  EXPECT_EQ(handler_of(SIGUSR2), &on_signal);
  set_disposition(SIGUSR2, SIG_IGN);
  EXPECT_EQ(handler_of(SIGUSR2), SIG_IGN);
  signals_seen = 0;
  ::raise(SIGUSR2);
  EXPECT_EQ(signals_seen.load(), 0) << "ignored";
  struct kevent out[2];
  EXPECT_EQ(poll(out, 2), 1) << "yet recorded";
  EXPECT_EQ(apply(change(SIGUSR2, EVFILT_SIGNAL, EV_DELETE)), 0);
  struct sigaction real {};
  ASSERT_EQ(::sigaction(SIGUSR2, nullptr, &real), 0);
  EXPECT_EQ(real.sa_handler, SIG_IGN);
  EXPECT_EQ(real.sa_flags & SA_SIGINFO, 0) << "the emulation's handler is gone";
  set_disposition(SIGUSR2, SIG_DFL);
}

TEST_F(kq, emulation_injected_error_is_reported_for_that_change_only) {
  tinyloop_kqemu::inject_change_error(EVFILT_SIGNAL, EV_ADD, ENOMEM);
  EXPECT_EQ(apply(change(sv[0], EVFILT_READ, EV_ADD)), 0) << "another filter is not hit";
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_ADD)), ENOMEM);
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), ENOENT) << "the failed change was not applied";
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_ADD)), 0) << "one change only";
  EXPECT_EQ(apply(change(SIGUSR1, EVFILT_SIGNAL, EV_DELETE)), 0);
}

TEST(kqueue_emulation, closed_kqueues_are_reclaimed) {
  const int before = tinyloop_kqemu::live_kqueues();
  for (int i = 0; i < 100; ++i) {  // more than the emulation holds at once
    const int f = ::kqueue();
    ASSERT_GE(f, 0);
    ::close(f);
  }
  EXPECT_EQ(tinyloop_kqemu::live_kqueues(), before);
}

}  // namespace
