// cross_thread: worker threads hand work to the loop thread with post().
//
// Four producer threads each post 50,000 small jobs. post() never blocks and never allocates:
// when the queue is full it returns errc::full and hands the job back destroyed, so the producer
// backs off (a few yields, then sleeps that double up to 1 ms) and posts a fresh copy. The loop
// thread runs every job and checks that each producer's jobs arrive in the order they were
// posted. The producer that finishes last posts one more job that stops the loop; since its post
// comes after every other producer's last post, it runs after all of them. A watchdog timer keeps
// run() from returning before the first post arrives and bounds the run if a post were lost.
#include "loop.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

namespace {

using namespace std::chrono_literals;
using loop_type = tinyloop::event_loop<>;  // default_config: a 32-slot post queue, so it fills up

constexpr unsigned producers = 4;
constexpr std::uint32_t jobs_per_producer = 50000;

// Loop-thread state, plus what the producers share. Jobs capture a pointer to it and two numbers,
// which fits the callback's inline storage on 32-bit targets too.
struct work {
  loop_type loop;
  // Loop thread only.
  std::uint32_t next_sequence[producers] = {};
  std::uint64_t jobs_run = 0;
  std::uint64_t sequence_sum = 0;
  std::uint32_t out_of_order = 0;
  bool finished = false;
  bool timed_out = false;
  tinyloop::timer_id watchdog;
  // Shared.
  std::atomic<unsigned> producers_running{producers};
  std::atomic<bool> give_up{false};
  std::atomic<std::uint64_t> full_retries{0};

  void run_job(std::uint32_t producer, std::uint32_t sequence) {
    if (sequence != next_sequence[producer]) ++out_of_order;
    next_sequence[producer] = sequence + 1;
    sequence_sum += sequence;
    ++jobs_run;
  }

  void finish() {
    finished = true;
    (void)loop.cancel(watchdog);
    loop.stop();
  }
};

// Posts the job `make()` builds, retrying while the queue is full. Returns false if the loop
// refused for another reason or the run was abandoned.
template <class MakeJob>
bool post_with_backoff(work& w, MakeJob make) {
  auto pause = 1us;
  for (unsigned attempt = 0;; ++attempt) {
    const tinyloop::errc e = w.loop.post(make());
    if (e == tinyloop::errc::ok) return true;
    if (e != tinyloop::errc::full) {
      std::printf("post: %s\n", tinyloop::to_string(e));
      return false;
    }
    if (w.give_up.load(std::memory_order_relaxed)) return false;
    w.full_retries.fetch_add(1, std::memory_order_relaxed);
    if (attempt < 8) {
      std::this_thread::yield();  // the loop thread usually drains the queue within a few yields
    } else {
      std::this_thread::sleep_for(pause);
      if (pause < 1ms) pause *= 2;
    }
  }
}

void produce(work* w, std::uint32_t producer) {
  for (std::uint32_t sequence = 0; sequence < jobs_per_producer; ++sequence) {
    const bool posted = post_with_backoff(*w, [w, producer, sequence] {
      return loop_type::callback([w, producer, sequence] { w->run_job(producer, sequence); });
    });
    if (!posted) return;
  }
  // acq_rel: the last producer to get here sees every other producer's posts completed before it
  // posts the final job, so that job lands behind all of them in the queue.
  if (w->producers_running.fetch_sub(1, std::memory_order_acq_rel) == 1)
    post_with_backoff(*w, [w] { return loop_type::callback([w] { w->finish(); }); });
}

}  // namespace

int main() {
  static work w;  // the loop and the tallies, shared with the threads for the program's lifetime
  if (w.loop.status() != tinyloop::errc::ok) {
    std::printf("FAIL: event loop: %s\n", tinyloop::to_string(w.loop.status()));
    return 1;
  }
  work* wp = &w;
  auto watchdog = w.loop.after(60s, [wp] {
    wp->timed_out = true;
    wp->give_up.store(true, std::memory_order_relaxed);
    wp->loop.stop();
  });
  if (!watchdog) {
    std::printf("FAIL: watchdog: %s\n", tinyloop::to_string(watchdog.error()));
    return 1;
  }
  w.watchdog = watchdog.value();

  const auto start = std::chrono::steady_clock::now();
  std::thread threads[producers];
  for (unsigned p = 0; p < producers; ++p) threads[p] = std::thread([wp, p] { produce(wp, p); });
  const tinyloop::errc e = w.loop.run();
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::uint64_t expected_jobs = std::uint64_t{producers} * jobs_per_producer;
  const std::uint64_t expected_sum = std::uint64_t{producers} * jobs_per_producer * (jobs_per_producer - 1) / 2;
  bool ok = e == tinyloop::errc::ok && w.finished && !w.timed_out && w.jobs_run == expected_jobs &&
            w.sequence_sum == expected_sum && w.out_of_order == 0;
  for (unsigned p = 0; p < producers; ++p) {
    std::printf("producer %u: %u jobs run in order\n", p, w.next_sequence[p]);
    if (w.next_sequence[p] != jobs_per_producer) ok = false;
  }
  std::printf("run() returned %s; %llu of %llu jobs run, %u out of order, sum %llu (expected %llu)%s\n",
              tinyloop::to_string(e), static_cast<unsigned long long>(w.jobs_run),
              static_cast<unsigned long long>(expected_jobs), w.out_of_order,
              static_cast<unsigned long long>(w.sequence_sum), static_cast<unsigned long long>(expected_sum),
              w.timed_out ? "; the watchdog fired" : "");
  std::printf("queue full %llu times (each one a backoff and a retry); %.3f s\n",
              static_cast<unsigned long long>(w.full_retries.load()), seconds);
  std::printf("%s\n", ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}
