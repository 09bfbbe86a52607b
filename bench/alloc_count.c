/* Counts heap allocations of the whole process by interposing the allocator entry points in the bench
 * executable; glibc's own implementations stay reachable under their __libc_ names. Only calls that
 * obtain memory are counted (free is not). operator new reaches malloc through libstdc++. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t count, size_t size);
extern void* __libc_realloc(void* ptr, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void* ptr);

static atomic_ulong allocations;

unsigned long bench_alloc_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }

/* relaxed: a statistic read after the measured threads are joined or quiescent */
static void count_one(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void* malloc(size_t size) {
  count_one();
  return __libc_malloc(size);
}

void* calloc(size_t count, size_t size) {
  count_one();
  return __libc_calloc(count, size);
}

void* realloc(void* ptr, size_t size) {
  count_one();
  return __libc_realloc(ptr, size);
}

void free(void* ptr) { __libc_free(ptr); }

void* memalign(size_t alignment, size_t size) {
  count_one();
  return __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  count_one();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  count_one();
  void* p = __libc_memalign(alignment, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}
