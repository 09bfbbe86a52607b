// Fuzz target: detail::timer_heap and detail::slot_table, used the way event_loop uses them (a timer
// id is a slot; arming pushes the slot into the heap), checked against a reference model after every
// step. The first byte picks the heap flavour: lone nodes only (as below 64 timers), chains of equal
// deadlines (as at 64 and above), at small and large capacities.
//
// Operations: arm (deadline from a small range so ties are common), cancel (live, fired, cancelled,
// never-issued and default ids), advance time and fire everything due, pop the top, and raw slot_table
// acquire/invalidate/recycle.
// Checked: firing in (deadline, arm order) order, nothing due left behind, nothing early; cancel
// succeeds exactly for pending ids; a stale id never reaches the node now in its slot (every node
// carries the serial of the id that owns it); size(), empty(), contains(), full() and capacity
// behaviour (acquire gives npos exactly when the model is full).
#include "fuzz_common.hpp"

#include "loop.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <vector>

namespace {

using tinyloop::detail::slot_table;
using tinyloop::detail::timer_heap;

struct node {
  std::uint64_t serial = 0;  // which arm() owns the slot
};

template <std::size_t N, bool Chains>
struct timer_system {
  slot_table<node, N> slots;
  timer_heap<std::int64_t, N, Chains> heap;
  std::int64_t now = 0;
  std::uint64_t sequence = 0;
  std::uint64_t serial = 0;

  struct issued {
    std::uint32_t index, generation;
    std::int64_t deadline;
    std::uint64_t sequence;
    bool pending;
  };
  std::vector<issued> ids;                                   // every id ever issued (model)
  std::set<std::tuple<std::int64_t, std::uint64_t, std::size_t>> queue;  // (deadline, seq, id number)

  std::size_t pending() const { return queue.size(); }

  void check() {
    FUZZ_CHECK(heap.size() == pending());
    FUZZ_CHECK(heap.empty() == queue.empty());
    FUZZ_CHECK(slots.size() == pending());
    if (!queue.empty()) {
      const auto& [d, seq, k] = *queue.begin();
      FUZZ_CHECK(heap.top_deadline() == d);
      FUZZ_CHECK(heap.top_sequence() == seq);
      FUZZ_CHECK(heap.top_node() == ids[k].index);
    }
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const issued& id = ids[k];
      FUZZ_CHECK(slots.live(id.index, id.generation) == id.pending);
      if (id.pending) {
        FUZZ_CHECK(heap.contains(id.index));
        FUZZ_CHECK(slots[id.index].serial == k);  // the id reaches its own node
      }
    }
  }

  void arm(std::int64_t delay) {
    const std::uint32_t i = slots.acquire();
    if (pending() == N) {
      FUZZ_CHECK(i == slots.npos);
      FUZZ_CHECK(slots.full());
      return;
    }
    FUZZ_CHECK(i != slots.npos && i < N);
    FUZZ_CHECK(!heap.contains(i));
    const std::size_t k = ids.size();
    slots[i].serial = k;
    const std::int64_t deadline = now + delay;
    heap.push(i, deadline, sequence);
    ids.push_back({i, slots.generation(i), deadline, sequence, true});
    queue.insert({deadline, sequence, k});
    ++sequence;
  }

  // As event_loop::cancel: live check, invalidate, erase from the heap, recycle.
  void cancel(std::uint32_t index, std::uint32_t generation, bool expect_live) {
    const bool live = index < N && slots.live(index, generation);
    FUZZ_CHECK(live == expect_live);
    if (!live) return;
    slots.invalidate(index);
    heap.erase(index);
    FUZZ_CHECK(!heap.contains(index));
    slots.recycle(index);
  }
  void cancel_issued(std::size_t k) {
    issued& id = ids[k];
    cancel(id.index, id.generation, id.pending);
    if (id.pending) {
      queue.erase({id.deadline, id.sequence, k});
      id.pending = false;
    }
  }

  // As event_loop::fire_timers: pop while the top is due; each must be the model's minimum.
  void fire(std::int64_t advance) {
    now += advance;
    while (!heap.empty() && heap.top_deadline() <= now) {
      FUZZ_CHECK(!queue.empty());
      const auto [d, seq, k] = *queue.begin();
      FUZZ_CHECK(d <= now);
      const std::uint32_t i = heap.top_node();
      FUZZ_CHECK(i == ids[k].index && heap.top_sequence() == seq);
      heap.pop();
      slots.invalidate(i);
      slots.recycle(i);
      queue.erase(queue.begin());
      ids[k].pending = false;
    }
    FUZZ_CHECK(queue.empty() || std::get<0>(*queue.begin()) > now);  // nothing due left behind
  }

  void run(fuzz::byte_reader& in) {
    for (int step = 0; step < 500 && !in.empty(); ++step) {
      const std::uint8_t op = in.byte();
      const std::uint8_t a = in.byte();
      switch (op % 8) {
        case 0:
        case 1: arm(a % 8); break;                 // many ties
        case 2: arm(a); break;                     // spread out
        case 3:
          if (!ids.empty()) cancel_issued(a % ids.size());
          break;
        case 4: cancel(0, 0, false); break;        // default id: generation 0 is never live
        case 5: {  // a made-up id: live only if it happens to be a pending one
          const std::uint32_t index = a % N, generation = in.byte();
          bool expect = false;
          for (const auto& id : ids) expect |= id.pending && id.index == index && id.generation == generation;
          if (expect) break;  // the model would need to know which entry it is: skip
          cancel(index, generation, false);
          break;
        }
        case 6: fire(a % 16); break;
        case 7:
          if (!heap.empty()) fire(heap.top_deadline() - now);  // exactly the top's deadline
          break;
      }
      check();
    }
    fire(1 << 20);  // everything left fires, in order
    FUZZ_CHECK(heap.empty() && slots.size() == 0);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::byte_reader in(data, size);
  switch (in.byte() % 4) {
    case 0: timer_system<6, false>().run(in); break;
    case 1: timer_system<6, true>().run(in); break;
    case 2: timer_system<64, true>().run(in); break;
    case 3: timer_system<70, false>().run(in); break;
  }
  return 0;
}
