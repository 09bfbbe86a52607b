// The allocation counter of support/alloc_counter.hpp: malloc and friends interposed (glibc), or
// the sanitizers' malloc hook (ASan/TSan own malloc), and every replaceable operator new.
#include "support/alloc_counter.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TLTEST_VALGRIND_CHECK 1
#endif
#endif

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

#if TLTEST_SANITIZED || defined(__GLIBC__)
#define TLTEST_COUNTABLE 1
#else
#define TLTEST_COUNTABLE 0
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

inline void note_allocation() noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if TLTEST_SANITIZED
extern "C" void __sanitizer_malloc_hook(const volatile void*, std::size_t) { note_allocation(); }
extern "C" void __sanitizer_free_hook(const volatile void*) {}
#elif TLTEST_COUNTABLE
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

namespace tltest {

const char* allocations::why_not_countable() noexcept {
#if defined(TLTEST_VALGRIND_CHECK)
  // valgrind replaces malloc and operator new in the program itself too: ours never run.
  if (RUNNING_ON_VALGRIND) return "running under valgrind, which replaces malloc and operator new";
#endif
  if (TLTEST_COUNTABLE == 0) return "malloc cannot be interposed here (not glibc, no sanitizer hook)";
  return nullptr;
}

bool allocations::countable() noexcept { return why_not_countable() == nullptr; }

void allocations::start() noexcept {
  g_allocations.store(0, std::memory_order_seq_cst);
  g_counting.store(true, std::memory_order_seq_cst);
}

long allocations::stop() noexcept {
  g_counting.store(false, std::memory_order_seq_cst);
  return g_allocations.load(std::memory_order_seq_cst);
}

long allocations::self_test() noexcept {
  // Through volatile function pointers: the compiler may drop a malloc/free or new/delete pair
  // it can see, and then the test would say the counter is broken.
  void* (*volatile do_malloc)(std::size_t) = std::malloc;
  void (*volatile do_free)(void*) = std::free;
  void* (*volatile do_new)(std::size_t) = ::operator new;
  void (*volatile do_delete)(void*) noexcept = ::operator delete;
  start();
  do_free(do_malloc(24));
  do_delete(do_new(24));
  return stop();
}

}  // namespace tltest
