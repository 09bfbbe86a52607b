// Producer threads for the PostThroughput cases: `threads` threads that, on each start(), post `batch /
// threads` items through a library's post function, then wait for the next start().
#pragma once

#include <sched.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace bench {

template <class PostOne>  // bool post_one(): false when the queue is full (the producer yields and retries)
class producer_group {
 public:
  producer_group(int threads, PostOne post_one) : post_one_(post_one) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, threads] { work(threads); });
  }
  ~producer_group() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  producer_group(const producer_group&) = delete;
  producer_group& operator=(const producer_group&) = delete;

  void start(int batch) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch_ = batch;
      ++generation_;
    }
    cv_.notify_all();
  }

 private:
  void work(int threads) {
    unsigned seen = 0;
    for (;;) {
      int share;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        share = batch_ / threads;
      }
      for (int i = 0; i < share; ++i)
        while (!post_one_()) sched_yield();
    }
  }

  PostOne post_one_;
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned generation_ = 0;
  int batch_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bench
