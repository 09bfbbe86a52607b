// Fuzz target: detail::bounded_queue (the post queue), single-threaded push/pop interleavings
// against std::deque, with items that count their own lives (so a lost, duplicated, twice-destroyed
// or leaked item shows). Capacities 2, 4, 8 and 32; the first byte picks one.
// Checked after every step: try_push fails exactly when full and leaves the rejected item untouched;
// try_pop and try_pop_single (mixed, single-threaded) fail exactly when empty and return the oldest item; front_ready() and size_approx()
// agree with the deque; live item count = queued + held by the test.
#include "fuzz_common.hpp"

#include "loop.hpp"

#include <cstdint>
#include <deque>

namespace {

int live_items = 0;

// Counts constructions and destructions; a moved-from item carries value -1.
struct item {
  long value = -1;
  item() noexcept { ++live_items; }
  explicit item(long v) noexcept : value(v) { ++live_items; }
  item(item&& o) noexcept : value(o.value) {
    o.value = -1;
    ++live_items;
  }
  item& operator=(item&& o) noexcept {
    value = o.value;
    o.value = -1;
    return *this;
  }
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  ~item() { --live_items; }
};

template <std::size_t Capacity>
void run(fuzz::byte_reader& in) {
  {
    tinyloop::detail::bounded_queue<item, Capacity> q;
    FUZZ_CHECK(q.capacity() == Capacity);
    std::deque<long> model;
    long next = 0;
    for (int step = 0; step < 4000 && !in.empty(); ++step) {
      const std::uint8_t op = in.byte();
      const int repeat = 1 + (op >> 2) % 8;
      for (int r = 0; r < repeat; ++r) {
        if (op & 1) {
          item v(next);
          const bool ok = q.try_push(static_cast<item&&>(v));
          FUZZ_CHECK(ok == (model.size() < Capacity));
          if (ok) {
            model.push_back(next);
          } else {
            FUZZ_CHECK(v.value == next);  // a rejected item is left untouched
          }
          ++next;
        } else {
          item out;
          // Bit 1 picks the consumer: try_pop (MPMC, a CAS on head_) or try_pop_single (the loop's).
          const bool ok = (op & 2) ? q.try_pop_single(out) : q.try_pop(out);
          FUZZ_CHECK(ok == !model.empty());
          if (ok) {
            FUZZ_CHECK(out.value == model.front());
            model.pop_front();
          } else {
            FUZZ_CHECK(out.value == -1);
          }
        }
        FUZZ_CHECK(q.front_ready() == !model.empty());
        FUZZ_CHECK(q.size_approx() == model.size());
        FUZZ_CHECK(live_items == static_cast<int>(model.size()));
      }
    }
  }
  FUZZ_CHECK(live_items == 0);  // the destructor destroys what was left queued
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::byte_reader in(data, size);
  live_items = 0;
  switch (in.byte() % 4) {
    case 0: run<2>(in); break;
    case 1: run<4>(in); break;
    case 2: run<8>(in); break;
    case 3: run<32>(in); break;
  }
  return 0;
}
