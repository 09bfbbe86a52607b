// sim_test: testing code that uses hour-long timeouts, in microseconds, on sim_port.
//
// The code under test is `session`, the kind of class a protocol stack has: it watches a channel
// for traffic, sends a keepalive ping after 15 minutes of silence (and every 15 minutes after
// that), and expires after an hour without traffic. It is written against any event_loop; the
// tests run it on event_loop<sim_port>, whose virtual clock jumps straight to the next deadline
// whenever the loop would wait, and make the channel readable with port().make_ready(). So each
// test below covers hours to a day of session time in microseconds, and gives the same result on
// every run: the checks compare exact virtual times. Exits non-zero if any check fails.
#include "loop.hpp"

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <initializer_list>

namespace {

using namespace std::chrono_literals;
using tinyloop::errc;
using tinyloop::events;

// ---- the code under test ---------------------------------------------------------------------

template <class Loop>
class session {
 public:
  using duration = typename Loop::duration;
  using time_point = typename Loop::time_point;
  static constexpr std::size_t max_recorded_pings = 16;

  session(Loop& loop, int fd) noexcept : loop_(loop), fd_(fd) {}
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { close(); }

  errc open() noexcept {
    last_traffic_ = loop_.now();
    auto source = loop_.add(fd_, events::read, [this](events ev) { on_readable(ev); });
    if (!source) return source.error();
    source_ = source.value();
    open_ = true;
    return arm(last_traffic_ + ping_after_);
  }

  void close() noexcept {
    if (!open_) return;
    open_ = false;
    (void)loop_.remove(source_);
    (void)loop_.cancel(timer_);
  }

  // What the session did, for its owner (and the test).
  std::size_t pings() const noexcept { return pings_; }
  time_point ping_time(std::size_t i) const noexcept { return ping_times_[i]; }
  std::size_t messages() const noexcept { return messages_; }
  bool expired() const noexcept { return expired_; }
  time_point expired_at() const noexcept { return expired_at_; }

 private:
  void on_readable(events) noexcept {
    // A real session reads its socket here until EAGAIN and parses messages; a sim channel
    // carries readiness only, so one report stands for one message.
    ++messages_;
    last_traffic_ = loop_.now();
    pings_since_traffic_ = 0;
  }

  // One timer, moved lazily: traffic only records its time, and the timer, when it fires, works
  // out what is due from the silence so far and sleeps until the next thing that could be.
  void on_timer() noexcept {
    const duration silence = loop_.now() - last_traffic_;
    if (silence >= expire_after_) {
      expired_ = true;
      expired_at_ = loop_.now();
      close();
      return;
    }
    if (silence >= ping_after_ * (pings_since_traffic_ + 1)) {
      if (pings_ < max_recorded_pings) ping_times_[pings_] = loop_.now();
      ++pings_;
      ++pings_since_traffic_;  // a real session sends a ping frame here
    }
    if (arm(last_traffic_ + ping_after_ * (pings_since_traffic_ + 1)) != errc::ok) close();
  }

  errc arm(time_point deadline) noexcept {
    auto timer = loop_.at(deadline, [this] { on_timer(); });
    if (!timer) return timer.error();
    timer_ = timer.value();
    return errc::ok;
  }

  Loop& loop_;
  int fd_;
  const duration ping_after_ = std::chrono::duration_cast<duration>(std::chrono::minutes(15));
  const duration expire_after_ = std::chrono::duration_cast<duration>(std::chrono::hours(1));
  bool open_ = false;
  tinyloop::source_id source_;
  tinyloop::timer_id timer_;
  time_point last_traffic_{};
  std::size_t pings_since_traffic_ = 0;
  std::size_t pings_ = 0;
  time_point ping_times_[max_recorded_pings] = {};
  std::size_t messages_ = 0;
  bool expired_ = false;
  time_point expired_at_{};
};

// ---- the tests -----------------------------------------------------------------------------------

using sim_loop = tinyloop::event_loop<tinyloop::sim_port>;
using sim_clock = tinyloop::sim_port::clock;
constexpr int channel = 3;  // any small integer: sim channels stand in for fds

int failures = 0;

#define CHECK(condition)                                                            \
  do {                                                                              \
    if (!(condition)) {                                                             \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition);     \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

// Minutes of virtual time since the clock was reset, exactly (the clock counts nanoseconds).
double minutes_at(sim_loop::time_point t) {
  return std::chrono::duration<double, std::ratio<60>>(t.time_since_epoch()).count();
}
sim_loop::time_point at_minute(long long m) { return sim_loop::time_point(std::chrono::minutes(m)); }

void check_pings(const session<sim_loop>& s, std::initializer_list<long long> expected_minutes) {
  CHECK(s.pings() == expected_minutes.size());
  std::size_t i = 0;
  for (long long m : expected_minutes) {
    if (i >= s.pings()) break;
    if (s.ping_time(i) != at_minute(m)) {
      std::printf("  ping %zu at minute %.3f, expected %lld\n", i, minutes_at(s.ping_time(i)), m);
      ++failures;
    }
    ++i;
  }
}

// No traffic at all: pings at 15, 30 and 45 minutes, expiry at 60, and then run() returns because
// the session left nothing to wait for.
void silent_peer_expires_after_an_hour() {
  sim_clock::reset();
  sim_loop loop;
  session<sim_loop> s(loop, channel);
  CHECK(s.open() == errc::ok);
  CHECK(loop.run() == errc::ok);
  check_pings(s, {15, 30, 45});
  CHECK(s.expired());
  CHECK(s.expired_at() == at_minute(60));
  CHECK(loop.now() == at_minute(60));
  CHECK(loop.pending_timers() == 0 && loop.active_sources() == 0);
}

// One message at minute 50 restarts the silence: pings at 65, 80, 95 and expiry at 110.
void traffic_restarts_the_silence() {
  sim_clock::reset();
  sim_loop loop;
  session<sim_loop> s(loop, channel);
  CHECK(s.open() == errc::ok);
  sim_loop* lp = &loop;
  CHECK(loop.at(at_minute(50), [lp] { lp->port().make_ready(channel, events::read); }).ok());
  CHECK(loop.run() == errc::ok);
  CHECK(s.messages() == 1);
  check_pings(s, {15, 30, 45, 65, 80, 95});
  CHECK(s.expired());
  CHECK(s.expired_at() == at_minute(110));
}

// A peer that talks every 10 minutes for a day is never pinged; when it falls silent after its
// 144th message (minute 1440), pings follow at 1455, 1470, 1485 and expiry at 1500.
void chatty_peer_is_never_pinged() {
  struct chatter {
    sim_loop* loop;
    tinyloop::timer_id timer;
    int sent = 0;
  };
  sim_clock::reset();
  sim_loop loop;
  session<sim_loop> s(loop, channel);
  CHECK(s.open() == errc::ok);
  chatter c{&loop, {}, 0};
  chatter* cp = &c;
  auto timer = loop.every(10min, [cp] {
    cp->loop->port().make_ready(channel, events::read);
    if (++cp->sent == 144) (void)cp->loop->cancel(cp->timer);
  });
  CHECK(timer.ok());
  c.timer = timer.value();
  CHECK(loop.run() == errc::ok);
  CHECK(s.messages() == 144);
  check_pings(s, {1455, 1470, 1485});
  CHECK(s.expired_at() == at_minute(1500));
}

// The owner closes the session early: nothing of it is left in the loop, nothing fires later.
void close_leaves_nothing_behind() {
  sim_clock::reset();
  sim_loop loop;
  session<sim_loop> s(loop, channel);
  CHECK(s.open() == errc::ok);
  CHECK(loop.pending_timers() == 1 && loop.active_sources() == 1);
  session<sim_loop>* sp = &s;
  CHECK(loop.after(20min, [sp] { sp->close(); }).ok());
  CHECK(loop.run() == errc::ok);
  check_pings(s, {15});
  CHECK(!s.expired());
  CHECK(loop.now() == at_minute(20));
  CHECK(loop.pending_timers() == 0 && loop.active_sources() == 0);
}

}  // namespace

int main() {
  const auto start = std::chrono::steady_clock::now();
  silent_peer_expires_after_an_hour();
  traffic_restarts_the_silence();
  chatty_peer_is_never_pinged();
  close_leaves_nothing_behind();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  std::printf("4 tests covering about 28 hours of session time took %.0f us of real time: %s\n", us,
              failures == 0 ? "ok" : "FAIL");
  return failures == 0 ? 0 : 1;
}
