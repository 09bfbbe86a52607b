// timers: one-shot, periodic and cancelled timers.
//
// A periodic "tick" every 100 ms cancels itself after its fifth firing. A one-shot "report" at
// 250 ms cancels the one-shot "deadline" due at 1 s, so the deadline never fires. A zero-delay
// timer runs on the loop's next iteration. When no timer is left, run() returns by itself.
// The output shows what fired and when, in loop time; the program checks what it printed and
// exits non-zero if something fired that should not have, or early.
#include "loop.hpp"

#include <chrono>
#include <cstdio>

namespace {

using namespace std::chrono_literals;
using loop_type = tinyloop::event_loop<>;

// Everything the callbacks need, so each callback captures one pointer.
struct demo {
  loop_type loop;
  loop_type::time_point start = loop.now();
  tinyloop::timer_id tick;
  tinyloop::timer_id deadline;
  int ticks = 0;
  int reports = 0;
  int deadlines = 0;
  int zero_delay = 0;
  bool failed = false;

  long long elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(loop.now() - start).count();
  }
  // A timer never fires before its deadline (it may fire later: the OS schedules us).
  void check_not_early(loop_type::duration due, const char* what) {
    if (loop.now() - start < due) {
      std::printf("FAIL: %s fired early, at %lld ms\n", what, elapsed_ms());
      failed = true;
    }
  }

  void on_tick() {
    ++ticks;
    check_not_early(ticks * loop_type::duration(100ms), "tick");
    std::printf("t=%4lld ms  tick %d\n", elapsed_ms(), ticks);
    if (ticks == 5) {
      // Cancelling a periodic timer from its own callback stops it.
      const tinyloop::errc e = loop.cancel(tick);
      std::printf("t=%4lld ms  tick cancelled itself: %s\n", elapsed_ms(), tinyloop::to_string(e));
      if (e != tinyloop::errc::ok) failed = true;
    }
  }

  void on_report() {
    ++reports;
    check_not_early(250ms, "report");
    const tinyloop::errc first = loop.cancel(deadline);
    // The id is spent now: cancelling it again is not_found, whatever reuses its slot later.
    const tinyloop::errc again = loop.cancel(deadline);
    std::printf("t=%4lld ms  report: cancel(deadline) -> %s, again -> %s\n", elapsed_ms(),
                tinyloop::to_string(first), tinyloop::to_string(again));
    if (first != tinyloop::errc::ok || again != tinyloop::errc::not_found) failed = true;
  }
};

bool armed(const tinyloop::result<tinyloop::timer_id>& r, const char* what) {
  if (!r) std::printf("FAIL: arming %s: %s\n", what, tinyloop::to_string(r.error()));
  return r.ok();
}

}  // namespace

int main() {
  demo d;
  if (d.loop.status() != tinyloop::errc::ok) {
    std::printf("FAIL: event loop: %s (errno %d)\n", tinyloop::to_string(d.loop.status()), d.loop.os_errno());
    return 1;
  }
  demo* p = &d;

  auto tick = d.loop.every(100ms, [p] { p->on_tick(); });
  auto report = d.loop.after(250ms, [p] { p->on_report(); });
  auto deadline = d.loop.after(1s, [p] {
    ++p->deadlines;
    std::printf("t=%4lld ms  deadline (should have been cancelled)\n", p->elapsed_ms());
  });
  auto zero = d.loop.after(0ms, [p] {
    ++p->zero_delay;
    std::printf("t=%4lld ms  zero-delay timer\n", p->elapsed_ms());
  });
  if (!armed(tick, "tick") || !armed(report, "report") || !armed(deadline, "deadline") || !armed(zero, "zero"))
    return 1;
  d.tick = tick.value();
  d.deadline = deadline.value();
  std::printf("armed: tick every 100 ms, report at 250 ms, deadline at 1000 ms, zero-delay; %zu pending\n",
              d.loop.pending_timers());

  // Returns when no timer is left: the tick cancelled itself, the report and the zero-delay
  // timer fired once, the deadline was cancelled.
  const tinyloop::errc e = d.loop.run();
  std::printf("run() returned %s at t=%lld ms: %d ticks, %d report, %d zero-delay, %d deadline, %zu pending\n",
              tinyloop::to_string(e), d.elapsed_ms(), d.ticks, d.reports, d.zero_delay, d.deadlines,
              d.loop.pending_timers());

  const bool ok = e == tinyloop::errc::ok && !d.failed && d.ticks == 5 && d.reports == 1 && d.zero_delay == 1 &&
                  d.deadlines == 0 && d.loop.pending_timers() == 0;
  std::printf("%s\n", ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}
