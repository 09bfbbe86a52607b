// libev 4.x: the same operations through its public API. Only libev is linked (Debian's libev.so also
// exports libevent's names; nothing here includes event.h or links libevent).
#include <ev.h>
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

struct ev_base : case_base {
  struct ev_loop* loop;
  explicit ev_base(unsigned backend = EVBACKEND_EPOLL) {
    alloc_scope s;
    loop = ev_loop_new(backend | EVFLAG_NOENV);
    check(loop != nullptr, "ev_loop_new");
    ctor_allocs = s.count();
  }
  ~ev_base() { ev_loop_destroy(loop); }
};

void count_timer(struct ev_loop*, ev_timer* w, int) { ++*static_cast<int*>(w->data); }

struct create_destroy : case_base {
  explicit create_destroy(long) {
    alloc_scope s;
    struct ev_loop* l = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    check(l != nullptr, "ev_loop_new");
    ctor_allocs = s.count();
    ev_loop_destroy(l);
  }
  void op() { ev_loop_destroy(ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV)); }
};

struct wake_latency : ev_base {
  ev_async async;
  explicit wake_latency(long) {
    ev_async_init(&async, [](struct ev_loop*, ev_async*, int) {});
    ev_async_start(loop, &async);
  }
  void op() {
    ev_async_send(loop, &async);
    ev_run(loop, EVRUN_ONCE);
  }
};

struct wake_ping_pong : ev_base {
  struct ev_loop* peer_loop;
  ev_async to_main, to_peer;
  std::atomic<bool> stop{false};
  std::thread peer;
  explicit wake_ping_pong(long) {
    peer_loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    check(peer_loop != nullptr, "ev_loop_new");
    ev_async_init(&to_main, [](struct ev_loop*, ev_async*, int) {});
    ev_async_start(loop, &to_main);
    ev_async_init(&to_peer, [](struct ev_loop* l, ev_async* w, int) {
      auto* self = static_cast<wake_ping_pong*>(w->data);
      if (self->stop.load(std::memory_order_acquire)) {
        ev_break(l, EVBREAK_ALL);
        return;
      }
      ev_async_send(self->loop, &self->to_main);
    });
    to_peer.data = this;
    ev_async_start(peer_loop, &to_peer);
    peer = std::thread([this] { ev_run(peer_loop, 0); });
  }
  ~wake_ping_pong() {
    stop.store(true, std::memory_order_release);
    ev_async_send(peer_loop, &to_peer);
    peer.join();
    ev_loop_destroy(peer_loop);
  }
  void op() {
    ev_async_send(peer_loop, &to_peer);
    ev_run(loop, EVRUN_ONCE);
  }
};

struct timer_single : ev_base {
  ev_timer t;
  int fired = 0;
  explicit timer_single(long) {
    ev_timer_init(&t, count_timer, 0., 0.);
    t.data = &fired;
  }
  void op() {
    ev_timer_set(&t, 0., 0.);
    ev_timer_start(loop, &t);
    ev_run(loop, EVRUN_ONCE);
  }
};

struct timer_1000 : ev_base {
  static constexpr double items_per_op = 1000;
  ev_timer t[1000];
  int fired = 0;
  explicit timer_1000(long) {
    for (ev_timer& x : t) {
      ev_timer_init(&x, count_timer, 0., 0.);
      x.data = &fired;
    }
  }
  void op() {
    fired = 0;
    for (ev_timer& x : t) {
      ev_timer_set(&x, 0., 0.);
      ev_timer_start(loop, &x);
    }
    while (fired < 1000) ev_run(loop, EVRUN_ONCE);
  }
};

template <bool Mid = false>
struct timer_churn : ev_base {
  std::unique_ptr<ev_timer[]> pending;
  ev_timer churn;
  int fired = 0;
  double delay = 7200.;
  explicit timer_churn(long n) {
    if (n < 0) n = churn_pending;
    if (Mid) delay = 3600. + static_cast<double>(n / 2) * 1e-6 + 0.5e-6;
    pending.reset(new ev_timer[static_cast<std::size_t>(n)]);
    for (long i = 0; i < n; ++i) {
      ev_timer& x = pending[static_cast<std::size_t>(i)];
      ev_timer_init(&x, count_timer, 3600. + static_cast<double>(pending_offset(i, n, Mid)) * 1e-6, 0.);
      x.data = &fired;
      ev_timer_start(loop, &x);
    }
    ev_timer_init(&churn, count_timer, 7200., 0.);
    churn.data = &fired;
  }
  void op() {
    ev_timer_set(&churn, delay, 0.);
    ev_timer_start(loop, &churn);
    ev_timer_stop(loop, &churn);
  }
};

// libev queues fd changes and applies them in its next iteration; the NOWAIT runs make the kernel see them.
struct pipe_add_del : ev_base {
  int fds[2];
  ev_io w;
  explicit pipe_add_del(long) {
    make_pipe(fds);
    ev_io_init(&w, [](struct ev_loop*, ev_io*, int) {}, fds[0], EV_READ);
  }
  ~pipe_add_del() {
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    ev_io_start(loop, &w);
    ev_run(loop, EVRUN_NOWAIT);
    ev_io_stop(loop, &w);
    ev_run(loop, EVRUN_NOWAIT);
  }
};

struct idle_iter : ev_base {
  int fds[2];
  ev_io w;
  explicit idle_iter(long) {
    make_pipe(fds);
    ev_io_init(&w, [](struct ev_loop*, ev_io*, int) {}, fds[0], EV_READ);
    ev_io_start(loop, &w);
    ev_run(loop, EVRUN_NOWAIT);
  }
  ~idle_iter() {
    ev_io_stop(loop, &w);
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() { ev_run(loop, EVRUN_NOWAIT); }
};

template <bool Tcp>
struct ping_pong : ev_base {
  int fds[2];
  ev_io w0, w1;
  bool got = false;
  explicit ping_pong(long) {
    if (Tcp) make_tcp_pair(fds); else make_socketpair(fds);
    ev_io_init(&w0, [](struct ev_loop*, ev_io* w, int) {
      char b[64];
      ssize_t n = read(w->fd, b, sizeof b);
      if (n > 0) n = write(w->fd, b, static_cast<std::size_t>(n));
    }, fds[0], EV_READ);
    ev_io_init(&w1, [](struct ev_loop*, ev_io* w, int) {
      char b[64];
      if (read(w->fd, b, sizeof b) > 0) static_cast<ping_pong*>(w->data)->got = true;
    }, fds[1], EV_READ);
    w0.data = w1.data = this;
    ev_io_start(loop, &w0);
    ev_io_start(loop, &w1);
  }
  ~ping_pong() {
    ev_io_stop(loop, &w0);
    ev_io_stop(loop, &w1);
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    got = false;
    char c = 'x';
    check(write(fds[1], &c, 1) == 1, "write");
    while (!got) ev_run(loop, EVRUN_ONCE);
  }
};

template <int Threads>
struct post_throughput : ev_base {
  static constexpr double items_per_op = post_batch;
  floor::locked_queue q;
  ev_async async;
  long consumed = 0;
  long target = 0;
  struct poster {
    post_throughput* self;
    bool operator()() const {
      if (!self->q.try_push({[](void* c) { ++static_cast<post_throughput*>(c)->consumed; }, self})) return false;
      ev_async_send(self->loop, &self->async);  // libev coalesces sends until the callback runs
      return true;
    }
  };
  std::unique_ptr<producer_group<poster>> producers;
  explicit post_throughput(long) {
    ev_async_init(&async, [](struct ev_loop*, ev_async* w, int) { static_cast<post_throughput*>(w->data)->q.run_all(); });
    async.data = this;
    ev_async_start(loop, &async);
    producers = std::make_unique<producer_group<poster>>(Threads, poster{this});
  }
  ~post_throughput() { producers.reset(); }
  void op() {
    target += post_batch;
    producers->start(post_batch);
    while (consumed < target) ev_run(loop, EVRUN_ONCE);
  }
};

struct post_batch_case : ev_base {
  static constexpr double items_per_op = 64;
  floor::locked_queue q;
  ev_async async;
  long consumed = 0;
  explicit post_batch_case(long) {
    ev_async_init(&async, [](struct ev_loop*, ev_async* w, int) { static_cast<post_batch_case*>(w->data)->q.run_all(); });
    async.data = this;
    ev_async_start(loop, &async);
  }
  void op() {
    for (int i = 0; i < 64; ++i) {
      q.try_push({[](void* c) { ++static_cast<post_batch_case*>(c)->consumed; }, this});
      ev_async_send(loop, &async);
    }
    ev_run(loop, EVRUN_ONCE);
  }
};

template <unsigned Backend>
struct fd_scaling : ev_base {
  std::vector<int> idle_fds;
  std::unique_ptr<ev_io[]> idle;
  int ready = -1;
  ev_io ready_io;
  explicit fd_scaling(long n)
      : ev_base(Backend), idle_fds(static_cast<std::size_t>(n)), idle(new ev_io[static_cast<std::size_t>(n)]) {
    for (std::size_t i = 0; i < idle_fds.size(); ++i) {
      idle_fds[i] = make_eventfd();
      ev_io_init(&idle[i], [](struct ev_loop*, ev_io*, int) {}, idle_fds[i], EV_READ);
      ev_io_start(loop, &idle[i]);
    }
    ready = make_eventfd();
    ev_io_init(&ready_io, [](struct ev_loop*, ev_io* w, int) { drain(w->fd); }, ready, EV_READ);
    ev_io_start(loop, &ready_io);
    ev_run(loop, EVRUN_NOWAIT);
  }
  ~fd_scaling() {
    for (int fd : idle_fds) close_fd(fd);
    close_fd(ready);
  }
  void op() {
    write_byte(ready);
    ev_run(loop, EVRUN_ONCE);
  }
};

}  // namespace

void register_libev() {
  add<create_destroy>("CreateDestroy", "libev", -1, 2000);
  add<wake_latency>("WakeLatency", "libev", -1, 5000);
  add<wake_ping_pong>("WakePingPong", "libev", -1, 2000);
  add<timer_single>("TimerSingle", "libev", -1, 5000);
  add<timer_1000>("Timer1000", "libev", -1, 20);
  add<timer_churn<>>("TimerChurn", "libev", -1, 5000);
  add<pipe_add_del>("PipeAddDel", "libev", -1, 5000);
  add<idle_iter>("IdleIter", "libev", -1, 5000);
  add<ping_pong<false>>("PingPongUnix", "libev", -1, 2000);
  add<ping_pong<true>>("PingPongTcp", "libev", -1, 2000);
  add<post_batch_case>("PostBatch", "libev", -1, 1000);
  add<post_throughput<1>>("PostThroughput", "libev", 1, 0);
  add<post_throughput<2>>("PostThroughput", "libev", 2, 0);
  add<post_throughput<4>>("PostThroughput", "libev", 4, 0);
  for (long n : timer_scaling_sizes) {
    if (quick_mode() && n > 10000) continue;
    add<timer_churn<>>("TimerScaling", "libev", n, 2000);
    add<timer_churn<true>>("TimerScalingMid", "libev", n, 2000);
  }
  for (long n : fd_scaling_sizes) {
    if ((quick_mode() && n > 100) || !fds_available(n)) continue;  // RLIMIT_NOFILE too low: skipped
    add<fd_scaling<EVBACKEND_EPOLL>>("FdScaling", "libev", n, 500);
    add<fd_scaling<EVBACKEND_POLL>>("FdScaling", "libev-poll", n, 500);
  }
}

}  // namespace bench
