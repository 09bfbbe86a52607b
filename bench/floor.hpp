// The floor: the least a Linux event loop can do, written by hand over epoll + eventfd with no
// generality (function pointers, one binary heap, no ids with generations, no cross-thread protocol).
// Every library is compared against it; it is what "the cost of the system calls" looks like.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace bench::floor {

using io_fn = void (*)(void* ctx, std::uint32_t events);
using timer_fn = void (*)(void* ctx);

struct io_watch {
  io_fn fn = nullptr;
  void* ctx = nullptr;
  int fd = -1;
};

class loop {
 public:
  explicit loop(std::size_t max_timers = 64);
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  void add(io_watch& w, std::uint32_t epoll_events);
  void del(io_watch& w);

  std::uint32_t arm(std::uint64_t delay_ns, timer_fn fn, void* ctx);  // returns the timer's slot
  void cancel(std::uint32_t slot);
  std::size_t pending() const { return size_; }

  void wake();                     // any thread: one eventfd write, no coalescing
  void run_once(bool block = true);  // due timers, then one epoll_wait (0 when something ran)
  std::uint64_t now() const { return now_; }
  static std::uint64_t clock_ns();

 private:
  // A 4-ary min-heap whose entries carry their keys (no indirection while sifting); each timer
  // slot records its heap position so cancel is O(log n).
  struct timer {
    timer_fn fn;
    void* ctx;
    std::uint32_t heap_pos;
    std::uint32_t next_free;
  };
  struct entry {
    std::uint64_t deadline;
    std::uint64_t seq;
    std::uint32_t slot;
  };
  static bool before(const entry& a, const entry& b) {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }
  void place(std::size_t pos, const entry& e) {
    heap_[pos] = e;
    timers_[e.slot].heap_pos = static_cast<std::uint32_t>(pos);
  }
  void sift_up(std::size_t pos, entry e);
  void sift_down(std::size_t pos, entry e);
  void remove_at(std::size_t pos);
  void release(std::uint32_t slot) {
    timers_[slot].next_free = free_;
    free_ = slot;
  }

  int ep_ = -1;
  int efd_ = -1;
  std::uint64_t now_ = 0;
  std::uint64_t seq_ = 0;
  std::vector<timer> timers_;
  std::vector<entry> heap_;
  std::size_t size_ = 0;
  std::uint32_t free_ = 0;
  epoll_event events_[64];
};

// The cross-thread queue the peers use for "post": libuv and libev have no post(), so users pair a
// mutex-protected queue with uv_async_t / ev_async; the floor pairs it with a coalesced eventfd write.
class locked_queue {
 public:
  struct item {
    void (*fn)(void*);
    void* ctx;
  };
  static constexpr std::size_t capacity = 1024;
  bool try_push(item it) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tail_ - head_ == capacity) return false;
    ring_[tail_++ % capacity] = it;
    return true;
  }
  // Runs what is queued now (a snapshot, taken in chunks so producers are not held off).
  std::size_t run_all() {
    item batch[64];
    std::size_t ran = 0;
    for (;;) {
      std::size_t n = 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        while (n < 64 && head_ != tail_) batch[n++] = ring_[head_++ % capacity];
      }
      if (n == 0) return ran;
      for (std::size_t i = 0; i < n; ++i) batch[i].fn(batch[i].ctx);
      ran += n;
    }
  }

 private:
  std::mutex mutex_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  item ring_[capacity];
};

}  // namespace bench::floor
