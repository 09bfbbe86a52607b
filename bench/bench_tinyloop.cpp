// tinyloop: the same operations through the public API of loop.hpp.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "loop.hpp"

#include "harness.hpp"
#include "producers.hpp"

// poll_port lands with the ports work (issue 3); until then its FdScaling cases are not registered.
namespace tinyloop {
struct poll_port;
}

namespace bench {
namespace {

using namespace std::chrono_literals;
using tinyloop::errc;
using tinyloop::events;

template <class T, class = void>
struct is_complete : std::false_type {};
template <class T>
struct is_complete<T, std::void_t<decltype(sizeof(T))>> : std::true_type {};

// Timer1000 and TimerChurn need more than the default 32 timers.
struct timers_config : tinyloop::default_config {
  static constexpr std::size_t max_timers = 16384;
};
// TimerScaling: 10^6 pending + the churned one (the loop is ~100 MB: built on the heap).
struct scaling_config : tinyloop::default_config {
  static constexpr std::size_t max_timers = 1u << 20;
};
// FdScaling: 10,000 idle fds + the ready one.
struct fds_config : tinyloop::default_config {
  static constexpr std::size_t max_sources = 16384;
};
// PostThroughput: the same 1024 slots as the peers' locked queue.
struct posts_config : tinyloop::default_config {
  static constexpr std::size_t post_capacity = 1024;
};

template <class Port = tinyloop::default_port, class Config = tinyloop::default_config>
struct loop_case : case_base {
  using loop_type = tinyloop::event_loop<Port, Config>;
  std::unique_ptr<loop_type> owned;
  loop_type& l;
  loop_case() : owned(make()), l(*owned) {}
  std::unique_ptr<loop_type> make() {
    alloc_scope s;
    loop_type* p = new loop_type;  // the bench's own allocation, not the loop's
    ctor_allocs = s.count() - 1;
    check(p->status() == errc::ok, "tinyloop: event_loop construction");
    return std::unique_ptr<loop_type>(p);
  }
};

inline void expect(bool ok) {
  if (__builtin_expect(!ok, 0)) check(false, "tinyloop: unexpected error");
}

struct create_destroy : case_base {
  using loop_type = tinyloop::event_loop<>;
  explicit create_destroy(long) {
    alloc_scope s;
    {
      loop_type l;
      check(l.status() == errc::ok, "tinyloop: event_loop construction");
    }
    ctor_allocs = s.count();
  }
  void op() {
    loop_type l;
    benchmark::DoNotOptimize(&l);
  }
};

struct wake_latency : loop_case<> {
  explicit wake_latency(long) {}
  void op() {
    l.wake();
    l.run_once();
  }
};

struct wake_ping_pong : loop_case<> {
  loop_case<> peer_loop;
  std::atomic<bool> stop{false};
  std::thread peer;
  explicit wake_ping_pong(long) {
    peer = std::thread([this] {
      for (;;) {
        peer_loop.l.run_once();
        if (stop.load(std::memory_order_acquire)) return;
        l.wake();
      }
    });
  }
  ~wake_ping_pong() {
    stop.store(true, std::memory_order_release);
    peer_loop.l.wake();
    peer.join();
  }
  void op() {
    peer_loop.l.wake();
    l.run_once();
  }
};

struct timer_single : loop_case<> {
  int fired = 0;
  explicit timer_single(long) {}
  void op() {
    expect(l.after(0ms, [this] { ++fired; }).ok());
    l.run_once();
  }
};

struct timer_1000 : loop_case<tinyloop::default_port, timers_config> {
  static constexpr double items_per_op = 1000;
  int fired = 0;
  explicit timer_1000(long) {}
  void op() {
    fired = 0;
    for (int i = 0; i < 1000; ++i) expect(l.after(0ms, [this] { ++fired; }).ok());
    while (fired < 1000) l.run_once();
  }
};

template <class Config, bool Mid = false>
struct timer_churn : loop_case<tinyloop::default_port, Config> {
  using loop_case<tinyloop::default_port, Config>::l;
  int fired = 0;
  std::chrono::nanoseconds delay = 2h;
  explicit timer_churn(long n) {
    if (n < 0) n = churn_pending;
    for (long i = 0; i < n; ++i)
      expect(l.after(1h + std::chrono::microseconds(pending_offset(i, n, Mid)), [this] { ++fired; }).ok());
    if (Mid) delay = 1h + std::chrono::microseconds(n / 2) + 500ns;
  }
  void op() {
    auto id = l.after(delay, [this] { ++fired; });
    expect(id.ok());
    expect(l.cancel(id.value()) == errc::ok);
  }
};

struct pipe_add_del : loop_case<> {
  int fds[2];
  explicit pipe_add_del(long) { make_pipe(fds); }
  ~pipe_add_del() {
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() {
    auto id = l.add(fds[0], events::read, [](events) {});
    expect(id.ok());
    expect(l.remove(id.value()) == errc::ok);
  }
};

struct idle_iter : loop_case<> {
  int fds[2];
  tinyloop::source_id id;
  explicit idle_iter(long) {
    make_pipe(fds);
    auto r = l.add(fds[0], events::read, [](events) {});
    check(r.ok(), "tinyloop: add");
    id = r.value();
  }
  ~idle_iter() {
    expect(l.remove(id) == errc::ok);
    close_fd(fds[0]);
    close_fd(fds[1]);
  }
  void op() { l.poll(); }
};

template <bool Tcp>
struct ping_pong : loop_case<> {
  int fds[2];
  bool got = false;
  explicit ping_pong(long) {
    if (Tcp) make_tcp_pair(fds); else make_socketpair(fds);
    int fd0 = fds[0];
    check(l.add(fd0, events::read,
                [fd0](events) {
                  char b[64];
                  ssize_t n = read(fd0, b, sizeof b);
                  if (n > 0) n = write(fd0, b, static_cast<std::size_t>(n));
                })
              .ok(),
          "tinyloop: add");
    check(l.add(fds[1], events::read,
                [this](events) {
                  char b[64];
                  if (read(fds[1], b, sizeof b) > 0) got = true;
                })
              .ok(),
          "tinyloop: add");
  }
  ~ping_pong() {
    owned.reset();
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

struct post_batch_case : loop_case<tinyloop::default_port, posts_config> {
  static constexpr double items_per_op = 64;
  long consumed = 0;
  explicit post_batch_case(long) {}
  void op() {
    for (int i = 0; i < 64; ++i) expect(l.post([this] { ++consumed; }) == errc::ok);
    l.run_once();
  }
};

template <int Threads>
struct post_throughput : loop_case<tinyloop::default_port, posts_config> {
  static constexpr double items_per_op = post_batch;
  long consumed = 0;
  long target = 0;
  struct poster {
    post_throughput* self;
    bool operator()() const {
      post_throughput* s = self;
      return s->l.post([s] { ++s->consumed; }) == errc::ok;
    }
  };
  std::unique_ptr<producer_group<poster>> producers;
  explicit post_throughput(long) { producers = std::make_unique<producer_group<poster>>(Threads, poster{this}); }
  ~post_throughput() { producers.reset(); }
  void op() {
    target += post_batch;
    producers->start(post_batch);
    while (consumed < target) l.run_once();
  }
};

template <class Port>
struct fd_scaling : loop_case<Port, fds_config> {
  using loop_case<Port, fds_config>::l;
  using loop_case<Port, fds_config>::owned;
  std::vector<int> idle_fds;
  int ready = -1;
  explicit fd_scaling(long n) : idle_fds(static_cast<std::size_t>(n)) {
    for (int& fd : idle_fds) {
      fd = make_eventfd();
      check(l.add(fd, events::read, [](events) {}).ok(), "tinyloop: add");
    }
    ready = make_eventfd();
    int fd = ready;
    check(l.add(fd, events::read, [fd](events) { drain(fd); }).ok(), "tinyloop: add");
  }
  ~fd_scaling() {
    owned.reset();
    for (int fd : idle_fds) close_fd(fd);
    close_fd(ready);
  }
  void op() {
    write_byte(ready);
    l.run_once();
  }
};

template <class PollPort>
void register_poll_port() {
  if constexpr (is_complete<PollPort>::value) {
    for (long n : fd_scaling_sizes) {
      if ((quick_mode() && n > 100) || !fds_available(n)) continue;  // RLIMIT_NOFILE too low: skipped
      add<fd_scaling<PollPort>>("FdScaling", "tinyloop-poll", n, 500);
    }
  }
}

}  // namespace

void register_tinyloop() {
  add<create_destroy>("CreateDestroy", "tinyloop", -1, 2000);
  add<wake_latency>("WakeLatency", "tinyloop", -1, 5000);
  add<wake_ping_pong>("WakePingPong", "tinyloop", -1, 2000);
  add<timer_single>("TimerSingle", "tinyloop", -1, 5000);
  add<timer_1000>("Timer1000", "tinyloop", -1, 20);
  add<timer_churn<timers_config>>("TimerChurn", "tinyloop", -1, 5000);
  add<pipe_add_del>("PipeAddDel", "tinyloop", -1, 5000);
  add<idle_iter>("IdleIter", "tinyloop", -1, 5000);
  add<ping_pong<false>>("PingPongUnix", "tinyloop", -1, 2000);
  add<ping_pong<true>>("PingPongTcp", "tinyloop", -1, 2000);
  add<post_batch_case>("PostBatch", "tinyloop", -1, 1000);
  add<post_throughput<1>>("PostThroughput", "tinyloop", 1, 0);
  add<post_throughput<2>>("PostThroughput", "tinyloop", 2, 0);
  add<post_throughput<4>>("PostThroughput", "tinyloop", 4, 0);
  for (long n : timer_scaling_sizes) {
    if (quick_mode() && n > 10000) continue;
    add<timer_churn<scaling_config>>("TimerScaling", "tinyloop", n, 2000);
    add<timer_churn<scaling_config, true>>("TimerScalingMid", "tinyloop", n, 2000);
  }
  for (long n : fd_scaling_sizes) {
    if ((quick_mode() && n > 100) || !fds_available(n)) continue;  // RLIMIT_NOFILE too low: skipped
    add<fd_scaling<tinyloop::epoll_port>>("FdScaling", "tinyloop", n, 500);
  }
  register_poll_port<tinyloop::poll_port>();
}

}  // namespace bench
