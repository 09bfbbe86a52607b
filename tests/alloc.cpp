// After an event_loop is constructed, no operation of the loop allocates heap memory.
//
// This binary counts every heap allocation of the process: it interposes malloc, calloc, realloc
// and the aligned allocators (forwarding to glibc's __libc_* entry points), and replaces operator
// new. Under ASan/TSan, which own malloc, it uses the sanitizers' malloc hook instead. Counting is
// switched on after the loop, the channels and the producer threads exist (std::thread allocates
// when it starts), and off before the threads are released and joined.
#include "support/ports.hpp"

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TLTEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TLTEST_SANITIZED 1
#endif
#endif
#if !defined(TLTEST_SANITIZED)
#define TLTEST_SANITIZED 0
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

inline void note_allocation() noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if TLTEST_SANITIZED
extern "C" void __sanitizer_malloc_hook(const volatile void*, std::size_t) { note_allocation(); }
extern "C" void __sanitizer_free_hook(const volatile void*) {}
#else
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  note_allocation();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}
#endif

// operator new goes through malloc (counted above); aligned new through aligned_alloc.
void* operator new(std::size_t n) {
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new(std::size_t n, std::align_val_t a) {
  const std::size_t al = static_cast<std::size_t>(a);
  const std::size_t rounded = (n + al - 1) / al * al;
  if (void* p = std::aligned_alloc(al, rounded ? rounded : al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace alloc_tests {

using tinyloop::errc;
using tinyloop::events;
using namespace std::chrono_literals;

struct tiny : tinyloop::default_config {
  static constexpr std::size_t max_timers = 1;
  static constexpr std::size_t max_sources = 1;
  static constexpr std::size_t post_capacity = 2;
};

// Counts allocations made while it is alive.
class allocation_counter {
 public:
  allocation_counter() noexcept {
    allocations.store(0);
    counting.store(true, std::memory_order_seq_cst);
  }
  ~allocation_counter() { stop(); }
  long stop() noexcept {
    counting.store(false, std::memory_order_seq_cst);
    return allocations.load();
  }
};

TEST(alloc, the_counter_sees_allocations) {
  long n;
  {
    allocation_counter c;
    std::vector<int>* v = new std::vector<int>(100);
    delete v;
    void* p = std::malloc(10);
    std::free(p);
    n = c.stop();
  }
  EXPECT_GE(n, 3) << "the interposition does not work: the zero-allocation tests would prove nothing";
}

TEST(alloc, inplace_function_never_allocates) {
  int hits = 0;
  long n;
  {
    allocation_counter c;
    using fn = tinyloop::inplace_function<void(), 4 * sizeof(void*)>;
    int* h = &hits;
    fn a([h] { ++*h; });
    fn b(std::move(a));
    fn d;
    d = std::move(b);
    d();
    d = nullptr;
    n = c.stop();
  }
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(n, 0);
}

template <class F>
class alloc_workload : public tltest::port_test<F> {};
TYPED_TEST_SUITE(alloc_workload, tltest::all_ports, tltest::port_name);

// The mixed workload: one-shot, periodic and absolute timers, cancels, fds added, modified,
// removed and re-added, posts from two threads (retrying when full), a signal, stop and poll.
TYPED_TEST(alloc_workload, mixed_workload_allocates_nothing) {
  using loop_t = tltest::loop_for<TypeParam>;
  constexpr int per_producer = 500;
  loop_t loop;
  ASSERT_EQ(loop.status(), errc::ok);
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  ASSERT_TRUE(a.ok() && b.ok());

  struct state {
    loop_t* loop;
    int timer_runs = 0;
    int periodic_runs = 0;
    int io_runs = 0;
    int signal_runs = 0;
    std::atomic<int> posts{0};
    tinyloop::timer_id periodic{};
  } s;
  s.loop = &loop;
  state* sp = &s;

  std::atomic<bool> go{false}, release{false};
  std::atomic<int> started{0};
  std::vector<std::thread> producers;
  const int producer_count = TypeParam::threads ? 2 : 0;
  for (int p = 0; p < producer_count; ++p) {
    producers.emplace_back([&loop, &go, &release, &started, sp] {
      started.fetch_add(1);  // the thread's own start-up (libc, sanitizers) may allocate: done by now
      tltest::spin_until([&] { return go.load(); });
      for (int i = 0; i < per_producer; ++i) {
        while (loop.post([sp] { sp->posts.fetch_add(1, std::memory_order_relaxed); }) != errc::ok)
          std::this_thread::yield();
        if (i % 50 == 0) loop.wake();
      }
      tltest::spin_until([&] { return release.load(); });
    });
  }

  tltest::spin_until([&] { return started.load() == producer_count; });
  long counted;
  bool done = false;
  {
    allocation_counter counter;
    go = true;
    // timers
    for (int i = 0; i < 8; ++i) (void)loop.after(i * 1ms, [sp] { ++sp->timer_runs; });
    auto doomed = loop.after(1h, [sp] { sp->timer_runs += 1000; });
    auto absolute = loop.at(loop.now() + 2ms, [sp] { ++sp->timer_runs; });
    auto periodic = loop.every(1ms, [sp] {
      if (++sp->periodic_runs == 5) (void)sp->loop->cancel(sp->periodic);
    });
    if (periodic) s.periodic = periodic.value();
    if (doomed) (void)loop.cancel(doomed.value());
    (void)absolute;
    // fds
    auto ra = loop.add(a.fd(), events::read, [sp, &a](events) {
      ++sp->io_runs;
      a.drain();
    });
    auto rb = loop.add(b.fd(), events::read | events::write, [sp](events) { ++sp->io_runs; });
    if (rb) (void)loop.modify(rb.value(), events::read);
    if (rb) (void)loop.remove(rb.value());
    auto rb2 = loop.add(b.fd(), events::read, [sp, &b](events) {
      ++sp->io_runs;
      b.drain();
    });
    a.make_readable();
    b.make_readable();
    // a signal
    if constexpr (TypeParam::port::has_signals) {
      (void)loop.watch_signal(SIGUSR1, [sp](int) { ++sp->signal_runs; });
      std::raise(SIGUSR1);
    }
    // posts from this thread too, a stop, and a poll
    // (the producers may have filled the queue: count only the posts it took)
    int own_posts = 0;
    for (int i = 0; i < 10; ++i)
      own_posts += loop.post([sp] { sp->posts.fetch_add(1, std::memory_order_relaxed); }) == errc::ok;
    loop.stop();
    (void)loop.run();
    (void)loop.poll();
    const int expected_posts = producer_count * per_producer + own_posts;
    tltest::run_once_until(loop, [&] {
      return s.posts.load() == expected_posts && s.timer_runs >= 9 && s.periodic_runs >= 5 && s.io_runs >= 2 &&
             (!TypeParam::port::has_signals || s.signal_runs >= 1);
    });
    done = true;
    if constexpr (TypeParam::port::has_signals) (void)loop.unwatch_signal(SIGUSR1);
    if (ra) (void)loop.remove(ra.value());
    if (rb2) (void)loop.remove(rb2.value());
    (void)loop.run();
    counted = counter.stop();
  }
  release = true;
  for (auto& t : producers) t.join();

  EXPECT_TRUE(done) << "posts " << s.posts.load() << " timers " << s.timer_runs << " periodic " << s.periodic_runs
                    << " io " << s.io_runs << " signals " << s.signal_runs;
  EXPECT_EQ(s.timer_runs, 9);
  EXPECT_EQ(s.periodic_runs, 5);
  EXPECT_EQ(counted, 0) << "heap allocations after the loop was constructed";
}

TYPED_TEST(alloc_workload, full_capacity_rejections_allocate_nothing) {
  using loop_t = tltest::loop_for<TypeParam, tiny>;
  loop_t loop;
  tltest::channel_for<TypeParam, loop_t> a(loop), b(loop);
  long counted;
  errc timer_full, source_full, post_full;
  {
    allocation_counter counter;
    auto t = loop.after(1h, [] {});
    timer_full = loop.after(1h, [] {}).error();
    auto r = loop.add(a.fd(), events::read, [](events) {});
    source_full = loop.add(b.fd(), events::read, [](events) {}).error();
    (void)loop.post([] {});
    (void)loop.post([] {});
    post_full = loop.post([] {});
    (void)loop.poll();
    if (t) (void)loop.cancel(t.value());
    if (r) (void)loop.remove(r.value());
    counted = counter.stop();
  }
  EXPECT_EQ(timer_full, errc::full);
  EXPECT_EQ(source_full, TypeParam::port::has_fds ? errc::full : errc::unsupported);
  EXPECT_EQ(post_full, errc::full);
  EXPECT_EQ(counted, 0);
}

TYPED_TEST(alloc_workload, destructor_allocates_nothing) {
  using loop_t = tltest::loop_for<TypeParam>;
  std::optional<loop_t> loop;
  loop.emplace();
  tltest::channel_for<TypeParam, loop_t> a(*loop);
  (void)loop->after(1h, [] {});
  (void)loop->post([] {});
  (void)loop->add(a.fd(), events::read, [](events) {});
  long counted;
  {
    allocation_counter counter;
    loop.reset();
    counted = counter.stop();
  }
  EXPECT_EQ(counted, 0);
}

}  // namespace alloc_tests
