// Waiting between test threads on events, never on time and never by spinning.
//
// A thread that needs another one to make progress blocks here (mutex + condition variable)
// instead of spinning on an atomic with std::this_thread::yield(): a spinning waiter steals the
// CPU from the thread it waits for, which on a loaded 2-core machine, under qemu-user and above
// all under valgrind (one thread at a time) makes a test slow or flaky.
// Nothing here allocates (glibc's mutex and condition variable do not), so the zero-allocation
// tests may use it while they count.
#pragma once

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

// A count that only grows; other threads wait for it to reach a value or to move.
class counter {
 public:
  void add(long n = 1) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      value_ += n;
    }
    cv_.notify_all();
  }
  long value() {
    std::lock_guard<std::mutex> lock(mutex_);
    return value_;
  }
  // Returns once value() >= target.
  void wait_for(long target) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return value_ >= target; });
  }
  // Returns the value once it differs from `seen`.
  long wait_past(long seen) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return value_ != seen; });
    return value_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  long value_ = 0;
};

}  // namespace tltest
