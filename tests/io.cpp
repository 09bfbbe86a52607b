// I/O readiness: add/modify/remove, what is reported, removal inside callbacks, bad input,
// capacity, and fd ownership. Typed over every port with fds (sim: channels made ready by hand).
#include "support/ports.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace io_tests {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

struct two_sources : tinyloop::default_config {
  static constexpr std::size_t max_sources = 2;
};
struct one_event_per_wait : tinyloop::default_config {
  static constexpr std::size_t events_per_wait = 1;
};
struct many_sources_few_events : tinyloop::default_config {
  static constexpr std::size_t max_sources = 24;
  static constexpr std::size_t events_per_wait = 4;  // fewer than ready sources: several waits
};

template <class F>
class io : public tltest::port_test<F> {};

TYPED_TEST_SUITE_P(io);

// A registration that must keep working whatever bad input the test throws at the loop.
template <class F, class Loop>
struct witness {
  tltest::channel_for<F, Loop> ch;
  int reports = 0;
  tinyloop::source_id id;

  explicit witness(Loop& loop) : ch(loop) {
    EXPECT_TRUE(ch.ok());
    auto r = loop.add(ch.fd(), events::read, [this](events) {
      ++reports;
      ch.drain();
    });
    EXPECT_TRUE(r) << tinyloop::to_string(r.error());
    id = r.value();
  }
  void expect_still_reports(Loop& loop) {
    const int before = reports;
    ch.make_readable();
    EXPECT_TRUE(tltest::run_until(loop, [&] { return reports > before; })) << "the witness registration was disturbed";
  }
};

TYPED_TEST_P(io, readable_is_reported) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  int calls = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events ev) {
    seen = ev;
    ++calls;
    ch.drain();
  });
  ASSERT_TRUE(r) << tinyloop::to_string(r.error());
  EXPECT_EQ(loop.active_sources(), 1u);
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls > 0; }));
  EXPECT_EQ(seen, events::read);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, writable_is_reported) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::write, [&seen, l, &id](events ev) {
    seen = ev;
    EXPECT_EQ(l->remove(id), errc::ok);
  });
  ASSERT_TRUE(r);
  id = r.value();
  ch.make_writable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return seen != events::none; }));
  EXPECT_EQ(seen, events::write);
}

TYPED_TEST_P(io, read_and_write_interest_reports_both) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  auto r = loop.add(ch.fd(), events::read | events::write, [&seen](events ev) { seen |= ev; });
  ASSERT_TRUE(r);
  ch.make_writable();
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return seen == (events::read | events::write); }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, readiness_outside_interest_is_not_reported) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  // interest read; the channel is writable but has nothing to read
  auto r = loop.add(ch.fd(), events::read, [&calls](events) { ++calls; });
  ASSERT_TRUE(r);
  ch.make_writable();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, new_data_after_drain_is_reported_again) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events) {
    ++calls;
    ch.drain();
  });
  ASSERT_TRUE(r);
  for (int round = 1; round <= 3; ++round) {
    ch.make_readable();
    EXPECT_TRUE(tltest::run_until(loop, [&] { return calls >= round; })) << "round " << round;
  }
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, hangup_is_reported_whatever_the_interest) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  // interest write only, and the channel is never made writable by hand on sim
  auto r = loop.add(ch.fd(), events::write, [&seen, l, &id](events ev) {
    seen |= ev;
    if (any(ev & events::hangup)) {
      EXPECT_EQ(l->remove(id), errc::ok);
    }
  });
  ASSERT_TRUE(r);
  id = r.value();
  ch.hang_up();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & events::hangup); }));
}

// A pipe's write end whose reader is gone is in error. The interest is write only: the error bit
// comes although nobody asked for it.
TYPED_TEST_P(io, error_is_reported_whatever_the_interest) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop, tltest::kind::pipe_writer);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::write, [&seen, l, &id](events ev) {
    seen |= ev;
    if (any(ev & (events::error | events::hangup))) {
      EXPECT_EQ(l->remove(id), errc::ok);
    }
  });
  ASSERT_TRUE(r);
  id = r.value();
  ch.make_error();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & (events::error | events::hangup)); }))
      << "reported " << static_cast<int>(seen);
  if (TypeParam::virtual_time) {
    EXPECT_EQ(seen, events::error);
  }
}

TYPED_TEST_P(io, error_is_reported_while_paused) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop, tltest::kind::pipe_writer);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::write, [&seen, l, &id](events ev) {
    seen |= ev;
    EXPECT_EQ(l->remove(id), errc::ok);
  });
  ASSERT_TRUE(r);
  id = r.value();
  EXPECT_EQ(loop.modify(id, events::none), errc::ok);
  ch.make_error();
  for (int i = 0; i < 100 && seen == events::none; ++i) EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_TRUE(any(seen & (events::error | events::hangup))) << "reported " << static_cast<int>(seen);
  EXPECT_FALSE(any(seen & events::write)) << "a paused source reported write";
}

// Interest in a direction the fd cannot serve at all (read on a pipe's write end): the error must
// still come. kqueue cannot do it: the only filter registered (EVFILT_READ) never fires on a
// write-only fd, on FreeBSD and macOS as in the emulation.
TYPED_TEST_P(io, error_is_reported_with_interest_the_fd_cannot_serve) {
  TLTEST_REQUIRE_FDS();
  TLTEST_REQUIRE(std::string(TypeParam::name) != "kqueue",
                 "EVFILT_READ on a write-only fd never fires, so no filter carries the error (kqueue limit)");
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop, tltest::kind::pipe_writer);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::read, [&seen, l, &id](events ev) {
    seen |= ev;
    EXPECT_EQ(l->remove(id), errc::ok);
  });
  ASSERT_TRUE(r);
  id = r.value();
  ch.make_error();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return seen != events::none; }));
  EXPECT_TRUE(any(seen & (events::error | events::hangup))) << "reported " << static_cast<int>(seen);
  EXPECT_FALSE(any(seen & events::read));
}

TYPED_TEST_P(io, modify_to_none_pauses_the_source) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  auto r = loop.add(ch.fd(), events::read, [&](events ev) {
    EXPECT_TRUE(any(ev & events::read));
    ++calls;
    ch.drain();
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(loop.modify(r.value(), events::none), errc::ok);
  ch.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 0) << "a paused source reported read";
  // resuming reports the data that arrived while paused
  EXPECT_EQ(loop.modify(r.value(), events::read), errc::ok);
  EXPECT_TRUE(tltest::run_until(loop, [&] { return calls == 1; }));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, paused_source_still_reports_hangup) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::read, [&seen, l, &id](events ev) {
    seen |= ev;
    EXPECT_EQ(l->remove(id), errc::ok);
  });
  ASSERT_TRUE(r);
  id = r.value();
  EXPECT_EQ(loop.modify(id, events::none), errc::ok);
  ch.hang_up();
  // run() would return at once (no source with interest): iterate by hand
  for (int i = 0; i < 100 && seen == events::none; ++i) EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_TRUE(any(seen & events::hangup));
  EXPECT_FALSE(any(seen & events::read)) << "a paused source reported read";
}

TYPED_TEST_P(io, modify_switches_interest) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  events seen = events::none;
  auto r = loop.add(ch.fd(), events::read, [&seen](events ev) { seen |= ev; });
  ASSERT_TRUE(r);
  EXPECT_EQ(loop.modify(r.value(), events::write), errc::ok);
  ch.make_writable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return any(seen & events::write); }));
  EXPECT_FALSE(any(seen & events::read));
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, removed_source_gets_no_callback) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  auto r = loop.add(ch.fd(), events::read, [&calls](events) { ++calls; });
  ASSERT_TRUE(r);
  ch.make_readable();
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
  EXPECT_EQ(loop.active_sources(), 0u);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(loop.run(), errc::ok) << "nothing left: run returns";
}

TYPED_TEST_P(io, remove_inside_own_callback) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int calls = 0;
  tinyloop::source_id id;
  auto* l = &loop;
  auto r = loop.add(ch.fd(), events::read, [&calls, l, &id](events) {
    ++calls;
    EXPECT_EQ(l->remove(id), errc::ok);
    EXPECT_EQ(l->remove(id), errc::not_found);
    EXPECT_EQ(l->modify(id, events::read), errc::not_found);
  });
  ASSERT_TRUE(r);
  id = r.value();
  ch.make_readable();
  EXPECT_EQ(loop.run(), errc::ok);  // returns once the only source is gone
  EXPECT_EQ(calls, 1);
  ch.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TYPED_TEST_P(io, remove_other_source_fetched_in_same_batch) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  ASSERT_TRUE(a.ok() && b.ok());
  struct ctx {
    loop_t* loop;
    tinyloop::source_id ids[2];
    int calls[2] = {0, 0};
  } c{&loop, {}};
  for (int i = 0; i < 2; ++i) {
    auto* cp = &c;
    auto r = loop.add(i == 0 ? a.fd() : b.fd(), events::read, [cp, i](events) {
      ++cp->calls[i];
      EXPECT_EQ(cp->loop->remove(cp->ids[1 - i]), errc::ok);
      EXPECT_EQ(cp->loop->remove(cp->ids[i]), errc::ok);
    });
    ASSERT_TRUE(r);
    c.ids[i] = r.value();
  }
  a.make_readable();
  b.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);  // one wait fetches both events
  EXPECT_EQ(c.calls[0] + c.calls[1], 1) << "a source removed by an earlier callback of the batch still ran";
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(c.calls[0] + c.calls[1], 1);
  EXPECT_EQ(loop.active_sources(), 0u);
}

TYPED_TEST_P(io, modify_other_to_none_in_same_batch_suppresses_its_read) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  ASSERT_TRUE(a.ok() && b.ok());
  struct ctx {
    loop_t* loop;
    tinyloop::source_id ids[2];
    int calls[2] = {0, 0};
  } c{&loop, {}};
  for (int i = 0; i < 2; ++i) {
    auto* cp = &c;
    auto r = loop.add(i == 0 ? a.fd() : b.fd(), events::read, [cp, i](events) {
      ++cp->calls[i];
      EXPECT_EQ(cp->loop->modify(cp->ids[1 - i], events::none), errc::ok);
      EXPECT_EQ(cp->loop->modify(cp->ids[i], events::none), errc::ok);
    });
    ASSERT_TRUE(r);
    c.ids[i] = r.value();
  }
  a.make_readable();
  b.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(c.calls[0] + c.calls[1], 1) << "a source paused by an earlier callback of the batch got read";
  EXPECT_EQ(loop.remove(c.ids[0]), errc::ok);
  EXPECT_EQ(loop.remove(c.ids[1]), errc::ok);
}

TYPED_TEST_P(io, same_fd_added_again_inside_its_callback) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  struct ctx {
    loop_t* loop;
    int fd;
    tinyloop::source_id first, second;
    int first_calls = 0, second_calls = 0;
  } c{&loop, ch.fd(), {}, {}};
  auto* cp = &c;
  auto r = loop.add(ch.fd(), events::read, [cp](events) {
    ++cp->first_calls;
    EXPECT_EQ(cp->loop->remove(cp->first), errc::ok);
    auto again = cp->loop->add(cp->fd, events::read, [cp](events) { ++cp->second_calls; });
    EXPECT_TRUE(again) << tinyloop::to_string(again.error());
    cp->second = again.value();
    EXPECT_NE(cp->second, cp->first);
  });
  ASSERT_TRUE(r);
  c.first = r.value();
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return c.first_calls == 1; }));
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return c.second_calls >= 1; }));
  EXPECT_EQ(c.first_calls, 1);
  EXPECT_EQ(loop.remove(c.first), errc::not_found);
  EXPECT_EQ(loop.remove(c.second), errc::ok);
}

TYPED_TEST_P(io, same_fd_added_again_after_remove) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  int old_calls = 0, new_calls = 0;
  auto r1 = loop.add(ch.fd(), events::read, [&old_calls](events) { ++old_calls; });
  ASSERT_TRUE(r1);
  ch.make_readable();
  EXPECT_EQ(loop.remove(r1.value()), errc::ok);
  auto r2 = loop.add(ch.fd(), events::read, [&](events) {
    ++new_calls;
    ch.drain();
  });
  ASSERT_TRUE(r2) << tinyloop::to_string(r2.error());
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return new_calls >= 1; }));
  EXPECT_EQ(old_calls, 0);
  EXPECT_EQ(loop.remove(r2.value()), errc::ok);
}

TYPED_TEST_P(io, fd_minus_one_is_invalid_argument) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.add(-1, events::read, tltest::tracker(&runs, &destroyed)).error(), errc::invalid_argument);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop.active_sources(), 1u);
  w.expect_still_reports(loop);
  EXPECT_EQ(runs, 0);
}

TYPED_TEST_P(io, closed_fd_is_invalid_argument) {
  TLTEST_REQUIRE_FDS();
  TLTEST_REQUIRE_REAL_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  int closed_fd = -1;
  {
    tltest::channel_for<TypeParam, loop_t> gone(loop);
    ASSERT_TRUE(gone.ok());
    closed_fd = gone.fd();
  }
  ASSERT_FALSE(tltest::fd_is_open(closed_fd));
  EXPECT_EQ(loop.add(closed_fd, events::read, [](events) {}).error(), errc::invalid_argument);
  EXPECT_EQ(loop.active_sources(), 1u);
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, same_fd_twice_is_already_exists) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.add(w.ch.fd(), events::write, tltest::tracker(&runs, &destroyed)).error(), errc::already_exists);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop.active_sources(), 1u);
  w.expect_still_reports(loop);
  EXPECT_EQ(runs, 0);
}

TYPED_TEST_P(io, same_fd_twice_paused_is_already_exists) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  EXPECT_EQ(loop.modify(w.id, events::none), errc::ok);
  EXPECT_EQ(loop.add(w.ch.fd(), events::read, [](events) {}).error(), errc::already_exists);
  EXPECT_EQ(loop.modify(w.id, events::read), errc::ok);
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, events_none_is_invalid_argument) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  tltest::channel_for<TypeParam, loop_t> other(loop);
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.add(other.fd(), events::none, tltest::tracker(&runs, &destroyed)).error(), errc::invalid_argument);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop.active_sources(), 1u);
  // the fd was not registered: adding it properly now works
  auto r = loop.add(other.fd(), events::read, [](events) {});
  EXPECT_TRUE(r) << tinyloop::to_string(r.error());
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, empty_callback_is_invalid_argument) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  tltest::channel_for<TypeParam, loop_t> other(loop);
  EXPECT_EQ(loop.add(other.fd(), events::read, typename loop_t::io_callback{}).error(), errc::invalid_argument);
  EXPECT_EQ(loop.active_sources(), 1u);
  auto r = loop.add(other.fd(), events::read, [](events) {});
  EXPECT_TRUE(r) << "a rejected add left the fd registered: " << tinyloop::to_string(r.error());
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
  w.expect_still_reports(loop);
}

namespace {
int io_function_calls = 0;
void io_function(events) { ++io_function_calls; }
}  // namespace

// add() takes an io_callback (the contract's signature) and, through a second overload, any callable
// one can be made of, built straight into the slot. Both accept and reject alike.
TYPED_TEST_P(io, every_kind_of_callable_is_accepted_alike) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  using io_callback = typename loop_t::io_callback;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  void (*null_function)(events) = nullptr;
  EXPECT_EQ(loop.add(ch.fd(), events::read, null_function).error(), errc::invalid_argument);
  EXPECT_EQ(loop.add(ch.fd(), events::read, nullptr).error(), errc::invalid_argument);
  EXPECT_EQ(loop.add(ch.fd(), events::read, {}).error(), errc::invalid_argument);
  EXPECT_EQ(loop.active_sources(), 1u);
  int lvalue_calls = 0;
  auto lvalue = [&](events) {
    ++lvalue_calls;
    ch.drain();
  };
  io_function_calls = 0;
  // Each kind in turn on the same fd: registered, reported once, removed.
  auto check = [&](auto&& cb, auto reported) {
    auto r = loop.add(ch.fd(), events::read, std::forward<decltype(cb)>(cb));
    ASSERT_TRUE(r) << tinyloop::to_string(r.error());
    ch.make_readable();
    EXPECT_TRUE(tltest::run_until(loop, reported));
    ch.drain();
    EXPECT_EQ(loop.remove(r.value()), errc::ok);
  };
  check(lvalue, [&] { return lvalue_calls == 1; });
  lvalue(events::read);  // copied in: ours still works
  EXPECT_EQ(lvalue_calls, 2);
  int made_calls = 0;
  check(io_callback([&made_calls](events) { ++made_calls; }), [&] { return made_calls >= 1; });
  check(&io_function, [&] { return io_function_calls >= 1; });
  check(tltest::tracker(&made_calls, &lvalue_calls), [&] { return made_calls >= 2; });
  EXPECT_EQ(lvalue_calls, 3) << "the non-trivial callable was destroyed once, by remove()";
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, default_id_is_not_found) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  EXPECT_EQ(loop.remove(tinyloop::source_id{}), errc::not_found);
  EXPECT_EQ(loop.modify(tinyloop::source_id{}, events::write), errc::not_found);
  EXPECT_EQ(loop.active_sources(), 1u);
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, stale_id_is_not_found_after_slot_reuse) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam, two_sources>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  ASSERT_TRUE(ch.ok());
  std::vector<tinyloop::source_id> stale;
  int stale_calls = 0;
  for (int round = 0; round < 20; ++round) {
    auto r = loop.add(ch.fd(), events::read, [&stale_calls](events) { ++stale_calls; });
    ASSERT_TRUE(r) << "round " << round << ": " << tinyloop::to_string(r.error());
    stale.push_back(r.value());
    EXPECT_EQ(loop.remove(r.value()), errc::ok);
  }
  int live_calls = 0;
  auto live = loop.add(ch.fd(), events::read, [&](events) {
    ++live_calls;
    ch.drain();
  });
  ASSERT_TRUE(live);
  for (auto id : stale) {
    EXPECT_NE(id, live.value());
    EXPECT_EQ(loop.remove(id), errc::not_found);
    EXPECT_EQ(loop.modify(id, events::none), errc::not_found);
  }
  ch.make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] { return live_calls >= 1; })) << "a stale id disturbed the live one";
  EXPECT_EQ(stale_calls, 0);
  w.expect_still_reports(loop);
}

// Each loop's first source sits in slot 0, but the ids differ: an id from another loop is
// not_found, and both registrations go on working.
TYPED_TEST_P(io, id_from_another_loop_is_not_found) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t a, b;
  witness<TypeParam, loop_t> wa(a), wb(b);
  EXPECT_EQ(wa.id.index(), wb.id.index());
  EXPECT_NE(wa.id, wb.id);
  EXPECT_EQ(b.modify(wa.id, events::none), errc::not_found);
  EXPECT_EQ(b.remove(wa.id), errc::not_found);
  EXPECT_EQ(a.remove(wb.id), errc::not_found);
  EXPECT_EQ(a.active_sources(), 1u);
  EXPECT_EQ(b.active_sources(), 1u);
  wb.expect_still_reports(b);
  wa.expect_still_reports(a);
}

TYPED_TEST_P(io, full_is_rejected_and_nothing_disturbed) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam, two_sources>;
  loop_t loop;
  witness<TypeParam, loop_t> w1(loop), w2(loop);
  tltest::channel_for<TypeParam, loop_t> third(loop);
  ASSERT_TRUE(third.ok());
  int runs = 0, destroyed = 0;
  EXPECT_EQ(loop.add(third.fd(), events::read, tltest::tracker(&runs, &destroyed)).error(), errc::full);
  EXPECT_EQ(destroyed, 1) << "the rejected callback was not destroyed";
  EXPECT_EQ(loop.active_sources(), 2u);
  w1.expect_still_reports(loop);
  w2.expect_still_reports(loop);
  third.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);
  EXPECT_EQ(runs, 0);
  // removing one makes room
  EXPECT_EQ(loop.remove(w1.id), errc::ok);
  auto r = loop.add(third.fd(), events::read, [](events) {});
  EXPECT_TRUE(r);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
}

TYPED_TEST_P(io, callback_destroyed_on_remove) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  int runs = 0, destroyed = 0;
  auto r = loop.add(ch.fd(), events::read, tltest::tracker(&runs, &destroyed));
  ASSERT_TRUE(r);
  EXPECT_EQ(destroyed, 0);
  EXPECT_EQ(loop.remove(r.value()), errc::ok);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(runs, 0);
}

TYPED_TEST_P(io, loop_never_closes_user_fd) {
  TLTEST_REQUIRE_FDS();
  TLTEST_REQUIRE_REAL_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  std::optional<loop_t> loop;
  loop.emplace();
  tltest::channel_for<TypeParam, loop_t> removed(*loop), kept(*loop);
  auto r = loop->add(removed.fd(), events::read, [](events) {});
  ASSERT_TRUE(r);
  ASSERT_TRUE(loop->add(kept.fd(), events::read | events::write, [](events) {}));
  EXPECT_EQ(loop->remove(r.value()), errc::ok);
  EXPECT_TRUE(tltest::fd_is_open(removed.fd())) << "remove() closed the user's fd";
  loop.reset();  // destroyed with `kept` still registered
  EXPECT_TRUE(tltest::fd_is_open(removed.fd()));
  EXPECT_TRUE(tltest::fd_is_open(kept.fd())) << "the destructor closed a user's fd";
}

TYPED_TEST_P(io, remove_after_user_closed_fd) {
  TLTEST_REQUIRE_FDS();
  TLTEST_REQUIRE_REAL_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  witness<TypeParam, loop_t> w(loop);
  tltest::channel_for<TypeParam, loop_t> ch(loop);
  auto r = loop.add(ch.fd(), events::read, [](events) {});
  ASSERT_TRUE(r);
  ch.close_watched();
  EXPECT_EQ(loop.remove(r.value()), errc::ok) << "an fd the user closed first is not an error";
  EXPECT_EQ(loop.remove(r.value()), errc::not_found);
  EXPECT_EQ(loop.active_sources(), 1u);
  w.expect_still_reports(loop);
}

TYPED_TEST_P(io, many_sources_ready_at_once_all_reported) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam, many_sources_few_events>;
  loop_t loop;
  std::vector<std::unique_ptr<tltest::channel_for<TypeParam, loop_t>>> chans;
  std::vector<int> calls(24, 0);
  std::vector<tinyloop::source_id> ids;
  for (int i = 0; i < 24; ++i) {
    chans.push_back(std::make_unique<tltest::channel_for<TypeParam, loop_t>>(loop));
    ASSERT_TRUE(chans.back()->ok());
    auto* ch = chans.back().get();
    auto* n = &calls[static_cast<std::size_t>(i)];
    auto r = loop.add(ch->fd(), events::read, [ch, n](events) {
      ++*n;
      ch->drain();
    });
    ASSERT_TRUE(r);
    ids.push_back(r.value());
  }
  for (auto& ch : chans) ch->make_readable();
  EXPECT_TRUE(tltest::run_until(loop, [&] {
    for (int c : calls)
      if (c == 0) return false;
    return true;
  }));
  for (auto id : ids) EXPECT_EQ(loop.remove(id), errc::ok);
}

// A busy fd (ready again every time its callback runs) must not starve another ready fd, even
// when the loop fetches one event per wait: the port has to take turns.
TYPED_TEST_P(io, busy_fd_does_not_starve_other_fds) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam, one_event_per_wait>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> busy(loop), quiet(loop);
  ASSERT_TRUE(busy.ok() && quiet.ok());
  int busy_calls = 0, quiet_calls = 0;
  auto rb = loop.add(busy.fd(), events::read, [&](events) {
    ++busy_calls;
    busy.drain();
    busy.make_readable();  // more input already waiting
  });
  auto rq = loop.add(quiet.fd(), events::read, [&](events) {
    ++quiet_calls;
    quiet.drain();
  });
  ASSERT_TRUE(rb && rq);
  busy.make_readable();
  EXPECT_EQ(loop.poll(), errc::ok);  // the busy fd is first in line
  quiet.make_readable();
  for (int i = 0; i < 200 && quiet_calls == 0; ++i) EXPECT_EQ(loop.run_once(), errc::ok);
  EXPECT_EQ(quiet_calls, 1) << "the busy fd ran " << busy_calls << " times, the other fd never";
  EXPECT_EQ(loop.remove(rb.value()), errc::ok);
  EXPECT_EQ(loop.remove(rq.value()), errc::ok);
}

TYPED_TEST_P(io, busy_fd_does_not_starve_timers) {
  TLTEST_REQUIRE_FDS();
  using loop_t = tltest::loop_for<TypeParam>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> busy(loop);
  ASSERT_TRUE(busy.ok());
  int busy_calls = 0;
  bool timer_ran = false;
  auto rb = loop.add(busy.fd(), events::read, [&](events) {
    ++busy_calls;
    busy.drain();
    busy.make_readable();
    TypeParam::pass_time(std::chrono::milliseconds(1));  // each callback takes a while
  });
  ASSERT_TRUE(rb);
  ASSERT_TRUE(loop.after(2 * TypeParam::tick, [&timer_ran] { timer_ran = true; }));
  busy.make_readable();
  for (int i = 0; i < 100000 && !timer_ran; ++i) EXPECT_EQ(loop.run_once(), errc::ok);
  EXPECT_TRUE(timer_ran) << "the busy fd ran " << busy_calls << " times, the timer never";
  EXPECT_EQ(loop.remove(rb.value()), errc::ok);
}

REGISTER_TYPED_TEST_SUITE_P(io, readable_is_reported, writable_is_reported, read_and_write_interest_reports_both,
                            readiness_outside_interest_is_not_reported, new_data_after_drain_is_reported_again,
                            hangup_is_reported_whatever_the_interest, error_is_reported_whatever_the_interest,
                            error_is_reported_while_paused, error_is_reported_with_interest_the_fd_cannot_serve,
                            modify_to_none_pauses_the_source, paused_source_still_reports_hangup,
                            modify_switches_interest, removed_source_gets_no_callback, remove_inside_own_callback,
                            remove_other_source_fetched_in_same_batch,
                            modify_other_to_none_in_same_batch_suppresses_its_read,
                            same_fd_added_again_inside_its_callback, same_fd_added_again_after_remove,
                            fd_minus_one_is_invalid_argument, closed_fd_is_invalid_argument,
                            same_fd_twice_is_already_exists, same_fd_twice_paused_is_already_exists,
                            events_none_is_invalid_argument, empty_callback_is_invalid_argument,
                            default_id_is_not_found, stale_id_is_not_found_after_slot_reuse, id_from_another_loop_is_not_found, every_kind_of_callable_is_accepted_alike,
                            full_is_rejected_and_nothing_disturbed, callback_destroyed_on_remove,
                            loop_never_closes_user_fd, remove_after_user_closed_fd,
                            many_sources_ready_at_once_all_reported, busy_fd_does_not_starve_other_fds,
                            busy_fd_does_not_starve_timers);

#if !defined(TLTEST_NO_INSTANTIATE)
INSTANTIATE_TYPED_TEST_SUITE_P(io, io, tltest::all_ports, tltest::port_name);
#endif

}  // namespace io_tests
