// The fixed-capacity containers inside loop.hpp (namespace tinyloop::detail): slot_table,
// timer_heap, bounded_queue. Tested where they live, without a loop around them.
#include "loop.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using tinyloop::detail::bounded_queue;
using tinyloop::detail::slot_table;
using tinyloop::detail::timer_heap;

// ---- slot_table ---------------------------------------------------------------------------------

TEST(slot_table, acquires_every_slot_then_reports_full) {
  slot_table<int, 4> t;
  EXPECT_EQ(t.capacity(), 4u);
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(t.full());
    const std::uint32_t s = t.acquire();
    ASSERT_NE(s, t.npos);
    ASSERT_LT(s, 4u);
    EXPECT_TRUE(seen.insert(s).second);
  }
  EXPECT_TRUE(t.full());
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.acquire(), t.npos);
}

TEST(slot_table, acquired_slot_is_live_with_its_generation) {
  slot_table<int, 2> t;
  const std::uint32_t s = t.acquire();
  EXPECT_TRUE(t.live(s, t.generation(s)));
  EXPECT_TRUE(t.live(s));
  EXPECT_FALSE(t.live(s, t.generation(s) + 2));
}

TEST(slot_table, generation_zero_is_never_live) {
  slot_table<int, 2> t;
  for (std::uint32_t i = 0; i < 2; ++i) EXPECT_FALSE(t.live(i, 0));
  const std::uint32_t s = t.acquire();
  EXPECT_FALSE(t.live(s, 0));
}

TEST(slot_table, out_of_range_index_is_not_live) {
  slot_table<int, 2> t;
  (void)t.acquire();
  (void)t.acquire();
  EXPECT_FALSE(t.live(2, 1));
  EXPECT_FALSE(t.live(0xfffffffeu, 1));
  EXPECT_FALSE(t.live(t.npos, 1));
}

TEST(slot_table, invalidated_id_stays_stale_after_reuse) {
  slot_table<int, 1> t;
  std::vector<std::uint32_t> old_generations;
  for (int round = 0; round < 1000; ++round) {
    const std::uint32_t s = t.acquire();
    ASSERT_EQ(s, 0u);
    const std::uint32_t g = t.generation(s);
    for (std::uint32_t old : old_generations) ASSERT_FALSE(t.live(s, old)) << "round " << round;
    old_generations.push_back(g);
    t.invalidate(s);
    EXPECT_FALSE(t.live(s, g));
    EXPECT_FALSE(t.live(s));
    t.recycle(s);
  }
}

// Every table starts its generations somewhere else, so the first id of one table is no id of
// another (the loop's promise that an id from another loop is not_found rests on this).
TEST(slot_table, tables_start_their_generations_apart) {
  slot_table<int, 2> a, b;
  const std::uint32_t sa = a.acquire(), sb = b.acquire();
  ASSERT_EQ(sa, sb);
  EXPECT_NE(a.generation(sa), b.generation(sb));
  EXPECT_FALSE(b.live(sa, a.generation(sa)));
  EXPECT_FALSE(a.live(sb, b.generation(sb)));
  EXPECT_EQ(a.generation(sa) & 1u, 1u) << "odd: live";
}

// A slot whose generation comes round to the table's base is retired: its stale ids could
// otherwise match again. (2^31 real uses would take a minute; age() skips them.)
TEST(slot_table, slot_retires_when_its_generation_comes_round) {
  for (const std::uint32_t base : {0u, 0x12345678u, 0xfffffffeu}) {
    SCOPED_TRACE(base);
    slot_table<int, 2> t(base);
    const std::uint32_t first = t.acquire();
    const std::uint32_t first_generation = t.generation(first);
    t.invalidate(first);
    t.recycle(first);
    t.age(first, 0x7fffffffu - 1);  // one use away from coming round
    ASSERT_EQ(t.acquire(), first);
    const std::uint32_t last_generation = t.generation(first);
    EXPECT_TRUE(t.live(first, last_generation));
    EXPECT_FALSE(t.live(first, first_generation));
    t.invalidate(first);
    t.recycle(first);  // its generation is the base again: retired, not recycled
    EXPECT_EQ(t.generation(first), base);
    const std::uint32_t other = t.acquire();
    EXPECT_NE(other, first);
    EXPECT_EQ(t.acquire(), t.npos) << "the retired slot is never handed out again";
    EXPECT_FALSE(t.live(first, last_generation));
    EXPECT_FALSE(t.live(first, first_generation));
  }
}

TEST(slot_table, size_follows_acquire_and_invalidate) {
  slot_table<int, 3> t;
  const std::uint32_t a = t.acquire();
  const std::uint32_t b = t.acquire();
  EXPECT_EQ(t.size(), 2u);
  t.invalidate(a);
  EXPECT_EQ(t.size(), 1u);
  t.recycle(a);
  EXPECT_EQ(t.size(), 1u);
  t.invalidate(b);
  t.recycle(b);
  EXPECT_EQ(t.size(), 0u);
}

TEST(slot_table, invalidated_slot_is_not_reused_before_recycle) {
  slot_table<int, 1> t;
  const std::uint32_t s = t.acquire();
  t.invalidate(s);
  EXPECT_EQ(t.acquire(), t.npos) << "a slot whose callback may still run must not be handed out";
  t.recycle(s);
  EXPECT_EQ(t.acquire(), s);
}

TEST(slot_table, node_storage_is_addressable) {
  slot_table<int, 2> t;
  const std::uint32_t s = t.acquire();
  t[s] = 41;
  ++t[s];
  const auto& ct = t;
  EXPECT_EQ(ct[s], 42);
}

TEST(slot_table, never_used_slot_is_not_live_for_any_generation) {
  slot_table<int, 4> t;
  const std::uint32_t s = t.acquire();
  for (std::uint32_t i = 0; i < 4; ++i) {
    if (i == s) continue;
    for (std::uint32_t g : {1u, 3u, 0xffffffffu}) EXPECT_FALSE(t.live(i, g)) << "slot " << i << " generation " << g;
  }
}

// Counts its constructions and destructions, to see which nodes a table brings to life.
struct counted_node {
  static inline int constructed = 0;
  static inline int destroyed = 0;
  counted_node() noexcept { ++constructed; }
  ~counted_node() { ++destroyed; }
  counted_node(const counted_node&) = delete;
  counted_node& operator=(const counted_node&) = delete;
};

TEST(slot_table, constructs_a_node_at_its_first_acquire_and_destroys_only_those) {
  counted_node::constructed = counted_node::destroyed = 0;
  {
    slot_table<counted_node, 8> t;
    EXPECT_EQ(counted_node::constructed, 0);
    const std::uint32_t a = t.acquire();
    (void)t.acquire();
    EXPECT_EQ(counted_node::constructed, 2);
    t.invalidate(a);
    t.recycle(a);
    EXPECT_EQ(t.acquire(), a);
    EXPECT_EQ(counted_node::constructed, 2) << "a recycled slot keeps its node";
    EXPECT_EQ(counted_node::destroyed, 0);
  }
  EXPECT_EQ(counted_node::destroyed, 2);
}

// ---- timer_heap ---------------------------------------------------------------------------------
// Sequence numbers are pushed in increasing order (the loop's arm order), as push() requires.

using heap8 = timer_heap<std::int64_t, 8>;

std::vector<std::uint32_t> drain(heap8& h) {
  std::vector<std::uint32_t> order;
  while (!h.empty()) {
    order.push_back(h.top_node());
    h.pop();
  }
  return order;
}

TEST(timer_heap, pops_in_deadline_order) {
  heap8 h;
  const std::int64_t deadlines[] = {50, 10, 40, 30, 20, 70, 60, 0};
  for (std::uint32_t i = 0; i < 8; ++i) h.push(i, deadlines[i], i);
  EXPECT_EQ(h.size(), 8u);
  std::int64_t last = -1;
  while (!h.empty()) {
    EXPECT_GE(h.top_deadline(), last);
    EXPECT_EQ(h.top_deadline(), deadlines[h.top_node()]);
    last = h.top_deadline();
    h.pop();
  }
  EXPECT_EQ(h.size(), 0u);
}

TEST(timer_heap, equal_deadlines_pop_in_arm_order) {
  heap8 h;
  // runs of equal deadlines, interleaved with other deadlines
  const std::int64_t deadlines[] = {100, 100, 50, 100, 100, 50, 100, 100};
  for (std::uint32_t i = 0; i < 8; ++i) h.push(i, deadlines[i], i);
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{2, 5, 0, 1, 3, 4, 6, 7}));
}

TEST(timer_heap, top_sequence_is_the_oldest_of_the_earliest_deadline) {
  heap8 h;
  h.push(3, 7, 10);
  h.push(1, 7, 11);
  h.push(2, 5, 12);
  EXPECT_EQ(h.top_node(), 2u);
  EXPECT_EQ(h.top_sequence(), 12u);
  h.pop();
  EXPECT_EQ(h.top_node(), 3u);
  EXPECT_EQ(h.top_sequence(), 10u);
}

TEST(timer_heap, erase_removes_any_node) {
  heap8 h;
  for (std::uint32_t i = 0; i < 8; ++i) h.push(i, static_cast<std::int64_t>(i * 10), i);
  h.erase(0);  // the top
  h.erase(7);  // the last
  h.erase(4);  // the middle
  EXPECT_FALSE(h.contains(0));
  EXPECT_FALSE(h.contains(4));
  EXPECT_TRUE(h.contains(3));
  EXPECT_EQ(h.size(), 5u);
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{1, 2, 3, 5, 6}));
}

TEST(timer_heap, erase_inside_a_run_of_equal_deadlines_keeps_order) {
  heap8 h;
  for (std::uint32_t i = 0; i < 6; ++i) h.push(i, 42, i);
  h.erase(0);  // head of the run
  h.erase(3);  // middle
  h.erase(5);  // tail
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{1, 2, 4}));
}

TEST(timer_heap, erased_node_can_be_pushed_again) {
  heap8 h;
  h.push(0, 10, 0);
  h.push(1, 10, 1);
  h.erase(0);
  h.push(0, 10, 2);  // same deadline, newer: after node 1
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{1, 0}));
}

TEST(timer_heap, erase_of_absent_node_is_harmless) {
  heap8 h;
  h.push(2, 1, 0);
  h.erase(3);
  h.erase(100);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_FALSE(h.contains(100));
  EXPECT_TRUE(h.contains(2));
}

TEST(timer_heap, fills_to_capacity) {
  heap8 h;
  for (std::uint32_t i = 0; i < 8; ++i) h.push(i, static_cast<std::int64_t>(8 - i), i);
  EXPECT_EQ(h.size(), 8u);
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{7, 6, 5, 4, 3, 2, 1, 0}));
}

// With 64 nodes entries chain. Two entries at deadline 5 (one made before, one after a timer at 3):
// a chain's first node leaving grows that entry's key in place; it must still sort before the newer one.
TEST(timer_heap, chain_heads_leave_without_reordering_equal_deadlines) {
  timer_heap<std::int64_t, 64> h;
  h.push(0, 5, 0);
  h.push(1, 5, 1);  // chain A at 5
  h.push(2, 3, 2);  // A is no longer the newest entry
  h.push(3, 5, 3);
  h.push(4, 5, 4);  // chain B at 5
  h.push(5, 5, 5);
  h.erase(0);       // A's first node, cancelled
  EXPECT_EQ(h.size(), 5u);
  std::vector<std::uint32_t> order;
  while (!h.empty()) {
    const std::uint32_t top = h.top_node();
    EXPECT_EQ(h.top_sequence(), top);  // each node was pushed with its index as its sequence
    EXPECT_EQ(h.pop_top(), top);
    EXPECT_FALSE(h.contains(top));
    order.push_back(top);
  }
  EXPECT_EQ(order, (std::vector<std::uint32_t>{2, 1, 3, 4, 5}));
  EXPECT_EQ(h.size(), 0u);
}

TEST(timer_heap, randomized_against_a_sorted_reference) {
  constexpr std::size_t n = 64;
  timer_heap<std::int64_t, n> h;
  std::set<std::tuple<std::int64_t, std::uint64_t, std::uint32_t>> ref;
  std::vector<std::uint32_t> free_nodes;
  for (std::uint32_t i = 0; i < n; ++i) free_nodes.push_back(i);
  std::uint32_t rng = 2463534242u;
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };
  std::uint64_t seq = 0;
  std::int64_t last_deadline = 0;
  for (int step = 0; step < 50000; ++step) {
    const std::uint32_t op = next() % 3;
    if (op == 0 && !free_nodes.empty()) {
      const std::uint32_t node = free_nodes.back();
      free_nodes.pop_back();
      // half the time the same deadline as the previous push: long runs of ties
      const std::int64_t d = next() % 2 == 0 ? last_deadline : static_cast<std::int64_t>(next() % 16);
      last_deadline = d;
      h.push(node, d, seq);
      ref.emplace(d, seq, node);
      ++seq;
    } else if (op == 1 && !ref.empty()) {
      ASSERT_EQ(std::get<2>(*ref.begin()), h.top_node()) << "step " << step;
      ASSERT_EQ(std::get<0>(*ref.begin()), h.top_deadline()) << "step " << step;
      ASSERT_EQ(std::get<1>(*ref.begin()), h.top_sequence()) << "step " << step;
      free_nodes.push_back(h.top_node());
      ref.erase(ref.begin());
      h.pop();
    } else if (op == 2 && !ref.empty()) {
      auto it = ref.begin();
      std::advance(it, next() % ref.size());
      const std::uint32_t node = std::get<2>(*it);
      ASSERT_TRUE(h.contains(node));
      h.erase(node);
      ASSERT_FALSE(h.contains(node));
      ref.erase(it);
      free_nodes.push_back(node);
    }
    ASSERT_EQ(h.size(), ref.size());
    ASSERT_EQ(h.empty(), ref.empty());
  }
}

// ---- bounded_queue ------------------------------------------------------------------------------

static_assert(bounded_queue<int, 8>::capacity() == 8);

TEST(bounded_queue, pops_in_push_order) {
  bounded_queue<int, 8> q;
  for (int i = 0; i < 8; ++i) {
    int v = i;
    ASSERT_TRUE(q.try_push(std::move(v)));
  }
  for (int i = 0; i < 8; ++i) {
    int out = -1;
    ASSERT_TRUE(q.try_pop(out));
    EXPECT_EQ(out, i);
  }
}

TEST(bounded_queue, pop_from_empty_fails) {
  bounded_queue<int, 4> q;
  int out = 17;
  EXPECT_FALSE(q.try_pop(out));
  EXPECT_EQ(out, 17);
}

TEST(bounded_queue, push_when_full_fails_and_leaves_value) {
  bounded_queue<std::unique_ptr<int>, 2> q;
  auto a = std::make_unique<int>(1), b = std::make_unique<int>(2), c = std::make_unique<int>(3);
  ASSERT_TRUE(q.try_push(std::move(a)));
  ASSERT_TRUE(q.try_push(std::move(b)));
  EXPECT_FALSE(q.try_push(std::move(c)));
  ASSERT_NE(c, nullptr) << "a rejected value must be left to the caller";
  EXPECT_EQ(*c, 3);
}

TEST(bounded_queue, wraps_around_many_laps) {
  bounded_queue<int, 4> q;
  int expect = 0, next = 0;
  for (int lap = 0; lap < 1000; ++lap) {
    const int burst = 1 + lap % 4;
    for (int i = 0; i < burst; ++i) {
      int v = next++;
      ASSERT_TRUE(q.try_push(std::move(v)));
    }
    for (int i = 0; i < burst; ++i) {
      int out = -1;
      ASSERT_TRUE(q.try_pop(out));
      ASSERT_EQ(out, expect++);
    }
  }
  int out;
  EXPECT_FALSE(q.try_pop(out));
}

TEST(bounded_queue, size_approx_counts_items) {
  bounded_queue<int, 4> q;
  EXPECT_EQ(q.size_approx(), 0u);
  int v = 1;
  ASSERT_TRUE(q.try_push(std::move(v)));
  v = 2;
  ASSERT_TRUE(q.try_push(std::move(v)));
  EXPECT_EQ(q.size_approx(), 2u);
  int out;
  ASSERT_TRUE(q.try_pop(out));
  EXPECT_EQ(q.size_approx(), 1u);
}

TEST(bounded_queue, destructor_destroys_remaining_items) {
  auto shared = std::make_shared<int>(0);
  {
    bounded_queue<std::shared_ptr<int>, 4> q;
    for (int i = 0; i < 3; ++i) {
      auto copy = shared;
      ASSERT_TRUE(q.try_push(std::move(copy)));
    }
    EXPECT_EQ(shared.use_count(), 4);
  }
  EXPECT_EQ(shared.use_count(), 1);
}

TEST(bounded_queue, popped_item_slot_is_destroyed) {
  auto shared = std::make_shared<int>(0);
  bounded_queue<std::shared_ptr<int>, 2> q;
  auto copy = shared;
  ASSERT_TRUE(q.try_push(std::move(copy)));
  std::shared_ptr<int> out;
  ASSERT_TRUE(q.try_pop(out));
  out.reset();
  EXPECT_EQ(shared.use_count(), 1);
}

// Several producers, one consumer (the loop's use): each producer's items arrive in its order,
// none lost, none twice.
TEST(bounded_queue, many_producers_one_consumer_keeps_per_producer_order) {
  constexpr int producers = 3;
  constexpr int per_producer = 20000;
  bounded_queue<std::uint32_t, 16> q;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&q, &go, p] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = 0; i < per_producer; ++i) {
        std::uint32_t v = static_cast<std::uint32_t>(p) << 24 | static_cast<std::uint32_t>(i);
        while (!q.try_push(std::move(v))) std::this_thread::yield();
      }
    });
  }
  go.store(true, std::memory_order_release);
  int next[producers] = {};
  int received = 0;
  bool in_order = true;
  while (received < producers * per_producer) {
    std::uint32_t v;
    if (!q.try_pop(v)) {
      std::this_thread::yield();
      continue;
    }
    const int p = static_cast<int>(v >> 24), i = static_cast<int>(v & 0xffffff);
    if (p >= producers || i != next[p]) in_order = false;
    if (p < producers) next[p] = i + 1;
    ++received;
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(in_order);
  for (int p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer);
  std::uint32_t extra;
  EXPECT_FALSE(q.try_pop(extra));
}

// Two producers, two consumers (the worker pool may use it this way): nothing lost or duplicated.
TEST(bounded_queue, many_producers_many_consumers_lose_nothing) {
  constexpr int per_producer = 20000;
  bounded_queue<std::uint32_t, 8> q;
  std::atomic<int> consumed{0};
  std::vector<std::uint8_t> seen(2 * per_producer, 0);
  std::atomic<bool> duplicate{false};
  auto produce = [&q](std::uint32_t base) {
    for (std::uint32_t i = 0; i < per_producer; ++i) {
      std::uint32_t v = base + i;
      while (!q.try_push(std::move(v))) std::this_thread::yield();
    }
  };
  std::vector<std::vector<std::uint32_t>> got(2);
  auto consume = [&](int c) {
    while (consumed.load(std::memory_order_relaxed) < 2 * per_producer) {
      std::uint32_t v;
      if (q.try_pop(v)) {
        got[static_cast<std::size_t>(c)].push_back(v);
        consumed.fetch_add(1, std::memory_order_relaxed);
      } else {
        std::this_thread::yield();
      }
    }
  };
  std::thread p0(produce, 0u), p1(produce, static_cast<std::uint32_t>(per_producer));
  std::thread c0(consume, 0), c1(consume, 1);
  p0.join();
  p1.join();
  c0.join();
  c1.join();
  for (auto& g : got)
    for (std::uint32_t v : g) {
      if (seen[v]) duplicate = true;
      seen[v] = 1;
    }
  EXPECT_FALSE(duplicate.load());
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 2 * per_producer);
}

}  // namespace
