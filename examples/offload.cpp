// offload: blocking and CPU-heavy work runs in a worker_pool while the loop stays responsive.
//
// Two jobs go to a pool of two threads: one blocks in a 300 ms sleep (think: a blocking read, a DNS
// lookup, fsync), the other counts primes (think: hashing, compression). Meanwhile a periodic timer
// fires every 10 ms on the loop thread and records how late each firing was. Each job's done()
// runs back on the loop thread; when both have run, the timer is cancelled, nothing is left, and
// run() returns by itself. The program prints the timer's lateness and exits non-zero if the timer
// stopped firing while the jobs ran (it would, had the jobs run on the loop thread).
#include "loop.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

namespace {

using namespace std::chrono_literals;
using loop_type = tinyloop::event_loop<>;
using pool_type = tinyloop::worker_pool<loop_type, 2>;
using clock_type = loop_type::clock;

constexpr auto period = 10ms;
constexpr auto sleep_job = 300ms;
constexpr std::uint32_t prime_limit = 1'000'000;

// Trial division: slow on purpose, it stands for any CPU-bound job.
std::uint32_t count_primes_below(std::uint32_t limit) {
  std::uint32_t count = 0;
  for (std::uint32_t n = 2; n < limit; ++n) {
    bool prime = true;
    for (std::uint32_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
  }
  return count;
}

double to_ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Everything the callbacks need; each callback captures one pointer to it.
struct demo {
  loop_type loop;
  pool_type pool{loop};
  tinyloop::timer_id tick;
  clock_type::time_point tick_start{};
  int jobs_left = 2;
  bool failed = false;

  // Timer statistics while the jobs are in the pool.
  int firings = 0;
  clock_type::duration worst{};
  clock_type::duration total{};

  // Written by the workers, read on the loop thread in done(): the pool orders the two.
  std::uint32_t primes = 0;
  clock_type::duration prime_time{};
  clock_type::duration slept{};

  void on_tick() {
    // Lateness: how long after its due time (start + k * period) this firing ran. Missed firings
    // are skipped by the loop, so measure from the latest due time.
    const auto since = clock_type::now() - tick_start;
    const auto late = since % std::chrono::duration_cast<clock_type::duration>(period);
    ++firings;
    total += late;
    if (late > worst) worst = late;
  }

  void job_done(const char* what, tinyloop::errc e) {
    if (e != tinyloop::errc::ok) {
      std::printf("FAIL: %s finished with %s\n", what, tinyloop::to_string(e));
      failed = true;
    }
    if (--jobs_left == 0) (void)loop.cancel(tick);  // nothing left: run() returns
  }

  int run() {
    if (loop.status() != tinyloop::errc::ok || pool.status() != tinyloop::errc::ok) {
      std::printf("FAIL: loop %s, pool %s\n", tinyloop::to_string(loop.status()),
                  tinyloop::to_string(pool.status()));
      return 1;
    }
    std::printf("offload: a %lld ms sleep and a prime count run in the pool; a timer fires every %lld ms\n",
                static_cast<long long>(sleep_job.count()), static_cast<long long>(period.count()));

    tick_start = loop.now();
    auto t = loop.every(period, [this] { on_tick(); });
    if (!t) return fail("every", t.error());
    tick = t.value();

    auto a = pool.submit(
        [this] {  // on a worker thread
          const auto begin = clock_type::now();
          std::this_thread::sleep_for(sleep_job);
          slept = clock_type::now() - begin;
        },
        [this](tinyloop::errc e) {  // on the loop thread
          std::printf("  sleep job done: slept %.1f ms\n", to_ms(slept));
          job_done("sleep job", e);
        });
    if (!a) return fail("submit", a.error());

    auto b = pool.submit(
        [this] {
          const auto begin = clock_type::now();
          primes = count_primes_below(prime_limit);
          prime_time = clock_type::now() - begin;
        },
        [this](tinyloop::errc e) {
          std::printf("  prime job done: %u primes below %u, computed in %.1f ms\n", static_cast<unsigned>(primes),
                      static_cast<unsigned>(prime_limit), to_ms(prime_time));
          job_done("prime job", e);
        });
    if (!b) return fail("submit", b.error());

    const auto begin = clock_type::now();
    const tinyloop::errc e = loop.run();  // returns once both done()s ran and the timer is cancelled
    const auto elapsed = clock_type::now() - begin;
    if (e != tinyloop::errc::ok) return fail("run", e);

    const int expected = static_cast<int>(elapsed / period);
    std::printf("  timer: %d firings in %.1f ms (%d periods), lateness avg %.3f ms, max %.3f ms\n", firings,
                to_ms(elapsed), expected, firings ? to_ms(total) / firings : 0.0, to_ms(worst));
    // Not a timing test (the machine may be loaded, or emulated): only that the loop kept running
    // timers while the jobs were busy. Had the jobs run on the loop thread, the timer could not have
    // fired before they finished, and it is cancelled when they finish.
    if (firings < 3) {
      std::printf("FAIL: the timer fired %d times in %d periods while the jobs ran\n", firings, expected);
      failed = true;
    }
    return failed ? 1 : 0;
  }

  int fail(const char* what, tinyloop::errc e) {
    std::printf("FAIL: %s: %s\n", what, tinyloop::to_string(e));
    return 1;
  }
};

}  // namespace

int main() {
  demo d;
  return d.run();
}
