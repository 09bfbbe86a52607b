// Compiled (not run) by tests/compile/CMakeLists.txt in 8 compiler/standard/flag
// combinations. It names every public API of the contract so that template bodies are
// instantiated and checked under each set of flags, not only parsed.
#include "loop.hpp"
#include "loop.hpp"  // a second include must be harmless

#include <chrono>
#include <csignal>
#include <cstddef>
#include <utility>

namespace {

struct small_config : tinyloop::default_config {
  static constexpr std::size_t max_timers = 4;
  static constexpr std::size_t post_capacity = 4;
};

template <class Loop>
void use_loop(Loop& loop) {
  using namespace std::chrono_literals;
  using tinyloop::errc;
  using tinyloop::events;

  (void)loop.status();
  (void)loop.os_errno();

  auto timer = loop.after(5ms, [] {});
  if (timer.ok() && timer) {
    tinyloop::timer_id id = timer.value();
    (void)(id == tinyloop::timer_id{});
    (void)(id != tinyloop::timer_id{});
    (void)loop.cancel(id);
  } else {
    (void)tinyloop::to_string(timer.error());
  }
  (void)loop.every(std::chrono::seconds(1), [] {});
  (void)loop.at(loop.now() + std::chrono::microseconds(1), [] {});

  // The contract's exact signatures (taking a callback) are still there: the overloads for other
  // callables are additions, and naming the contract's by address must still pick one function.
  using callback = typename Loop::callback;
  using ms = std::chrono::milliseconds;
  tinyloop::result<tinyloop::timer_id> (Loop::*after_fn)(ms, callback) noexcept =
      &Loop::template after<ms::rep, ms::period>;
  tinyloop::result<tinyloop::timer_id> (Loop::*every_fn)(ms, callback) noexcept =
      &Loop::template every<ms::rep, ms::period>;
  tinyloop::result<tinyloop::timer_id> (Loop::*at_fn)(typename Loop::time_point, callback) noexcept = &Loop::at;
  (void)(loop.*after_fn)(5ms, callback([] {}));
  (void)(loop.*every_fn)(5ms, callback([] {}));
  (void)(loop.*at_fn)(loop.now(), callback([] {}));

  events interest = events::read | events::write;
  interest &= events::read;
  interest |= events::hangup;
  (void)tinyloop::any(interest & events::error);
  auto source = loop.add(0, interest, [](events ev) { (void)ev; });
  if (source) {
    (void)loop.modify(source.value(), events::none);
    (void)loop.remove(source.value());
  }

  (void)loop.post([] {});
  loop.wake();
  loop.stop();
  (void)loop.poll();
  (void)loop.run_once();
  (void)loop.run();
  (void)loop.pending_timers();
  (void)loop.active_sources();
  (void)(errc::ok == errc::full);
}

}  // namespace

// Instantiated here, called by nobody: this file is only compiled.
void tinyloop_api_use_check() {
  tinyloop::inplace_function<int(int), 16> twice = [](int x) { return 2 * x; };
  (void)twice(21);
  auto moved = std::move(twice);
  (void)moved;

  tinyloop::event_loop<tinyloop::sim_port, small_config> sim_loop;
  use_loop(sim_loop);
  sim_loop.port().make_ready(3, tinyloop::events::read);
  tinyloop::sim_port::clock::advance(std::chrono::seconds(1));

  tinyloop::event_loop<> loop;
  use_loop(loop);
  (void)loop.watch_signal(SIGUSR1, [](int signo) { (void)signo; });
  (void)loop.unwatch_signal(SIGUSR1);

  tinyloop::worker_pool<tinyloop::event_loop<>> pool(loop);
  (void)pool.status();
  auto work = pool.submit([] {}, [](tinyloop::errc status) { (void)status; });
  if (work) (void)pool.cancel(work.value());
}
