// Waiting between test threads on events, never on time and never by spinning.
//
// A thread that needs another one to make progress blocks here (mutex + condition variable)
// instead of spinning on an atomic with std::this_thread::yield(): a spinning waiter steals the
// CPU from the thread it waits for, which on a loaded 2-core machine, under qemu-user and above
// all under valgrind (one thread at a time) makes a test slow or flaky.
// Nothing here allocates (glibc's mutex and condition variable do not), so the zero-allocation
// tests may use it while they count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace tltest {

// A latch that opens once; wait() returns once it is open.
class gate {
 public:
  void open() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return open_; });
  }
  bool is_open() {
    std::lock_guard<std::mutex> lock(mutex_);
    return open_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A count that only grows; other threads wait for it to reach a value or to move. add() costs an
// atomic increment and load while nobody waits (so a hot path, such as a stress test's callback,
// may call it); it takes the mutex only to wake a waiter. Dekker-style, all seq_cst: either add()
// sees the waiter registered (and wakes it under the mutex, which the waiter holds until it
// sleeps), or the waiter's check sees the new value.
class counter {
 public:
  void add(long n = 1) {
    value_.fetch_add(n, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) != 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      cv_.notify_all();
    }
  }
  long value() const { return value_.load(std::memory_order_seq_cst); }
  // Returns once value() >= target.
  void wait_for(long target) {
    wait_until([&](long v) { return v >= target; });
  }
  // Returns the value once it differs from `seen`.
  long wait_past(long seen) {
    return wait_until([&](long v) { return v != seen; });
  }

 private:
  template <class Pred>
  long wait_until(Pred pred) {
    long v = value();
    if (pred(v)) return v;
    std::unique_lock<std::mutex> lock(mutex_);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    cv_.wait(lock, [&] { return pred(v = value()); });
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    return v;
  }

  std::atomic<long> value_{0};
  std::atomic<int> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace tltest
