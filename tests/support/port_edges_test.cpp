// Edge cases of the OS ports' own machinery, over every real-fd port (epoll, poll, kqueue through
// the emulation): what poll_port's parking and kqueue_port's pending reports exist for. Built once
// with the poll port's eventfd wake and once with -DTINYLOOP_POLL_PIPE_WAKE (its pipe wake).
#include "support/ports.hpp"

#include <cerrno>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

namespace {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

template <class F>
class port_edges : public tltest::port_test<F> {};

using real_ports = ::testing::Types<
#if defined(TINYLOOP_HAS_EPOLL)
    tltest::epoll_fixture,
#endif
#if defined(TINYLOOP_HAS_KQUEUE)
    tltest::kqueue_fixture,
#endif
    tltest::poll_fixture>;
TYPED_TEST_SUITE(port_edges, real_ports, tltest::port_name);

struct sixteen_sources : tinyloop::default_config {
  static constexpr std::size_t max_sources = 16;
};

struct four_events_per_wait : tinyloop::default_config {
  static constexpr std::size_t events_per_wait = 4;
};

// A timer to bound a run without measuring anything: the test asserts on counts, not times.
template <class Loop>
void run_until_timer(Loop& loop, std::chrono::milliseconds d) {
  bool fired = false;
  ASSERT_TRUE(loop.after(d, [&fired] { fired = true; }));
  while (!fired) ASSERT_EQ(loop.run_once(), errc::ok);
}

// poll(2) reports POLLHUP on every call; a paused source must hear it once, not once per wait.
TYPED_TEST(port_edges, paused_source_hears_hangup_once) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop);
  ASSERT_TRUE(ch.ok());
  int hangups = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events ev) {
    EXPECT_FALSE(any(ev & events::read));
    if (any(ev & events::hangup)) ++hangups;
  });
  ASSERT_TRUE(r);
  ASSERT_EQ(loop.modify(r.value(), events::none), errc::ok);
  ch.hang_up();
  run_until_timer(loop, 30ms);
  EXPECT_EQ(hangups, 1);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// Resuming a paused source that hung up reports the hangup again (the report is not lost).
TYPED_TEST(port_edges, resumed_source_hears_an_earlier_hangup) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  auto r = loop.add(ch.fd(), events::read, [&](events ev) { seen |= ev; });
  ASSERT_TRUE(r);
  ASSERT_EQ(loop.modify(r.value(), events::none), errc::ok);
  ch.make_readable();
  ch.hang_up();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & events::hangup); }));
  seen = events::none;
  ASSERT_EQ(loop.modify(r.value(), events::read), errc::ok);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & events::read); }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// The user closes a watched fd without remove(): poll says POLLNVAL on every call, epoll and
// kqueue forget the fd. At most one report, and remove() still works.
TYPED_TEST(port_edges, fd_closed_without_remove_is_reported_at_most_once) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events ev) {
    ++calls;
    EXPECT_TRUE(any(ev & (events::error | events::hangup))) << static_cast<int>(ev);
  });
  ASSERT_TRUE(r);
  ch.close_watched();
  run_until_timer(loop, 30ms);
  EXPECT_LE(calls, 1);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// FreeBSD refuses EVFILT_WRITE on a pipe whose reader is gone (EPIPE); the source must still be
// added and hear error/hangup, as it does on epoll and poll.
TYPED_TEST(port_edges, write_interest_on_pipe_without_reader_reports_error) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop, tltest::kind::pipe_writer);
  ASSERT_TRUE(ch.ok());
  ch.make_error();  // reader closed before the add
  events seen = events::none;
  auto r = loop.add(ch.fd(), events::write, [&](events ev) { seen |= ev; });
  ASSERT_TRUE(r) << tinyloop::to_string(r.error());
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & (events::error | events::hangup)); }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// A pipe's write end watched for write only: when the reader goes, error or hangup arrives.
TYPED_TEST(port_edges, write_only_pipe_hears_reader_gone) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop, tltest::kind::pipe_writer);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  auto r = loop.add(ch.fd(), events::write, [&](events ev) { seen |= ev; });
  ASSERT_TRUE(r);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & events::write); }));
  seen = events::none;
  ch.make_error();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & (events::error | events::hangup)); }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// wake() runs in signal handlers: it must leave errno as it found it.
TYPED_TEST(port_edges, wake_preserves_errno) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  ASSERT_EQ(loop.status(), errc::ok);
  errno = EDOM;
  loop.port().wake();
  EXPECT_EQ(errno, EDOM);
  errno = EDOM;
  for (int i = 0; i < 100000; ++i) loop.port().wake();  // fills a pipe: the write fails with EAGAIN
  EXPECT_EQ(errno, EDOM);
  EXPECT_EQ(loop.poll(), errc::ok);  // and the channel drains
}

// A blocking wait with only an idle fd registered ends when another thread posts.
TYPED_TEST(port_edges, post_from_another_thread_ends_a_wait_on_idle_fds) {
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::os_channel ch(loop);
  ASSERT_TRUE(ch.ok());
  auto r = loop.add(ch.fd(), events::read, [](events) {});
  ASSERT_TRUE(r);
  for (int round = 0; round < 20; ++round) {
    bool ran = false;
    std::thread t([&] { EXPECT_EQ(loop.post([&ran] { ran = true; }), errc::ok); });
    while (!ran) ASSERT_EQ(loop.run_once(), errc::ok);
    t.join();
  }
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

// Removing many sources in an order that moves entries around (poll swaps the last entry into
// the hole) keeps every remaining one reporting to its own callback.
TYPED_TEST(port_edges, removals_keep_the_remaining_sources_intact) {
  using loop_t = tltest::loop_for<TypeParam, sixteen_sources>;
  loop_t loop;
  constexpr int n = 16;
  std::unique_ptr<tltest::os_channel> chans[n];
  tinyloop::source_id ids[n];
  int calls[n] = {};
  for (int i = 0; i < n; ++i) {
    chans[i] = std::make_unique<tltest::os_channel>(loop);
    ASSERT_TRUE(chans[i]->ok());
    auto* ch = chans[i].get();
    int* c = &calls[i];
    auto r = loop.add(ch->fd(), events::read, [ch, c](events) {
      ++*c;
      ch->drain();
    });
    ASSERT_TRUE(r);
    ids[i] = r.value();
  }
  for (int i : {0, 5, 15, 7, 1, 14}) ASSERT_EQ(loop.remove(ids[i]), errc::ok);
  for (int i = 0; i < n; ++i) chans[i]->make_readable();
  const auto removed = [](int i) { return i == 0 || i == 5 || i == 15 || i == 7 || i == 1 || i == 14; };
  EXPECT_TRUE(tltest::run_until(loop, [&] {
    for (int i = 0; i < n; ++i)
      if (!removed(i) && calls[i] == 0) return false;
    return true;
  }));
  for (int i = 0; i < n; ++i) {
    if (removed(i)) {
      EXPECT_EQ(calls[i], 0) << i;
    } else {
      EXPECT_GE(calls[i], 1) << i;
      EXPECT_EQ(loop.remove(ids[i]), errc::ok);
    }
  }
  // Re-adding into the freed slots works, and the fds are still the user's.
  for (int i : {0, 5}) {
    auto r = loop.add(chans[i]->fd(), events::read, [](events) {});
    ASSERT_TRUE(r);
    EXPECT_EQ(loop.remove(r.value()), errc::ok);
    EXPECT_TRUE(tltest::fd_is_open(chans[i]->fd()));
  }
}

// More sources stay ready than one wait may report: none is starved (poll_port is level-triggered
// and would report the same first few forever if every scan started at the first entry).
TYPED_TEST(port_edges, always_ready_sources_beyond_one_batch_all_get_reported) {
  using loop_t = tltest::loop_for<TypeParam, four_events_per_wait>;
  loop_t loop;
  constexpr int n = 10;
  std::unique_ptr<tltest::os_channel> chans[n];
  int calls[n] = {};
  tinyloop::source_id ids[n];
  for (int i = 0; i < n; ++i) {
    chans[i] = std::make_unique<tltest::os_channel>(loop);
    ASSERT_TRUE(chans[i]->ok());
    int* c = &calls[i];
    auto r = loop.add(chans[i]->fd(), events::read, [c](events) { ++*c; });  // never drains
    ASSERT_TRUE(r);
    ids[i] = r.value();
    chans[i]->make_readable();
  }
  for (int round = 0; round < 3; ++round) ASSERT_EQ(loop.run_once(), errc::ok);  // 3 x 4 >= 10
  for (int i = 0; i < n; ++i) EXPECT_GE(calls[i], 1) << "source " << i << " starved";
  for (auto id : ids) EXPECT_EQ(loop.remove(id), errc::ok);
}

}  // namespace
