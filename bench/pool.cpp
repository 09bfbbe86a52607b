// Worker pool round trips: tinyloop::worker_pool against libuv's uv_queue_work, in the same binary and run.
//
//   PoolRoundTrip/<lib>       submit one item from the loop thread, run the loop until its done() ran:
//                             wake an idle worker, run an (almost) empty work function, wake the loop.
//   PoolRoundTrip1000/<lib>   submit 1,000 items, run the loop until all 1,000 done()s ran (per item in docs).
//
// Both libraries get two worker threads (libuv through UV_THREADPOOL_SIZE, set here before its pool starts;
// tinyloop through worker_pool's Threads) and the same work: one relaxed atomic increment. The pools' threads
// are started in the case's setup (libuv's lazily, by the warm-up), never in the timed part.
// Wall clock only: callgrind serializes threads, so instruction counts of a thread pool mean little.
#include <uv.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <vector>

#include "harness.hpp"

#ifdef BENCH_HAVE_TINYLOOP
#include "loop.hpp"
#endif

namespace bench {
namespace {

constexpr int pool_threads = 2;

// ---- libuv ---------------------------------------------------------------------------------------------

template <int N>
struct uv_pool_round_trip : case_base {
  static constexpr double items_per_op = N;

  uv_loop_t loop;
  std::vector<uv_work_t> reqs = std::vector<uv_work_t>(N);
  std::atomic<long> worked{0};
  int done = 0;

  explicit uv_pool_round_trip(long) {
    // libuv reads this once, when its (process-wide) pool starts on the first uv_queue_work.
    static const bool sized = setenv("UV_THREADPOOL_SIZE", "2", 1) == 0;
    check(sized, "setenv UV_THREADPOOL_SIZE");
    alloc_scope s;
    check(uv_loop_init(&loop) == 0, "uv_loop_init");
    ctor_allocs = s.count();
    for (uv_work_t& r : reqs) r.data = this;
  }
  ~uv_pool_round_trip() { check(uv_loop_close(&loop) == 0, "uv_loop_close"); }

  static void work(uv_work_t* r) { static_cast<uv_pool_round_trip*>(r->data)->worked.fetch_add(1, std::memory_order_relaxed); }
  static void after(uv_work_t* r, int status) {
    check(status == 0, "uv_queue_work status");
    ++static_cast<uv_pool_round_trip*>(r->data)->done;
  }

  void op() {
    done = 0;
    for (uv_work_t& r : reqs) check(uv_queue_work(&loop, &r, &work, &after) == 0, "uv_queue_work");
    uv_run(&loop, UV_RUN_DEFAULT);  // returns when no request is left
    check(done == N, "every after_work ran");
  }
};

// ---- tinyloop ------------------------------------------------------------------------------------------

#ifdef BENCH_HAVE_TINYLOOP
template <int N>
struct tinyloop_pool_round_trip : case_base {
  static constexpr double items_per_op = N;
  using loop_type = tinyloop::event_loop<>;
  using pool_type = tinyloop::worker_pool<loop_type, pool_threads, (N < 64 ? 64 : N)>;

  std::unique_ptr<loop_type> loop;
  std::unique_ptr<pool_type> pool;
  std::atomic<long> worked{0};
  int done = 0;

  explicit tinyloop_pool_round_trip(long) {
    alloc_scope s;
    loop = std::make_unique<loop_type>();
    check(loop->status() == tinyloop::errc::ok, "event_loop");
    ctor_allocs = s.count();  // the loop's own; the pool's threads count as setup_allocs
    pool = std::make_unique<pool_type>(*loop);
    check(pool->status() == tinyloop::errc::ok, "worker_pool");
  }
  ~tinyloop_pool_round_trip() { pool.reset(); }  // the pool goes before its loop

  void op() {
    done = 0;
    for (int i = 0; i < N; ++i) {
      auto id = pool->submit([this] { worked.fetch_add(1, std::memory_order_relaxed); },
                             [this](tinyloop::errc e) { done += e == tinyloop::errc::ok; });
      check(id.ok(), "worker_pool::submit");
    }
    check(loop->run() == tinyloop::errc::ok, "run");  // returns when no done() is outstanding
    check(done == N, "every done ran");
  }
};
#endif

struct registrar {
  registrar() {
    // Registered from a static constructor (main.cpp knows the four libraries' register functions only);
    // cases() is a function-local static, so the order of initialization does not matter.
#ifdef BENCH_HAVE_TINYLOOP
    add<tinyloop_pool_round_trip<1>>("PoolRoundTrip", "tinyloop", -1, 0);
#endif
    add<uv_pool_round_trip<1>>("PoolRoundTrip", "libuv", -1, 0);
#ifdef BENCH_HAVE_TINYLOOP
    add<tinyloop_pool_round_trip<1000>>("PoolRoundTrip1000", "tinyloop", -1, 0);
#endif
    add<uv_pool_round_trip<1000>>("PoolRoundTrip1000", "libuv", -1, 0);
  }
};
const registrar registered;

}  // namespace
}  // namespace bench
