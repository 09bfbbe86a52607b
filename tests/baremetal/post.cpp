// post() on the bare-metal port: from an interrupt handler while the loop runs, capacity,
// and wake()/stop() from an interrupt handler.
#include <atomic>
#include <chrono>

#include "dualtimer.hpp"
#include "harness.hpp"
#include "loop_fixture.hpp"

using namespace std::chrono_literals;
using namespace tl_test;
using tinyloop::errc;

namespace {

constexpr int items = 500;

// What the dual-timer interrupt handler does on each tick.
enum class isr_job { none, post_items, wake, stop };

struct isr_state {
  std::atomic<isr_job> job{isr_job::none};
  loop_type* loop = nullptr;
  std::atomic<int> next_item{0};  // next value the handler posts
  std::atomic<int> full_count{0};  // posts refused with errc::full (retried next tick)
  std::atomic<int> ticks{0};
};
isr_state isr;

// Filled by the posted callbacks, on the loop thread.
struct received_log {
  int values[items] = {};
  int count = 0;
  int out_of_range = 0;
  void add(int v) noexcept {
    if (count < items) {
      values[count] = v;
    } else {
      ++out_of_range;
    }
    ++count;
  }
};
received_log from_isr;
received_log from_loop;

// Called by one posted callback: holds the loop (interrupts keep coming) until the handler
// has found the queue full, so the errc::full path is taken whatever the host's speed. The
// 5 s bound only keeps a broken build from hanging here.
void stall_until_the_queue_is_full() noexcept {
  const clock_type::time_point give_up = clock_type::now() + 5s;
  while (isr.full_count.load(std::memory_order_relaxed) == 0 && clock_type::now() < give_up) {
  }
}

void start_isr(isr_job job, loop_type& loop, std::uint32_t period_ticks) noexcept {
  isr.loop = &loop;
  isr.next_item.store(0);
  isr.full_count.store(0);
  isr.ticks.store(0);
  isr.job.store(job);
  tl_test::dualtimer::start_periodic(period_ticks);
}

void stop_isr() noexcept {
  tl_test::dualtimer::stop();
  isr.job.store(isr_job::none);
}

}  // namespace

extern "C" void DUALTIMER_IRQHandler() noexcept {
  tl_test::dualtimer::clear();
  isr.ticks.fetch_add(1, std::memory_order_relaxed);
  switch (isr.job.load(std::memory_order_relaxed)) {
    case isr_job::post_items: {
      // Several posts per interrupt, so the queue also fills up while the loop is busy.
      for (int burst = 0; burst < 3; ++burst) {
        const int v = isr.next_item.load(std::memory_order_relaxed);
        if (v == items) {
          tl_test::dualtimer::stop();
          return;
        }
        if (isr.loop->post([v] {
              from_isr.add(v);
              if (v == 50) stall_until_the_queue_is_full();
            }) != errc::ok) {
          isr.full_count.fetch_add(1, std::memory_order_relaxed);
          return;  // full: retry the same item on the next tick
        }
        isr.next_item.store(v + 1, std::memory_order_relaxed);
      }
      break;
    }
    case isr_job::wake:
      tl_test::dualtimer::stop();
      isr.loop->wake();
      break;
    case isr_job::stop:
      tl_test::dualtimer::stop();
      isr.loop->stop();
      break;
    case isr_job::none:
      break;
  }
}

TL_TEST(posts_from_an_interrupt_handler_all_run_once_in_order) {
  loop_type loop;
  TL_REQUIRE(loop.status() == errc::ok);
  from_isr = received_log{};
  start_isr(isr_job::post_items, loop, 200 * tl_test::dualtimer::ticks_per_ms / 1000);  // 200 us
  // run_once sleeps (WFI) while the queue is empty; each post wakes it.
  while (from_isr.count < items) {
    TL_REQUIRE(loop.run_once() == errc::ok);
  }
  stop_isr();
  TL_CHECK(loop.poll() == errc::ok);  // nothing extra arrives
  TL_CHECK_EQ(from_isr.count, items);
  TL_CHECK_EQ(from_isr.out_of_range, 0);
  int misplaced = 0;
  for (int i = 0; i < items; ++i) {
    if (from_isr.values[i] != i) {
      ++misplaced;
    }
  }
  TL_CHECK_EQ(misplaced, 0);
  TL_CHECK(isr.full_count.load() > 0);  // the full path was taken, and nothing was lost to it
  tl_test::print("  interrupts: ");
  tl_test::print_number(isr.ticks.load());
  tl_test::print(", posts refused as full and retried: ");
  tl_test::print_number(isr.full_count.load());
  tl_test::print("\n");
}

TL_TEST(posts_from_an_interrupt_and_from_the_loop_keep_each_producers_order) {
  loop_type loop;
  from_isr = received_log{};
  from_loop = received_log{};
  struct loop_producer {
    loop_type* loop;
    int next;
    int refused;
  } producer{&loop, 0, 0};
  // A periodic timer posts from the loop thread while the interrupt handler posts too.
  tinyloop::timer_id tick;
  const auto r = loop.every(1ms, [&producer] {
    for (int burst = 0; burst < 4 && producer.next < items; ++burst) {
      const int v = producer.next;
      if (producer.loop->post([v] { from_loop.add(v); }) != errc::ok) {
        ++producer.refused;
        break;
      }
      ++producer.next;
    }
  });
  TL_REQUIRE(r.ok());
  tick = r.value();
  start_isr(isr_job::post_items, loop, 300 * tl_test::dualtimer::ticks_per_ms / 1000);
  while (from_isr.count < items || from_loop.count < items) {
    TL_REQUIRE(loop.run_once() == errc::ok);
  }
  stop_isr();
  TL_CHECK(loop.cancel(tick) == errc::ok);
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(from_isr.count, items);
  TL_CHECK_EQ(from_loop.count, items);
  int misplaced = 0;
  for (int i = 0; i < items; ++i) {
    misplaced += from_isr.values[i] != i;
    misplaced += from_loop.values[i] != i;
  }
  TL_CHECK_EQ(misplaced, 0);
}

TL_TEST(post_queue_full_gives_full_and_destroys_the_rejected_callback_unrun) {
  small_loop_type loop;
  int ran[5] = {};
  int order = 0;
  for (int i = 0; i < 4; ++i) {
    TL_CHECK(loop.post([&ran, &order, i] { ran[i] = ++order; }) == errc::ok);
  }
  // A callback that counts its own destruction: the loop must destroy it without running it.
  struct counted {
    int* destroyed;
    int* ran;
    counted(int* d, int* r) noexcept : destroyed(d), ran(r) {}
    counted(counted&& other) noexcept : destroyed(other.destroyed), ran(other.ran) {
      other.destroyed = nullptr;
    }
    counted(const counted&) = delete;
    ~counted() {
      if (destroyed != nullptr) {
        ++*destroyed;
      }
    }
    void operator()() noexcept { ++*ran; }
  };
  int destroyed = 0;
  TL_CHECK(loop.post(counted{&destroyed, &ran[4]}) == errc::full);
  TL_CHECK_EQ(destroyed, 1);
  TL_CHECK(loop.run() == errc::ok);
  for (int i = 0; i < 4; ++i) {
    TL_CHECK_EQ(ran[i], i + 1);
  }
  TL_CHECK_EQ(ran[4], 0);
  TL_CHECK(loop.post([&ran] { ran[4] = 99; }) == errc::ok);  // room again
  TL_CHECK(loop.run() == errc::ok);
  TL_CHECK_EQ(ran[4], 99);
}

TL_TEST(post_with_an_empty_callback_is_invalid) {
  loop_type loop;
  TL_CHECK(loop.post(loop_type::callback{}) == errc::invalid_argument);
}

TL_TEST(wake_from_an_interrupt_ends_run_once_with_nothing_to_run) {
  loop_type loop;
  int fired = 0;
  const auto far = loop.after(1h, [&fired] { ++fired; });
  TL_REQUIRE(far.ok());
  start_isr(isr_job::wake, loop, 5 * tl_test::dualtimer::ticks_per_ms);
  TL_CHECK(loop.run_once() == errc::ok);  // would sleep for an hour (test timeout) otherwise
  stop_isr();
  TL_CHECK_EQ(fired, 0);
  TL_CHECK(loop.cancel(far.value()) == errc::ok);
}

TL_TEST(stop_from_an_interrupt_ends_run) {
  loop_type loop;
  int fired = 0;
  const auto far = loop.after(1h, [&fired] { ++fired; });
  TL_REQUIRE(far.ok());
  start_isr(isr_job::stop, loop, 5 * tl_test::dualtimer::ticks_per_ms);
  TL_CHECK(loop.run() == errc::ok);
  stop_isr();
  TL_CHECK_EQ(fired, 0);
  TL_CHECK_EQ(loop.pending_timers(), 1u);
}
