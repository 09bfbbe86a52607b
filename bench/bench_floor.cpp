// The hand-written epoll + eventfd floor: every operation, as little code as it can be.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "floor.hpp"
#include "harness.hpp"
#include "producers.hpp"

namespace bench {
namespace {

constexpr std::uint64_t ms = 1000000;

void count_up(void* ctx) { ++*static_cast<int*>(ctx); }

struct create_destroy : case_base {
  explicit create_destroy(long) {
    alloc_scope s;
    { floor::loop l; }
    ctor_allocs = s.count();
  }
  void op() { floor::loop l; benchmark::DoNotOptimize(&l); }
};

struct wake_latency : case_base {
  floor::loop l;
  explicit wake_latency(long) {}
  void op() {
    l.wake();
    l.run_once();
  }
};

struct wake_ping_pong : case_base {
  floor::loop a, b;
  std::atomic<bool> stop{false};
  std::thread peer;
  explicit wake_ping_pong(long) {
    peer = std::thread([this] {
      for (;;) {
        b.run_once();
        if (stop.load(std::memory_order_acquire)) return;
        a.wake();
      }
    });
  }
  ~wake_ping_pong() {
    stop.store(true, std::memory_order_release);
    b.wake();
    peer.join();
  }
  void op() {
    b.wake();
    a.run_once();
  }
};

struct timer_single : case_base {
  floor::loop l;
  int fired = 0;
  explicit timer_single(long) {}
  void op() {
    l.arm(0, count_up, &fired);
    l.run_once();
  }
};

struct timer_1000 : case_base {
  static constexpr double items_per_op = 1000;
  floor::loop l{1024};
  int fired = 0;
  explicit timer_1000(long) {}
  void op() {
    fired = 0;
    for (int i = 0; i < 1000; ++i) l.arm(0, count_up, &fired);
    while (fired < 1000) l.run_once();
  }
};

// arm + cancel one timer while `pending` timers wait, spread 1 us apart one hour out. The churned
// timer's deadline is later than all of them (a reset connection timeout) or, with Mid, in the middle.
template <bool Mid = false>
struct timer_churn : case_base {
  floor::loop l;
  int fired = 0;
  std::uint64_t delay = 7200000 * ms;
  explicit timer_churn(long pending) : l(static_cast<std::size_t>(pending < 0 ? churn_pending : pending) + 1) {
    if (pending < 0) pending = churn_pending;
    for (long i = 0; i < pending; ++i)
      l.arm(3600000 * ms + static_cast<std::uint64_t>(pending_offset(i, pending, Mid)) * 1000, count_up, &fired);
    if (Mid) delay = 3600000 * ms + static_cast<std::uint64_t>(pending / 2) * 1000 + 500;
  }
  void op() { l.cancel(l.arm(delay, count_up, &fired)); }
};

struct pipe_add_del : case_base {
  floor::loop l;
  int fds[2];
  floor::io_watch w;
  explicit pipe_add_del(long) {
    make_pipe(fds);
    w.fd = fds[0];
    w.fn = [](void*, std::uint32_t) {};
  }
  ~pipe_add_del() {
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    l.add(w, EPOLLIN);
    l.del(w);
  }
};

struct idle_iter : case_base {
  floor::loop l;
  int fds[2];
  floor::io_watch w;
  explicit idle_iter(long) {
    make_pipe(fds);
    w.fd = fds[0];
    w.fn = [](void*, std::uint32_t) {};
    l.add(w, EPOLLIN);
  }
  ~idle_iter() {
    l.del(w);
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() { l.run_once(false); }
};

// Both ends in one loop: the op writes to end 1, end 0 echoes, end 1 reads the echo.
template <bool Tcp>
struct ping_pong : case_base {
  floor::loop l;
  int fds[2];
  floor::io_watch w0, w1;
  bool got = false;
  explicit ping_pong(long) {
    if (Tcp) make_tcp_pair(fds); else make_socketpair(fds);
    w0 = {[](void* c, std::uint32_t) {
            int fd = static_cast<ping_pong*>(c)->fds[0];
            char b[64];
            ssize_t n = read(fd, b, sizeof b);
            if (n > 0) n = write(fd, b, static_cast<std::size_t>(n));
          },
          this, fds[0]};
    w1 = {[](void* c, std::uint32_t) {
            auto* self = static_cast<ping_pong*>(c);
            char b[64];
            if (read(self->fds[1], b, sizeof b) > 0) self->got = true;
          },
          this, fds[1]};
    l.add(w0, EPOLLIN);
    l.add(w1, EPOLLIN);
  }
  ~ping_pong() {
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    got = false;
    char c = 'x';
    check(write(fds[1], &c, 1) == 1, "write");
    while (!got) l.run_once();
  }
};

template <int Threads>
struct post_throughput : case_base {
  static constexpr double items_per_op = post_batch;
  floor::loop l;
  floor::locked_queue q;
  std::atomic<bool> wake_pending{false};
  long consumed = 0;
  long target = 0;
  struct poster {
    post_throughput* self;
    bool operator()() const {
      if (!self->q.try_push({[](void* c) { ++static_cast<post_throughput*>(c)->consumed; }, self})) return false;
      // seq_cst exchange: either this producer writes the eventfd, or the loop has not yet cleared the
      // flag and will drain the queue after clearing it (the push is visible through the mutex).
      if (!self->wake_pending.exchange(true)) self->l.wake();
      return true;
    }
  };
  producer_group<poster> producers{Threads, poster{this}};
  explicit post_throughput(long) {}
  void op() {
    target += post_batch;
    producers.start(post_batch);
    while (consumed < target) {
      l.run_once();
      wake_pending.store(false);
      q.run_all();
    }
  }
};

// 64 posts from the loop thread itself, then the iteration that runs them: the code path of post(), without
// the threads.
struct post_batch_case : case_base {
  static constexpr double items_per_op = 64;
  floor::loop l;
  floor::locked_queue q;
  std::atomic<bool> wake_pending{false};
  long consumed = 0;
  explicit post_batch_case(long) {}
  void op() {
    for (int i = 0; i < 64; ++i) {
      q.try_push({[](void* c) { ++static_cast<post_batch_case*>(c)->consumed; }, this});
      if (!wake_pending.exchange(true)) l.wake();
    }
    l.run_once();
    wake_pending.store(false);
    q.run_all();
  }
};

// One wait-and-dispatch cycle with one ready fd among `idle` registered idle eventfds.
struct fd_scaling : case_base {
  floor::loop l;
  std::vector<int> idle_fds;
  std::vector<floor::io_watch> watches;
  int ready = -1;
  floor::io_watch ready_watch;
  explicit fd_scaling(long idle) : idle_fds(static_cast<std::size_t>(idle)), watches(static_cast<std::size_t>(idle)) {
    for (std::size_t i = 0; i < idle_fds.size(); ++i) {
      idle_fds[i] = make_eventfd();
      watches[i] = {[](void*, std::uint32_t) {}, nullptr, idle_fds[i]};
      l.add(watches[i], EPOLLIN);
    }
    ready = make_eventfd();
    ready_watch = {[](void* c, std::uint32_t) { drain(*static_cast<int*>(c)); }, &ready, ready};
    l.add(ready_watch, EPOLLIN);
  }
  ~fd_scaling() {
    for (int fd : idle_fds) close_fd(fd);
    close_fd(ready);
  }
  void op() {
    write_byte(ready);
    l.run_once();
  }
};

// The same over poll(2): the kernel and the loop both walk every registered fd.
struct fd_scaling_poll : case_base {
  std::vector<pollfd> fds;
  std::vector<void (*)(int)> handlers;
  explicit fd_scaling_poll(long idle) {
    for (long i = 0; i < idle; ++i) {
      fds.push_back({make_eventfd(), POLLIN, 0});
      handlers.push_back([](int) {});
    }
    fds.push_back({make_eventfd(), POLLIN, 0});
    handlers.push_back([](int fd) { drain(fd); });
  }
  ~fd_scaling_poll() {
    for (pollfd& p : fds) close_fd(p.fd);
  }
  void op() {
    write_byte(fds.back().fd);
    floor::loop::clock_ns();
    int n = poll(fds.data(), fds.size(), -1);
    for (std::size_t i = 0; n > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      --n;
      handlers[i](fds[i].fd);
    }
  }
};

}  // namespace

void register_floor() {
  add<create_destroy>("CreateDestroy", "floor", -1, 2000);
  add<wake_latency>("WakeLatency", "floor", -1, 5000);
  add<wake_ping_pong>("WakePingPong", "floor", -1, 2000);
  add<timer_single>("TimerSingle", "floor", -1, 5000);
  add<timer_1000>("Timer1000", "floor", -1, 20);
  add<timer_churn<>>("TimerChurn", "floor", -1, 5000);
  add<pipe_add_del>("PipeAddDel", "floor", -1, 5000);
  add<idle_iter>("IdleIter", "floor", -1, 5000);
  add<ping_pong<false>>("PingPongUnix", "floor", -1, 2000);
  add<ping_pong<true>>("PingPongTcp", "floor", -1, 2000);
  add<post_batch_case>("PostBatch", "floor", -1, 1000);
  add<post_throughput<1>>("PostThroughput", "floor", 1, 0);
  add<post_throughput<2>>("PostThroughput", "floor", 2, 0);
  add<post_throughput<4>>("PostThroughput", "floor", 4, 0);
  for (long n : timer_scaling_sizes) {
    if (quick_mode() && n > 10000) continue;
    add<timer_churn<>>("TimerScaling", "floor", n, 2000);
    add<timer_churn<true>>("TimerScalingMid", "floor", n, 2000);
  }
  for (long n : fd_scaling_sizes) {
    if ((quick_mode() && n > 100) || !fds_available(n)) continue;  // RLIMIT_NOFILE too low: skipped
    add<fd_scaling>("FdScaling", "floor", n, 500);
    add<fd_scaling_poll>("FdScaling", "floor-poll", n, 500);
  }
}

}  // namespace bench
