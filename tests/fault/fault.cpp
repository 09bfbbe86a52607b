// Fault injection: the OS refuses registrations, waits fail or are interrupted by signal storms,
// the wake channel is full. The loop must report the refusal (errc + os_errno()), leave every other
// registration, timer and queued post intact, and keep running.
// Typed over epoll_port and poll_port (built twice: poll's eventfd wake, and with
// TINYLOOP_POLL_PIPE_WAKE its pipe wake, where a full pipe gives EAGAIN).
#include "fault_port.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <memory>
#include <pthread.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

// A non-blocking socketpair: the loop watches end(), the test writes to peer().
class socket_channel {
 public:
  socket_channel() { ok_ = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) == 0; }
  ~socket_channel() {
    if (ok_) {
      ::close(fds_[0]);
      ::close(fds_[1]);
    }
  }
  socket_channel(const socket_channel&) = delete;
  socket_channel& operator=(const socket_channel&) = delete;
  bool ok() const { return ok_; }
  int end() const { return fds_[0]; }
  void make_readable() const {
    const char c = 'x';
    ASSERT_EQ(::write(fds_[1], &c, 1), 1);
  }
  void drain() const {
    char buf[64];
    while (::read(fds_[0], buf, sizeof buf) > 0) {
    }
  }

 private:
  int fds_[2] = {-1, -1};
  bool ok_ = false;
};

template <class Port>
class fault : public ::testing::Test {
 protected:
  using loop_t = tinyloop::event_loop<tlfault::fault_port<Port>>;
};

using ports = ::testing::Types<tinyloop::epoll_port, tinyloop::poll_port>;
struct port_names {
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, tinyloop::epoll_port> ? "epoll" : "poll";
  }
};
TYPED_TEST_SUITE(fault, ports, port_names);

// Everything a test sets up before the fault, and checks after it: two readable sources, a timer and
// three queued posts, all of which must still work.
template <class Loop>
struct bystanders {
  socket_channel a, b;
  tinyloop::source_id ida, idb;
  int reads_a = 0, reads_b = 0, timer_runs = 0;
  std::vector<int> posts;

  void arm(Loop& loop) {
    ASSERT_TRUE(a.ok() && b.ok());
    auto ra = loop.add(a.end(), events::read, [this](events) { ++reads_a, a.drain(); });
    auto rb = loop.add(b.end(), events::read, [this](events) { ++reads_b, b.drain(); });
    ASSERT_TRUE(ra.ok() && rb.ok());
    ida = ra.value();
    idb = rb.value();
    ASSERT_TRUE(loop.after(1ms, [this] { ++timer_runs; }).ok());
    for (int i = 0; i < 3; ++i) ASSERT_EQ(loop.post([this, i] { posts.push_back(i); }), errc::ok);
  }

  // Runs the loop until all of it happened (each run_once waits for something, so no spinning).
  void check_intact(Loop& loop) {
    a.make_readable();
    b.make_readable();
    for (int i = 0; i < 100 && (reads_a == 0 || reads_b == 0 || timer_runs == 0 || posts.size() < 3); ++i)
      ASSERT_EQ(loop.run_once(), errc::ok);
    EXPECT_GE(reads_a, 1);
    EXPECT_GE(reads_b, 1);
    EXPECT_EQ(timer_runs, 1);
    EXPECT_EQ(posts, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(loop.active_sources(), 2u);
  }
};

TYPED_TEST(fault, add_refused_with_enomem_or_enospc_reports_os_error) {
  for (const int err : {ENOMEM, ENOSPC}) {
    typename TestFixture::loop_t loop;
    ASSERT_EQ(loop.status(), errc::ok);
    bystanders<typename TestFixture::loop_t> others;
    others.arm(loop);
    socket_channel c;
    loop.port().plan().fail_add(err);
    int runs = 0;
    const auto r = loop.add(c.end(), events::read, [&runs](events) { ++runs; });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::os_error);
    EXPECT_EQ(loop.os_errno(), err);
    EXPECT_EQ(loop.active_sources(), 2u);
    others.check_intact(loop);
    EXPECT_EQ(runs, 0);
    // The OS accepts it again: the refused fd can be registered now.
    const auto again = loop.add(c.end(), events::read, [&runs](events) { ++runs; });
    ASSERT_TRUE(again.ok());
    c.make_readable();
    while (runs == 0) ASSERT_EQ(loop.run_once(), errc::ok);
    EXPECT_EQ(loop.active_sources(), 3u);
  }
}

TYPED_TEST(fault, add_refused_with_ebadf_reports_invalid_argument) {
  typename TestFixture::loop_t loop;
  bystanders<typename TestFixture::loop_t> others;
  others.arm(loop);
  socket_channel c;
  loop.port().plan().fail_add(EBADF);
  const auto r = loop.add(c.end(), events::read, [](events) {});
  ASSERT_FALSE(r.ok());
  // The port maps EBADF to invalid_argument (a bad fd is the caller's mistake); os_errno() says why.
  EXPECT_EQ(r.error(), errc::invalid_argument);
  EXPECT_EQ(loop.os_errno(), EBADF);
  others.check_intact(loop);
}

TYPED_TEST(fault, refused_adds_until_full_leave_no_ghost_slots) {
  // Every refused add() must give its slot back: after many refusals the loop still has room for
  // max_sources registrations.
  typename TestFixture::loop_t loop;
  socket_channel c;
  loop.port().plan().fail_add(ENOMEM, 1000);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(loop.add(c.end(), events::read, [](events) {}).error(), errc::os_error);
  std::vector<socket_channel> chans(tinyloop::default_config::max_sources);
  for (auto& ch : chans) ASSERT_TRUE(loop.add(ch.end(), events::read, [](events) {}).ok());
  EXPECT_EQ(loop.active_sources(), tinyloop::default_config::max_sources);
  EXPECT_EQ(loop.add(c.end(), events::read, [](events) {}).error(), errc::full);
}

TYPED_TEST(fault, modify_refused_keeps_the_old_interest) {
  typename TestFixture::loop_t loop;
  bystanders<typename TestFixture::loop_t> others;
  others.arm(loop);
  loop.port().plan().fail_modify(ENOMEM);
  EXPECT_EQ(loop.modify(others.ida, events::none), errc::os_error);
  EXPECT_EQ(loop.os_errno(), ENOMEM);
  others.check_intact(loop);  // a is still read-interested: its callback runs
}

TYPED_TEST(fault, remove_refused_still_removes_the_source) {
  typename TestFixture::loop_t loop;
  bystanders<typename TestFixture::loop_t> others;
  others.arm(loop);
  socket_channel c;
  int runs = 0;
  const auto r = loop.add(c.end(), events::read, [&runs](events) { ++runs; });
  ASSERT_TRUE(r.ok());
  loop.port().plan().fail_remove(ENOMEM);
  EXPECT_EQ(loop.remove(r.value()), errc::os_error);
  EXPECT_EQ(loop.os_errno(), ENOMEM);
  EXPECT_EQ(loop.remove(r.value()), errc::not_found);  // the id is dead whatever the OS said
  c.make_readable();                                  // still in the OS set: its events are dropped
  others.check_intact(loop);
  EXPECT_EQ(runs, 0);
}

TYPED_TEST(fault, wait_failure_is_reported_and_the_next_iteration_works) {
  typename TestFixture::loop_t loop;
  bystanders<typename TestFixture::loop_t> others;
  others.arm(loop);
  ASSERT_EQ(loop.poll(), errc::ok);  // runs the three posts
  ASSERT_EQ(others.posts.size(), 3u);
  others.posts.clear();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(loop.post([&others, i] { others.posts.push_back(i); }), errc::ok);
  // The posts run before the wait, which then fails: run_once reports it after the callbacks ran.
  loop.port().plan().fail_wait(ENOMEM, 2);
  EXPECT_EQ(loop.run_once(), errc::os_error);
  EXPECT_EQ(loop.os_errno(), ENOMEM);
  EXPECT_EQ(loop.run_once(), errc::os_error);
  EXPECT_EQ(others.posts, (std::vector<int>{0, 1, 2}));
  others.posts.clear();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(loop.post([&others, i] { others.posts.push_back(i); }), errc::ok);
  others.check_intact(loop);
}

TYPED_TEST(fault, run_returns_the_wait_failure) {
  typename TestFixture::loop_t loop;
  socket_channel c;
  ASSERT_TRUE(loop.add(c.end(), events::read, [](events) {}).ok());
  loop.port().plan().fail_wait(EINVAL, 1);
  EXPECT_EQ(loop.run(), errc::os_error);
  EXPECT_EQ(loop.os_errno(), EINVAL);
  int runs = 0;
  ASSERT_EQ(loop.post([&runs] { ++runs; }), errc::ok);
  ASSERT_EQ(loop.run_once(), errc::ok);
  EXPECT_EQ(runs, 1);
}

TYPED_TEST(fault, open_failure_gives_status_and_errno_and_refuses_work) {
  tlfault::open_failure.store(EMFILE);
  typename TestFixture::loop_t loop;
  EXPECT_EQ(loop.status(), errc::os_error);
  EXPECT_EQ(loop.os_errno(), EMFILE);
  int runs = 0;
  EXPECT_NE(loop.post([&runs] { ++runs; }), errc::ok);
  EXPECT_NE(loop.run(), errc::ok);
  EXPECT_NE(loop.run_once(), errc::ok);
  EXPECT_NE(loop.poll(), errc::ok);
  socket_channel c;
  EXPECT_FALSE(loop.add(c.end(), events::read, [](events) {}).ok());
  EXPECT_EQ(runs, 0);
}

// Ping-pong from another thread with a loop that is waiting for each post: post_to_waiting(loop, i)
// blocks until post i-1 ran and the loop thread then entered a new wait of the wrapped port, then
// posts. Waits on events, never on time.
struct sleeper_posts {
  explicit sleeper_posts(tlfault::plan& p) : plan(&p), waits_at_last_run(p.waits_entered.value()) {}

  template <class Loop>
  bool post_to_waiting(Loop& loop, int i) {
    done.wait_for(i);
    plan->waits_entered.wait_for(waits_at_last_run.load() + 1);
    return loop.post([this] {
      waits_at_last_run.store(plan->waits_entered.value());
      done.add();
    }) == errc::ok;
  }

  tlfault::plan* plan;
  std::atomic<long> waits_at_last_run;  // waits entered when the latest post ran
  tltest::counter done;                 // posts that ran
};

// A signal lands in (nearly) every blocking wait, many times per wait: the port retries EINTR with
// the time that is left, timers still fire on time and never early, and posts from another thread
// and I/O still arrive.
TYPED_TEST(fault, signal_storm_during_every_wait) {
  using loop_t = typename TestFixture::loop_t;
  using clock = typename loop_t::clock;
  tlfault::counting_handler handler(SIGUSR2);
  loop_t loop;
  socket_channel c;
  int reads = 0;
  ASSERT_TRUE(loop.add(c.end(), events::read, [&](events) { ++reads, c.drain(); }).ok());
  tlfault::signal_storm storm(loop.port().plan(), pthread_self(), SIGUSR2, 50us);

  // Timers: each one fires at or after its deadline on the port's clock. At least `rounds` of them,
  // and more until the storm has hit more than `rounds` waits: the storm thread may get no CPU for a
  // while on a loaded machine (it once sent nothing during the first 20 rounds), and the test is only
  // worth something once the waits were interrupted. Bounded, so a storm that never hits fails below.
  constexpr int rounds = 20;
  constexpr int max_rounds = 100 * rounds;
  int early = 0, fired = 0, armed = 0;
  while (armed < rounds || (storm.sent() <= rounds && armed < max_rounds)) {
    const auto deadline = loop.now() + 5ms;
    ASSERT_TRUE(loop.after(5ms, [&] {
      ++fired;
      if (clock::now() < deadline) ++early;
    }).ok());
    ++armed;
    while (fired < armed) ASSERT_EQ(loop.run_once(), errc::ok);
  }
  EXPECT_EQ(fired, armed);
  EXPECT_EQ(early, 0);
  EXPECT_GT(storm.sent(), rounds) << "the storm did not hit the waits of " << armed << " timer rounds";

  // Posts from another thread wake the loop out of an interrupted wait: each one is made once the
  // loop thread has gone back into a wait (where the storm hits it) after running the previous one.
  sleeper_posts posts(loop.port().plan());
  std::thread producer([&] {
    for (int i = 0; i < 200; ++i) EXPECT_TRUE(posts.post_to_waiting(loop, i));
  });
  while (posts.done.value() < 200) ASSERT_EQ(loop.run_once(), errc::ok);
  producer.join();

  // I/O too.
  c.make_readable();
  while (reads == 0) ASSERT_EQ(loop.run_once(), errc::ok);

  EXPECT_GT(handler.count().load(), 0);
}

// A signal handler on another thread is still inside the loop (here: in the port's wake(), for
// 50 ms after waking the loop) when the loop, which already ran the signal's callback, unwatches
// the signal or is destroyed. Both wait for the handler to leave; before they did, the handler
// then wrote to freed memory (ASan: heap-use-after-free in wake()).
TYPED_TEST(fault, a_handler_still_running_keeps_the_loop_alive_until_it_leaves) {
  using loop_t = typename TestFixture::loop_t;
  for (const bool unwatch_first : {true, false}) {
    SCOPED_TRACE(unwatch_first ? "unwatch_signal, then destroy" : "destroy while watching");
    // SIGUSR2 reaches only the receiver thread: blocked here, unblocked there.
    sigset_t usr2, saved;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr2, &saved), 0);
    tltest::gate receiver_ready, receiver_may_exit;
    std::thread receiver([&] {
      ::pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);
      receiver_ready.open();
      receiver_may_exit.wait();
    });
    receiver_ready.wait();
    auto loop = std::make_unique<loop_t>();  // on the heap, so that ASan sees a use after the free
    tlfault::plan& plan = loop->port().plan();
    plan.linger_after_wake = 50ms;
    int callbacks = 0;
    ASSERT_EQ(loop->watch_signal(SIGUSR2, [&callbacks](int) { ++callbacks; }), errc::ok);
    // The handler wakes the loop only while it sleeps: send once the loop thread is in its wait.
    std::thread sender([&] {
      plan.waits_entered.wait_for(1);
      ::pthread_kill(receiver.native_handle(), SIGUSR2);
    });
    while (callbacks == 0) ASSERT_EQ(loop->run_once(), errc::ok);
    sender.join();
    if (unwatch_first) {
      ASSERT_EQ(loop->unwatch_signal(SIGUSR2), errc::ok);
      EXPECT_EQ(plan.wakes_finished.load(), 1) << "unwatch_signal() returned before the handler left";
    }
    loop.reset();
    receiver_may_exit.open();
    receiver.join();
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  }
}

// Every wake() meets a full wake channel (EAGAIN on the pipe; the eventfd counter just grows): the
// loop still wakes, drains the channel, and goes back to sleep instead of spinning on it.
TYPED_TEST(fault, wake_into_a_full_channel_still_wakes_the_loop) {
  typename TestFixture::loop_t loop;
  socket_channel c;
  ASSERT_TRUE(loop.add(c.end(), events::read, [](events) {}).ok());
  loop.port().plan().saturate_wake = true;
  constexpr int rounds = 5;
  // Each post is made once the loop sleeps, so each one has to wake it.
  sleeper_posts posts(loop.port().plan());
  std::thread producer([&] {
    for (int i = 0; i < rounds; ++i) ASSERT_TRUE(posts.post_to_waiting(loop, i));
  });
  while (posts.done.value() < rounds) ASSERT_EQ(loop.run_once(), errc::ok);
  producer.join();
  EXPECT_GE(loop.port().plan().wakes.load(), 1);
  // The channel was drained: a wait with a deadline now sleeps until the deadline instead of
  // returning at once for a stale wake (which would show as run_once returning with nothing run).
  const int waits_before = loop.port().plan().waits;
  int fired = 0;
  ASSERT_TRUE(loop.after(2ms, [&fired] { ++fired; }).ok());
  while (fired == 0) ASSERT_EQ(loop.run_once(), errc::ok);
  EXPECT_LE(loop.port().plan().waits - waits_before, 3) << "the loop spun on a wake channel it did not drain";
}

}  // namespace
