// Shared harness of the tinyloop benchmark binary.
//
// Every benchmark is a "case": a class constructed with one argument (setup), whose op() performs one
// operation, and whose destructor tears down. The same case runs in two modes:
//   - wall clock, through Google Benchmark (the default);
//   - `--count`: a fixed number of op() calls between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT, so
//     `valgrind --tool=callgrind --instr-atstart=no` gives user-space instructions per operation.
// Each library's file registers its cases with add_case(); main.cpp hands them to either mode.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(name) ((void)(name))
#endif

extern "C" unsigned long bench_alloc_count(void);  // every malloc/calloc/realloc/memalign so far, all threads

namespace bench {

struct case_info {
  std::string op;            // "TimerSingle"
  std::string lib;           // "tinyloop", "libuv", "libev", "floor", "tinyloop-poll", ...
  long arg = -1;             // the size parameter of scaling cases, else -1
  double items_per_op = 1;   // Timer1000: 1000 (reported per item in docs), post throughput: batch size
  std::size_t count_iters = 0;  // op() calls in --count mode; 0 = not counted (multi-producer cases)
  void (*run_wall)(benchmark::State&, long arg) = nullptr;
  void (*run_count)(long arg, std::size_t iters, const char* dump_name) = nullptr;

  std::string name() const {
    return arg < 0 ? op + "/" + lib : op + "/" + lib + "/" + std::to_string(arg);
  }
};

void add_case(case_info info);
bool quick_mode();  // --quick: smaller scaling sets, for the CTest smoke test and CI

template <class Case>
void run_wall(benchmark::State& state, long arg) {
  unsigned long before = bench_alloc_count();
  auto c = std::make_unique<Case>(arg);
  for (int i = 0; i < 2; ++i) c->op();  // warm-up: a peer's first-use allocations count as setup
  unsigned long warm = bench_alloc_count();
  for (auto _ : state) c->op();
  unsigned long after = bench_alloc_count();
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(after - warm), benchmark::Counter::kAvgIterations);
  // Allocations made by the setup and warm-up, loop construction included: the library's own plus the
  // fixture's (threads, vectors). Cases report their loop's own construction separately (ctor_allocs).
  state.counters["setup_allocs"] = static_cast<double>(warm - before - 1);  // -1: make_unique itself
  state.counters["ctor_allocs"] = static_cast<double>(c->ctor_allocs);
  state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * Case::items_per_op));
}

template <class Case>
void run_count(long arg, std::size_t iters, const char* dump_name) {
  auto c = std::make_unique<Case>(arg);
  CALLGRIND_START_INSTRUMENTATION;
  // Warm up: lazy PLT binding, first-touch of tables, libuv/libev one-time paths.
  for (std::size_t i = 0; i < 16; ++i) c->op();
  CALLGRIND_ZERO_STATS;
  for (std::size_t i = 0; i < iters; ++i) c->op();
  CALLGRIND_DUMP_STATS_AT(dump_name);
  CALLGRIND_STOP_INSTRUMENTATION;
}

template <class Case>
void add(const char* op, const char* lib, long arg, std::size_t count_iters) {
  case_info info;
  info.op = op;
  info.lib = lib;
  info.arg = arg;
  info.items_per_op = Case::items_per_op;
  info.count_iters = count_iters;
  info.run_wall = &run_wall<Case>;
  info.run_count = &run_count<Case>;
  add_case(std::move(info));
}

// Base for cases: items_per_op defaults to 1, ctor_allocs to 0 (set it when the case builds a loop).
struct case_base {
  static constexpr double items_per_op = 1;
  unsigned long ctor_allocs = 0;
};

// Counts the allocations made while constructing something: `alloc_scope s; ...; n = s.count();`
class alloc_scope {
 public:
  alloc_scope() : start_(bench_alloc_count()) {}
  unsigned long count() const { return bench_alloc_count() - start_; }

 private:
  unsigned long start_;
};

// Small helpers shared by every library's file.
void check(bool ok, const char* what);  // aborts with a message: a broken fixture must not yield numbers
void raise_fd_limit();
bool fds_available(long n);  // can this process open n more fds (after raise_fd_limit())?
int make_eventfd();
void make_socketpair(int fds[2]);
void make_tcp_pair(int fds[2]);  // connected 127.0.0.1 pair, TCP_NODELAY, non-blocking
void make_pipe(int fds[2]);      // non-blocking
void close_fd(int fd);
void write_byte(int fd);
void drain(int fd);              // reads until EAGAIN

// Scaling sets
inline const long timer_scaling_sizes[] = {1000, 10000, 100000, 1000000};
inline const long fd_scaling_sizes[] = {10, 100, 1000, 10000};
inline constexpr int churn_pending = 10000;   // TimerChurn
// The i-th of n pending timers is `pending_offset(i, n, scrambled)` steps after one hour: in arm order, or
// (TimerScalingMid) in a scrambled order so the heap is not a sorted array (7919 is prime, so this is a
// permutation of 0..n-1 for n = 10^k).
inline long pending_offset(long i, long n, bool scrambled) { return scrambled ? (i * 7919) % n : i; }
inline constexpr int post_batch = 4096;       // posts per op in the PostThroughput cases

}  // namespace bench
