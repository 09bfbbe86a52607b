// libuv 1.x: the same operations through its public API (uv_poll_t for readiness, uv_async_t for wakes).
#include <uv.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "floor.hpp"
#include "harness.hpp"
#include "producers.hpp"

namespace bench {
namespace {

void check_uv(int r, const char* what) { check(r == 0, what); }

// Owns a uv_loop_t. Derived destructors call close_handles() while their handles still exist.
struct uv_base : case_base {
  uv_loop_t loop;
  uv_base() {
    alloc_scope s;
    check_uv(uv_loop_init(&loop), "uv_loop_init");
    ctor_allocs = s.count();
  }
  ~uv_base() { check_uv(uv_loop_close(&loop), "uv_loop_close"); }
  void close_handles() {
    uv_walk(
        &loop, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
};

void count_timer(uv_timer_t* t) { ++*static_cast<int*>(t->data); }

struct create_destroy : case_base {
  explicit create_destroy(long) {
    alloc_scope s;
    uv_loop_t l;
    check_uv(uv_loop_init(&l), "uv_loop_init");
    ctor_allocs = s.count();
    uv_loop_close(&l);
  }
  void op() {
    uv_loop_t l;
    uv_loop_init(&l);
    uv_loop_close(&l);
  }
};

struct wake_latency : uv_base {
  uv_async_t async;
  int woken = 0;
  explicit wake_latency(long) {
    check_uv(uv_async_init(&loop, &async, [](uv_async_t* a) { ++*static_cast<int*>(a->data); }), "uv_async_init");
    async.data = &woken;
  }
  ~wake_latency() { close_handles(); }
  void op() {
    uv_async_send(&async);
    uv_run(&loop, UV_RUN_ONCE);
  }
};

struct wake_ping_pong : uv_base {
  uv_loop_t peer_loop;
  uv_async_t to_main, to_peer;
  std::atomic<bool> stop{false};
  std::thread peer;
  explicit wake_ping_pong(long) {
    check_uv(uv_loop_init(&peer_loop), "uv_loop_init");
    check_uv(uv_async_init(&loop, &to_main, [](uv_async_t*) {}), "uv_async_init");
    check_uv(uv_async_init(&peer_loop, &to_peer,
                           [](uv_async_t* a) {
                             auto* self = static_cast<wake_ping_pong*>(a->data);
                             if (self->stop.load(std::memory_order_acquire)) {
                               uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
                               return;
                             }
                             uv_async_send(&self->to_main);
                           }),
             "uv_async_init");
    to_peer.data = this;
    peer = std::thread([this] { uv_run(&peer_loop, UV_RUN_DEFAULT); });
  }
  ~wake_ping_pong() {
    stop.store(true, std::memory_order_release);
    uv_async_send(&to_peer);
    peer.join();
    uv_loop_close(&peer_loop);
    close_handles();
  }
  void op() {
    uv_async_send(&to_peer);
    uv_run(&loop, UV_RUN_ONCE);
  }
};

struct timer_single : uv_base {
  uv_timer_t t;
  int fired = 0;
  explicit timer_single(long) {
    uv_timer_init(&loop, &t);
    t.data = &fired;
  }
  ~timer_single() { close_handles(); }
  void op() {
    uv_timer_start(&t, count_timer, 0, 0);
    uv_run(&loop, UV_RUN_ONCE);
  }
};

struct timer_1000 : uv_base {
  static constexpr double items_per_op = 1000;
  uv_timer_t t[1000];
  int fired = 0;
  explicit timer_1000(long) {
    for (uv_timer_t& x : t) {
      uv_timer_init(&loop, &x);
      x.data = &fired;
    }
  }
  ~timer_1000() { close_handles(); }
  void op() {
    fired = 0;
    for (uv_timer_t& x : t) uv_timer_start(&x, count_timer, 0, 0);
    while (fired < 1000) uv_run(&loop, UV_RUN_ONCE);
  }
};

template <bool Mid = false>
struct timer_churn : uv_base {
  std::unique_ptr<uv_timer_t[]> pending;
  uv_timer_t churn;
  int fired = 0;
  std::uint64_t delay = 7200000;
  explicit timer_churn(long n) {
    if (n < 0) n = churn_pending;
    if (Mid) delay = 3600000 + static_cast<std::uint64_t>(n / 2);  // ms resolution: ties go after, by start order
    pending.reset(new uv_timer_t[static_cast<std::size_t>(n)]);
    for (long i = 0; i < n; ++i) {
      uv_timer_init(&loop, &pending[static_cast<std::size_t>(i)]);
      pending[static_cast<std::size_t>(i)].data = &fired;
      uv_timer_start(&pending[static_cast<std::size_t>(i)], count_timer,
                     3600000 + static_cast<std::uint64_t>(pending_offset(i, n, Mid)), 0);
    }
    uv_timer_init(&loop, &churn);
    churn.data = &fired;
  }
  ~timer_churn() { close_handles(); }
  void op() {
    uv_timer_start(&churn, count_timer, delay, 0);
    uv_timer_stop(&churn);
  }
};

// libuv defers the epoll_ctl(ADD) to its next poll phase; the NOWAIT run makes the kernel see it.
struct pipe_add_del : uv_base {
  int fds[2];
  uv_poll_t p;
  explicit pipe_add_del(long) {
    make_pipe(fds);
    check_uv(uv_poll_init(&loop, &p, fds[0]), "uv_poll_init");
  }
  ~pipe_add_del() {
    close_handles();
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    uv_poll_start(&p, UV_READABLE, [](uv_poll_t*, int, int) {});
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_poll_stop(&p);
  }
};

struct idle_iter : uv_base {
  int fds[2];
  uv_poll_t p;
  explicit idle_iter(long) {
    make_pipe(fds);
    check_uv(uv_poll_init(&loop, &p, fds[0]), "uv_poll_init");
    uv_poll_start(&p, UV_READABLE, [](uv_poll_t*, int, int) {});
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  ~idle_iter() {
    close_handles();
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() { uv_run(&loop, UV_RUN_NOWAIT); }
};

template <bool Tcp>
struct ping_pong : uv_base {
  int fds[2];
  uv_poll_t p0, p1;
  bool got = false;
  explicit ping_pong(long) {
    if (Tcp) make_tcp_pair(fds); else make_socketpair(fds);
    check_uv(uv_poll_init(&loop, &p0, fds[0]), "uv_poll_init");
    check_uv(uv_poll_init(&loop, &p1, fds[1]), "uv_poll_init");
    p0.data = p1.data = this;
    uv_poll_start(&p0, UV_READABLE, [](uv_poll_t* h, int, int) {
      int fd = static_cast<ping_pong*>(h->data)->fds[0];
      char b[64];
      ssize_t n = read(fd, b, sizeof b);
      if (n > 0) n = write(fd, b, static_cast<std::size_t>(n));
    });
    uv_poll_start(&p1, UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* self = static_cast<ping_pong*>(h->data);
      char b[64];
      if (read(self->fds[1], b, sizeof b) > 0) self->got = true;
    });
  }
  ~ping_pong() {
    close_handles();
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    got = false;
    char c = 'x';
    check(write(fds[1], &c, 1) == 1, "write");
    while (!got) uv_run(&loop, UV_RUN_ONCE);
  }
};

template <int Threads>
struct post_throughput : uv_base {
  static constexpr double items_per_op = post_batch;
  floor::locked_queue q;
  uv_async_t async;
  long consumed = 0;
  long target = 0;
  struct poster {
    post_throughput* self;
    bool operator()() const {
      if (!self->q.try_push({[](void* c) { ++static_cast<post_throughput*>(c)->consumed; }, self})) return false;
      uv_async_send(&self->async);  // libuv coalesces sends until the callback runs
      return true;
    }
  };
  std::unique_ptr<producer_group<poster>> producers;
  explicit post_throughput(long) {
    check_uv(uv_async_init(&loop, &async, [](uv_async_t* a) { static_cast<post_throughput*>(a->data)->q.run_all(); }),
             "uv_async_init");
    async.data = this;
    producers = std::make_unique<producer_group<poster>>(Threads, poster{this});
  }
  ~post_throughput() {
    producers.reset();
    close_handles();
  }
  void op() {
    target += post_batch;
    producers->start(post_batch);
    while (consumed < target) uv_run(&loop, UV_RUN_ONCE);
  }
};

struct post_batch_case : uv_base {
  static constexpr double items_per_op = 64;
  floor::locked_queue q;
  uv_async_t async;
  long consumed = 0;
  explicit post_batch_case(long) {
    check_uv(uv_async_init(&loop, &async, [](uv_async_t* a) { static_cast<post_batch_case*>(a->data)->q.run_all(); }),
             "uv_async_init");
    async.data = this;
  }
  ~post_batch_case() { close_handles(); }
  void op() {
    for (int i = 0; i < 64; ++i) {
      q.try_push({[](void* c) { ++static_cast<post_batch_case*>(c)->consumed; }, this});
      uv_async_send(&async);
    }
    uv_run(&loop, UV_RUN_ONCE);
  }
};

struct fd_scaling : uv_base {
  std::vector<int> idle_fds;
  std::unique_ptr<uv_poll_t[]> idle;
  int ready = -1;
  uv_poll_t ready_poll;
  explicit fd_scaling(long n) : idle_fds(static_cast<std::size_t>(n)), idle(new uv_poll_t[static_cast<std::size_t>(n)]) {
    for (std::size_t i = 0; i < idle_fds.size(); ++i) {
      idle_fds[i] = make_eventfd();
      check_uv(uv_poll_init(&loop, &idle[i], idle_fds[i]), "uv_poll_init");
      uv_poll_start(&idle[i], UV_READABLE, [](uv_poll_t*, int, int) {});
    }
    ready = make_eventfd();
    check_uv(uv_poll_init(&loop, &ready_poll, ready), "uv_poll_init");
    ready_poll.data = &ready;
    uv_poll_start(&ready_poll, UV_READABLE, [](uv_poll_t* h, int, int) { drain(*static_cast<int*>(h->data)); });
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  ~fd_scaling() {
    close_handles();
    for (int fd : idle_fds) close_fd(fd);
    close_fd(ready);
  }
  void op() {
    write_byte(ready);
    uv_run(&loop, UV_RUN_ONCE);
  }
};

}  // namespace

void register_libuv() {
  add<create_destroy>("CreateDestroy", "libuv", -1, 2000);
  add<wake_latency>("WakeLatency", "libuv", -1, 5000);
  add<wake_ping_pong>("WakePingPong", "libuv", -1, 2000);
  add<timer_single>("TimerSingle", "libuv", -1, 5000);
  add<timer_1000>("Timer1000", "libuv", -1, 20);
  add<timer_churn<>>("TimerChurn", "libuv", -1, 5000);
  add<pipe_add_del>("PipeAddDel", "libuv", -1, 5000);
  add<idle_iter>("IdleIter", "libuv", -1, 5000);
  add<ping_pong<false>>("PingPongUnix", "libuv", -1, 2000);
  add<ping_pong<true>>("PingPongTcp", "libuv", -1, 2000);
  add<post_batch_case>("PostBatch", "libuv", -1, 1000);
  add<post_throughput<1>>("PostThroughput", "libuv", 1, 0);
  add<post_throughput<2>>("PostThroughput", "libuv", 2, 0);
  add<post_throughput<4>>("PostThroughput", "libuv", 4, 0);
  for (long n : timer_scaling_sizes) {
    if (quick_mode() && n > 10000) continue;
    add<timer_churn<>>("TimerScaling", "libuv", n, 2000);
    add<timer_churn<true>>("TimerScalingMid", "libuv", n, 2000);
  }
  for (long n : fd_scaling_sizes) {
    if ((quick_mode() && n > 100) || !fds_available(n)) continue;  // RLIMIT_NOFILE too low: skipped
    add<fd_scaling>("FdScaling", "libuv", n, 500);
  }
}

}  // namespace bench
