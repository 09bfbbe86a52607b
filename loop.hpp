// tinyloop: a single-header C++17 event loop for firmware and servers.
//
// Fixed capacities chosen at compile time, no heap allocation after construction, no exceptions,
// no RTTI. One class template, event_loop<Port, Config>, over a platform port: epoll (Linux),
// kqueue (BSD/macOS), poll(2) (any POSIX), a bare-metal shim over a user-supplied Board, and a
// simulated port with virtual time for tests.
//
// The file reads top to bottom in layers; each section depends only on the ones above it:
//   1. configuration and errors        errc, result, events, default_config
//   2. small utilities                 ids, inplace_function, duration arithmetic
//   3. fixed-capacity containers       slot_table, timer_heap, bounded_queue
//   4. the port concept and the ports  epoll_port, kqueue_port, poll_port, sim_port, baremetal_port
//   5. POSIX signal plumbing           signal_hub
//   6. event_loop
//   7. worker_pool                     (hosted ports only)
//
// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

// TINYLOOP_HOSTED: an operating system with POSIX is underneath (OS ports, signals, threads).
#if !defined(TINYLOOP_HOSTED)
#if __STDC_HOSTED__ && (defined(__unix__) || defined(__APPLE__))
#define TINYLOOP_HOSTED 1
#else
#define TINYLOOP_HOSTED 0
#endif
#endif

#if TINYLOOP_HOSTED
#include <cassert>
#include <cerrno>
#include <csignal>
#include <thread>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/eventfd.h>
#define TINYLOOP_HAS_EPOLL 1
#endif
#if defined(TINYLOOP_KQUEUE_HEADER)
#include TINYLOOP_KQUEUE_HEADER
#define TINYLOOP_HAS_KQUEUE 1
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(__DragonFly__)
#include <sys/event.h>
#include <time.h>
#if defined(EVFILT_USER)  // the wake needs it; older kernels fall back to poll_port
#define TINYLOOP_HAS_KQUEUE 1
#endif
#endif
#define TINYLOOP_HAS_POLL 1
#endif

// Debug-build checks of API misuse (wrong thread). Never used for bad input: that gets an errc.
#if !defined(TINYLOOP_ASSERT)
#if TINYLOOP_HOSTED && !defined(NDEBUG)
#define TINYLOOP_ASSERT(cond) assert(cond)
#else
#define TINYLOOP_ASSERT(cond) ((void)0)
#endif
#endif

// Hot-path helpers the optimiser sometimes leaves out of line at -O2/-O3.
#if !defined(TINYLOOP_ALWAYS_INLINE)
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__OPTIMIZE_SIZE__)
#define TINYLOOP_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define TINYLOOP_ALWAYS_INLINE inline
#endif
#endif
// The same for a lambda, written after its parameter list.
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__OPTIMIZE_SIZE__)
#define TINYLOOP_LAMBDA_INLINE __attribute__((always_inline))
#else
#define TINYLOOP_LAMBDA_INLINE
#endif
// And rare paths it sometimes inlines there, where the registers they need slow the common path.
// Optimising for size, the compiler chooses (on Cortex-M3, inlining sift_up is 32 bytes smaller).
#if !defined(TINYLOOP_NOINLINE_FOR_SPEED)
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__OPTIMIZE_SIZE__)
#define TINYLOOP_NOINLINE_FOR_SPEED __attribute__((noinline))
#else
#define TINYLOOP_NOINLINE_FOR_SPEED
#endif
#endif
// Where the smallest code and the fewest instructions need different code, the compiler's goal
// (-Os, -Oz) chooses: see slot_table and the loop's post machinery. Defining it to 0 or 1 overrides.
#if !defined(TINYLOOP_SMALL_CODE)
#if defined(__OPTIMIZE_SIZE__)
#define TINYLOOP_SMALL_CODE 1
#else
#define TINYLOOP_SMALL_CODE 0
#endif
#endif

// Separates data written by different cores. Only matters where there are several cores.
#if !defined(TINYLOOP_CACHE_LINE)
#if TINYLOOP_HOSTED
#define TINYLOOP_CACHE_LINE 64
#else
#define TINYLOOP_CACHE_LINE alignof(std::max_align_t)
#endif
#endif

namespace tinyloop {

// ==============================================================================================
// 1. Configuration and errors
// ==============================================================================================

enum class errc : std::uint8_t {
  ok = 0,
  full,
  not_found,
  invalid_argument,
  already_exists,
  os_error,
  unsupported,
  cancelled,
};

constexpr const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::full: return "full";
    case errc::not_found: return "not_found";
    case errc::invalid_argument: return "invalid_argument";
    case errc::already_exists: return "already_exists";
    case errc::os_error: return "os_error";
    case errc::unsupported: return "unsupported";
    case errc::cancelled: return "cancelled";
  }
  return "unknown";
}

// A value or the reason there is none. value() of a failed result is a default-constructed T
// (an invalid id), never UB.
template <class T>
class [[nodiscard]] result {
 public:
  constexpr result(T value) noexcept : value_(value), error_(errc::ok) {}
  constexpr result(errc error) noexcept : value_(), error_(error) {}

  constexpr bool ok() const noexcept { return error_ == errc::ok; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  constexpr const T& value() const noexcept { return value_; }
  constexpr errc error() const noexcept { return error_; }

 private:
  T value_;
  errc error_;
};

enum class events : std::uint8_t { none = 0, read = 1, write = 2, error = 4, hangup = 8 };

constexpr events operator|(events a, events b) noexcept {
  return static_cast<events>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
constexpr events operator&(events a, events b) noexcept {
  return static_cast<events>(static_cast<std::uint8_t>(a) & static_cast<std::uint8_t>(b));
}
constexpr events operator~(events a) noexcept {
  return static_cast<events>(~static_cast<std::uint8_t>(a) & 0x0f);
}
constexpr events& operator|=(events& a, events b) noexcept { return a = a | b; }
constexpr events& operator&=(events& a, events b) noexcept { return a = a & b; }
constexpr bool any(events e) noexcept { return e != events::none; }

struct default_config {
  static constexpr std::size_t max_sources = 32;
  static constexpr std::size_t max_timers = 32;
  static constexpr std::size_t post_capacity = 32;
  static constexpr std::size_t max_signals = 8;
  static constexpr std::size_t events_per_wait = 32;
  static constexpr std::size_t callback_bytes = 4 * sizeof(void*);
};

// ==============================================================================================
// 2. Small utilities: ids, inplace_function, duration arithmetic
// ==============================================================================================

namespace detail {

// An index into a slot table plus the generation the slot had when the id was issued. Generations
// of live slots are odd and those of free slots even, so a default id (generation 0) never matches.
template <class Tag>
class basic_id {
 public:
  constexpr basic_id() noexcept = default;
  constexpr basic_id(std::uint32_t index, std::uint32_t generation) noexcept
      : index_(index), generation_(generation) {}
  constexpr std::uint32_t index() const noexcept { return index_; }
  constexpr std::uint32_t generation() const noexcept { return generation_; }
  friend constexpr bool operator==(basic_id a, basic_id b) noexcept {
    return a.index_ == b.index_ && a.generation_ == b.generation_;
  }
  friend constexpr bool operator!=(basic_id a, basic_id b) noexcept { return !(a == b); }

 private:
  std::uint32_t index_ = 0xffffffffu;
  std::uint32_t generation_ = 0;
};

}  // namespace detail

class source_id : public detail::basic_id<source_id> {
  using basic_id::basic_id;
};
class timer_id : public detail::basic_id<timer_id> {
  using basic_id::basic_id;
};
class work_id : public detail::basic_id<work_id> {
  using basic_id::basic_id;
};

template <class Signature, std::size_t Bytes>
class inplace_function;

namespace detail {
template <class T>
struct is_inplace_function : std::false_type {};
template <class S, std::size_t B>
struct is_inplace_function<inplace_function<S, B>> : std::true_type {};

// The loop's entry points that take a callback also take, through a second overload, any callable
// the callback could be built from, and build it in place. Never for a callback itself (the first
// overload moves it) nor for nullptr (which makes an empty callback, rejected as such).
template <class F, class Callback, class D = std::decay_t<F>>
using enable_if_direct = std::enable_if_t<!is_inplace_function<D>::value && !std::is_same_v<D, std::nullptr_t> &&
                                          std::is_constructible_v<Callback, F&&>>;

// Whether `f` would make an empty callback: only an empty callback, or a null pointer, does.
template <class F>
constexpr bool is_empty_callable(const F& f) noexcept {
  if constexpr (is_inplace_function<F>::value) {
    return !f;
  } else if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
    return f == nullptr;
  } else {
    (void)f;
    return false;
  }
}
}  // namespace detail

template <class Port, class Config>
class event_loop;

// Move-only type erasure over a fixed inline buffer. The buffer is part of the object, so storing a
// callback never allocates; a callable that does not fit is rejected at compile time.
template <class R, class... Args, std::size_t Bytes>
class inplace_function<R(Args...), Bytes> {
  // What moving and destroying a callable takes, for those that are not trivially copyable (the
  // common lambda capturing pointers is, and then has none: moving copies the bytes, destroying
  // does nothing). Trivially copyable implies trivially destructible, so destroy is never null.
  struct management {
    void (*relocate)(void* to, void* from) noexcept;  // move-construct into `to`, destroy `from`
    void (*destroy)(void*) noexcept;
  };

  template <class F>
  static R invoke_as(void* p, Args... args) {
    return (*static_cast<F*>(p))(static_cast<Args&&>(args)...);
  }
  template <class F>
  static void relocate_as(void* to, void* from) noexcept {
    F* f = static_cast<F*>(from);
    ::new (to) F(static_cast<F&&>(*f));
    f->~F();
  }
  template <class F>
  static void destroy_as(void* p) noexcept {
    static_cast<F*>(p)->~F();
  }
  template <class F>
  static constexpr management management_for{&relocate_as<F>, &destroy_as<F>};

 public:
  static constexpr std::size_t capacity = Bytes;

  inplace_function() noexcept = default;
  inplace_function(std::nullptr_t) noexcept {}

  template <class F, class D = std::decay_t<F>,
            class = std::enable_if_t<!detail::is_inplace_function<D>::value &&
                                     std::is_invocable_r_v<R, D&, Args...>>>
  inplace_function(F&& f) noexcept {
    emplace_empty(static_cast<F&&>(f));
  }

  TINYLOOP_ALWAYS_INLINE inplace_function(inplace_function&& other) noexcept { take(other); }
  TINYLOOP_ALWAYS_INLINE inplace_function& operator=(inplace_function&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  inplace_function& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  inplace_function(const inplace_function&) = delete;
  inplace_function& operator=(const inplace_function&) = delete;
  ~inplace_function() {
    if (manage_ != nullptr) manage_->destroy(storage_);
  }

  explicit operator bool() const noexcept { return invoke_ != nullptr; }

  // Calling an empty inplace_function is a precondition violation; the loop never does it.
  R operator()(Args... args) { return invoke_(storage_, static_cast<Args&&>(args)...); }

 private:
  template <class, class>
  friend class event_loop;

  // Builds `f` in this one, which must be empty. Its manage_ is null already, so a trivially
  // copyable callable costs two stores: its bytes and invoke_ (the loop builds timers this way).
  template <class F, class D = std::decay_t<F>>
  TINYLOOP_ALWAYS_INLINE void emplace_empty(F&& f) noexcept {
    static_assert(sizeof(D) <= Bytes,
                  "tinyloop: this callable's captures do not fit in the callback's inline storage. "
                  "Capture a pointer to a context struct instead, or raise callback_bytes in your "
                  "Config (struct cfg : tinyloop::default_config { static constexpr std::size_t "
                  "callback_bytes = ...; }).");
    static_assert(alignof(D) <= alignof(std::max_align_t),
                  "tinyloop: this callable is over-aligned for the callback's inline storage. "
                  "Capture a pointer to the over-aligned object instead.");
    static_assert(std::is_nothrow_move_constructible_v<D>,
                  "tinyloop: callbacks must be nothrow move constructible (the loop moves them "
                  "without exceptions). Capture a pointer or a type with a noexcept move.");
    // Only a pointer can be null: a function passed by name (F = R(&)(...)) decays to one but never is,
    // and comparing it trips GCC's -Wnonnull-compare.
    if constexpr (std::is_pointer_v<std::remove_reference_t<F>> || std::is_member_pointer_v<std::remove_reference_t<F>>) {
      if (f == nullptr) return;
    }
    // Guarded so that a rejected callable shows only the static_assert above, not follow-on errors.
    if constexpr (sizeof(D) <= Bytes && alignof(D) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<D>) {
      ::new (static_cast<void*>(storage_)) D(static_cast<F&&>(f));
      invoke_ = &invoke_as<D>;
      if constexpr (!std::is_trivially_copyable_v<D>) manage_ = &management_for<D>;
    }
  }

  // Destroying a trivially copyable callable (manage_ null) is a single store.
  TINYLOOP_ALWAYS_INLINE void reset() noexcept {
    if (manage_ != nullptr) {
      manage_->destroy(storage_);
      manage_ = nullptr;
    }
    invoke_ = nullptr;
  }
  // Precondition: this one is empty. Copying an empty `other`'s bytes is harmless (unsigned char).
  TINYLOOP_ALWAYS_INLINE void take(inplace_function& other) noexcept {
    if (other.manage_ != nullptr) {
      other.manage_->relocate(storage_, other.storage_);
      manage_ = other.manage_;
      other.manage_ = nullptr;
    } else {
      __builtin_memcpy(storage_, other.storage_, sizeof storage_);
    }
    invoke_ = other.invoke_;
    other.invoke_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char storage_[Bytes > 0 ? Bytes : 1];
  R (*invoke_)(void*, Args...) = nullptr;  // null: empty
  const management* manage_ = nullptr;     // null: empty, or trivially copyable
};

namespace detail {

// Converts any std::chrono duration to `To`, rounding up (a timer may fire late, never early) and
// saturating at To::max() instead of overflowing. Negative durations become zero.
template <class To, class Rep, class Period>
constexpr To ceil_saturating(std::chrono::duration<Rep, Period> d) noexcept {
  using ratio = std::ratio_divide<Period, typename To::period>;
  using out = typename To::rep;
  static_assert(std::is_integral_v<out>, "tinyloop: the clock's rep must be an integer type");
  constexpr out out_max = std::numeric_limits<out>::max();
  const Rep v = d.count();
  if constexpr (std::is_floating_point_v<Rep>) {
    if (!(v > Rep(0))) return To::zero();  // also NaN
    const long double scaled = static_cast<long double>(v) * ratio::num / ratio::den;
    if (scaled >= static_cast<long double>(out_max)) return To::max();
    out whole = static_cast<out>(scaled);
    if (static_cast<long double>(whole) < scaled) ++whole;
    return To(whole);
  } else {
    if (!(v > Rep(0))) return To::zero();
    using wide = std::conditional_t<std::is_signed_v<Rep>, std::intmax_t, std::uintmax_t>;
    const wide w = static_cast<wide>(v);
    // w * num / den, rounded up, with num and den coprime and positive.
    const std::uintmax_t uw = static_cast<std::uintmax_t>(w);
    constexpr std::uintmax_t num = static_cast<std::uintmax_t>(ratio::num);
    constexpr std::uintmax_t den = static_cast<std::uintmax_t>(ratio::den);
    constexpr std::uintmax_t limit = static_cast<std::uintmax_t>(out_max);
    std::uintmax_t q = uw / den;
    const std::uintmax_t r = uw % den;
    if (q > limit / num) return To::max();
    q *= num;
    // r * num < den * num cannot overflow when den * num fits; fall back to saturation if not.
    if (r != 0) {
      // r <= den - 1, so r * num + den - 1 fits whenever (den - 1) * (num + 1) does: decided at compile time,
      // so ordinary ratios compile to the plain expression and only exotic ones get the wide fallback.
      constexpr bool fits = den == 1 || num <= std::numeric_limits<std::uintmax_t>::max() / (den > 1 ? den - 1 : 1) - 1;
      std::uintmax_t extra = 0;
      if constexpr (fits) {
        extra = (r * num + den - 1) / den;
      } else {
#if defined(__SIZEOF_INT128__)
        __extension__ typedef unsigned __int128 u128;
        extra = static_cast<std::uintmax_t>((u128(r) * num + den - 1) / den);  // < num: fits
#else
        // r * num / den < num; long double rounds up here at worst by one tick (late, never early)
        extra = static_cast<std::uintmax_t>(static_cast<long double>(r) * num / den) + 1;
#endif
      }
      if (q > limit - extra) return To::max();
      q += extra;
    }
    return To(static_cast<out>(q));
  }
}

// Tells the optimiser that `cond` holds, so that it can drop checks the caller knows are redundant.
TINYLOOP_ALWAYS_INLINE void assume(bool cond) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  if (!cond) __builtin_unreachable();
#else
  (void)cond;
#endif
}

// t + d for a non-negative d, saturating at time_point::max().
template <class TimePoint>
constexpr TimePoint add_saturating(TimePoint t, typename TimePoint::duration d) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  // d >= 0, so the sum can only overflow upwards (an add and a jump on the overflow flag).
  typename TimePoint::rep sum = 0;
  if (__builtin_add_overflow(t.time_since_epoch().count(), d.count(), &sum)) return TimePoint::max();
  return TimePoint(typename TimePoint::duration(sum));
#else
  // max() - t overflows for a t before the epoch (a steady clock's epoch is arbitrary); there t + d
  // cannot overflow, as d <= duration::max().
  if (!(t < TimePoint{}) && d > TimePoint::max() - t) return TimePoint::max();
  return t + d;
#endif
}

}  // namespace detail

// ==============================================================================================
// 3. Fixed-capacity containers
// ==============================================================================================

namespace detail {

// Where a new slot table's generations start: a different point for each table the process makes,
// in steps of 2^32 / golden ratio (made even: even is free), so that an id from another loop names
// a generation this table's slot reaches only after many reuses (at least 600,172 for any two of
// the first 2,000 tables) rather than the same 1, 3, 5... as every other loop. Loop-thread code,
// but loops live on many threads: atomic.
inline std::uint32_t next_generation_base() noexcept {
  static std::atomic<std::uint32_t> next{0};
  return next.fetch_add(0x9e3779b8u, std::memory_order_relaxed);
}

// Storage for N objects whose lifetimes the owner manages (construct(i), destroy(i)): no
// constructor or destructor loop over all N, which a table that is often left unused or used only
// in part would pay for in code (flash on a microcontroller) and time.
// Raw storage rather than a union of T: measured with GCC 12 -O3, the loop's timer paths then keep
// one base register per slot and the caller's loop pointer in a register (TimerChurn 111 -> 96
// instructions, Timer1000 -3 per timer), where with the union they recomputed both.
template <class T, std::size_t N>
class manual_array {
 public:
  // Precondition of access: element i was constructed and not yet destroyed.
  T& operator[](std::size_t i) noexcept { return *std::launder(reinterpret_cast<T*>(&raw_[i * sizeof(T)])); }
  const T& operator[](std::size_t i) const noexcept {
    return *std::launder(reinterpret_cast<const T*>(&raw_[i * sizeof(T)]));
  }
  void construct(std::size_t i) noexcept { ::new (static_cast<void*>(&raw_[i * sizeof(T)])) T; }
  void destroy(std::size_t i) noexcept { (*this)[i].~T(); }

 private:
  alignas(T) unsigned char raw_[N * sizeof(T)];
};

// N nodes addressed by generation-checked ids. acquire/release are O(1) through an intrusive free
// list, which starts empty: slots never used yet are handed out in order from `fresh_`. A node is
// constructed when `fresh_` hands its slot out the first time and lives until the table is
// destroyed, so neither the constructor nor the destructor walks all N nodes (code on a
// microcontroller's flash). Generations start at the table's base (see next_generation_base())
// and step by one at each acquire (odd: live) and release (even: free). A slot whose generation
// would come round to the base again is retired rather than reused, so a stale id can never match
// a later registration.
//
// Generations: built for speed, the constructor sets all N and live() bounds an index by N, a
// constant the loop's I/O dispatch need not reload after each callback. Built for size, a slot's
// generation is set when `fresh_` first hands it out and live() bounds the index by `fresh_`
// instead: no zeroing loop (36 bytes on Cortex-M3 for the loop's two tables).
template <class Node, std::size_t N>
class slot_table {
  static_assert(N >= 1 && N < 0xffffffffu, "tinyloop: a capacity must be between 1 and 2^32 - 2");

 public:
  static constexpr std::uint32_t npos = 0xffffffffu;

  // A loop rather than `= {}`: GCC turns that into a memset call, and on a microcontroller a
  // program that needs no other memset would link one (~160 bytes) just for this.
  explicit slot_table(std::uint32_t base = next_generation_base()) noexcept : base_(base & ~1u) {
    if constexpr (!small_code)
      for (std::uint32_t& g : generation_) g = base_;
  }
  ~slot_table() {
    if constexpr (!std::is_trivially_destructible_v<Node>)
      for (std::uint32_t i = 0; i < fresh_; ++i) nodes_.destroy(i);
  }
  slot_table(const slot_table&) = delete;
  slot_table& operator=(const slot_table&) = delete;

  // For tests of the retirement: as if free slot i had been acquired and released `uses` times.
  void age(std::uint32_t i, std::uint32_t uses) noexcept { generation_[i] += 2 * uses; }

  static constexpr std::size_t capacity() noexcept { return N; }
  std::size_t size() const noexcept { return size_; }
  bool full() const noexcept { return free_head_ == npos && fresh_ == N; }

  // Takes a free slot and makes it live; npos when none is left.
  std::uint32_t acquire() noexcept {
    std::uint32_t i = free_head_;
    if (i != npos) {
      free_head_ = next_free_[i];
    } else if (fresh_ < N) {
      i = fresh_++;
      if constexpr (small_code) generation_[i] = base_;  // the slot's first use
      nodes_.construct(i);
    } else {
      return npos;
    }
    ++generation_[i];  // even -> odd: live
    ++size_;
    return i;
  }

  // Ends the slot's life: every id issued for it is stale from now on. The node stays untouched
  // until recycle(), so a callback stored in it can finish running.
  void invalidate(std::uint32_t i) noexcept {
    ++generation_[i];  // odd -> even: free
    --size_;
  }

  // Puts an invalidated slot back on the free list, unless its generation is exhausted.
  void recycle(std::uint32_t i) noexcept {
    if (generation_[i] == base_) return;  // came round: retired for good
    next_free_[i] = free_head_;
    free_head_ = i;
  }

  bool live(std::uint32_t index, std::uint32_t generation) const noexcept {
    return index < (small_code ? fresh_ : N) && generation_[index] == generation && (generation & 1u) != 0;
  }
  bool live(std::uint32_t index) const noexcept { return (generation_[index] & 1u) != 0; }
  std::uint32_t generation(std::uint32_t i) const noexcept { return generation_[i]; }

  // Precondition: the slot was acquired at least once (every live slot, every id's slot was).
  Node& operator[](std::uint32_t i) noexcept { return nodes_[i]; }
  const Node& operator[](std::uint32_t i) const noexcept { return nodes_[i]; }

 private:
  static constexpr bool small_code = TINYLOOP_SMALL_CODE;
  manual_array<Node, N> nodes_;  // [0, fresh_) constructed
  std::uint32_t generation_[N];  // [0, fresh_) set, or all set by the constructor: see above
  std::uint32_t next_free_[N];
  std::uint32_t free_head_ = npos;
  std::uint32_t fresh_ = 0;
  std::uint32_t base_;  // even
  std::size_t size_ = 0;
};

// The pending timers of a loop: nodes 0..N-1 ordered by (deadline, sequence), where the sequence
// number records arm order so that equal deadlines fire in the order they were armed.
//
// A 4-ary min-heap (half the depth of a binary heap, siblings in one cache line) whose entries know
// their position, so cancel() is O(log n). An entry is either one node alone, or a chain: timers
// armed back to back with the same deadline (a burst of after(d) in one callback, many connections'
// idle timeouts armed in one iteration) queue in a FIFO list behind a single heap entry, so arming
// onto the newest entry, firing a chain's head and cancelling any member are O(1). A lone node
// becomes a chain only when a second timer joins it, so a timer alone at its deadline pays nothing.
//
// Ordering argument: a node joins the newest entry only if the deadlines are equal, and sequence
// numbers only grow, so every chain is sorted by sequence, and every node of an older entry with
// the same deadline has a smaller sequence than a newer entry's first node. An entry's key is
// (deadline, sequence of its first node), hence the first node of the heap's top is the minimum.
//
// Chains pay off with many pending timers; with a few dozen they only cost code and RAM, which a
// microcontroller feels, so below 64 timers every entry is a lone node (Chains = false).
template <class Key, std::size_t N, bool Chains = (N >= 64)>
class timer_heap {
  static_assert(N < 0x7fffffffu, "tinyloop: max_timers must be below 2^31");
  static constexpr std::size_t chain_slots = Chains ? N : 1;

 public:
  static constexpr std::uint32_t npos = 0xffffffffu;

  timer_heap() noexcept {
    for (std::size_t i = 0; i < N; ++i) position_[i] = unqueued;  // a loop, not `= {}`: see slot_table()
    heap_[0] = entry{lowest_key(), 0, npos};
  }

  // Queued nodes, counted (O(N), for tests: the loop counts its timers in its slot table).
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < N; ++i) n += position_[i] != unqueued;
    return n;
  }
  bool empty() const noexcept { return heap_size_ == 0; }
  bool contains(std::uint32_t node) const noexcept { return node < N && position_[node] != unqueued; }

  // Precondition: !empty().
  const Key& top_deadline() const noexcept { return heap_[1].deadline; }
  std::uint64_t top_sequence() const noexcept { return heap_[1].sequence; }
  std::uint32_t top_node() const noexcept { return first_node(heap_[1].ref); }

  // Preconditions: the node is not queued, and `sequence` is larger than any pushed before.
  // The common cases (a lone entry that stays where it lands: a timer later than its parent, the
  // usual timeout) are inlined; joining a chain and moving up are not.
  TINYLOOP_ALWAYS_INLINE void push(std::uint32_t node, Key deadline, std::uint64_t sequence) noexcept {
    if constexpr (Chains) {
      if (newest_ != npos && newest_deadline_ == deadline) {
        join_newest(node, sequence);
        return;
      }
      newest_ = node;
      newest_deadline_ = deadline;
    }
    const std::size_t i = ++heap_size_;
    const entry e{deadline, sequence, node};
    // Every queued sequence is smaller than this one, so only a smaller deadline moves it up
    // (never past the sentinel: the first entry's parent is it).
    if (deadline < heap_[parent(i)].deadline)
      sift_up(i, e);
    else
      place(i, e);
  }

  void pop() noexcept { erase(top_node()); }

  // Removes the first node of the top entry and returns it. Precondition: !empty().
  TINYLOOP_ALWAYS_INLINE std::uint32_t pop_top() noexcept {
    const std::uint32_t ref = heap_[1].ref;
    if (Chains && ref >= N) return pop_chain_head(ref - N);
    position_[ref] = unqueued;
    if constexpr (Chains)
      if (newest_ == ref) newest_ = npos;
    if (--heap_size_ != 0) sift_down(1, heap_[heap_size_ + 1]);
    return ref;
  }

  TINYLOOP_ALWAYS_INLINE void erase(std::uint32_t node) noexcept {
    if (node >= N) return;
    const std::uint32_t where = position_[node];
    if ((where & in_chain) != 0) {  // not queued (unqueued has the bit too), or in a chain
      if (Chains && where != unqueued) erase_from_chain(node, where & ~in_chain);
      return;
    }
    position_[node] = unqueued;
    drop_entry(node, where);
  }

 private:
  // An entry's ref is a node index (< N) for a lone node, or N + chain index for a chain.
  struct entry {
    Key deadline;
    std::uint64_t sequence;
    std::uint32_t ref;
  };
  // position_[node] for a node (< N) says where it is queued: its heap index when it is an entry
  // alone, in_chain | its chain's index when it is in a chain, unqueued when it is not queued. One
  // word, so that cancelling a lone timer reads one word to learn both that it is queued and where.
  static constexpr std::uint32_t in_chain = 0x80000000u;  // indices stay below: N < 2^31
  static constexpr std::uint32_t unqueued = 0xffffffffu;

  std::uint32_t first_node(std::uint32_t ref) const noexcept {
    if constexpr (Chains) return ref < N ? ref : chain_head_[ref - N];
    return ref;
  }

  // A second timer at the newest entry's deadline: it joins that entry (made a chain if still lone).
  void join_newest(std::uint32_t node, std::uint64_t sequence) noexcept {
    std::uint32_t r = newest_;
    if (r < N) r = make_chain(r);
    const std::uint32_t c = r - N;
    sequence_[node] = sequence;
    prev_[node] = chain_tail_[c];
    next_[node] = npos;
    next_[chain_tail_[c]] = node;
    chain_tail_[c] = node;
    position_[node] = in_chain | c;
  }

  std::uint32_t make_chain(std::uint32_t node) noexcept {
    std::uint32_t c = free_chain_;  // never exhausted: a chain holds at least one of the N nodes
    if (c != npos)
      free_chain_ = chain_head_[c];
    else
      c = fresh_chain_++;
    chain_head_[c] = chain_tail_[c] = node;
    next_[node] = npos;  // a chain's first node has no prev_ (never read: see erase_from_chain())
    const std::uint32_t at = position_[node];
    position_[node] = in_chain | c;
    sequence_[node] = heap_[at].sequence;
    heap_[at].ref = N + c;
    position_[N + c] = at;
    return newest_ = N + c;
  }

  // The top is chain c: its first node leaves (erase_from_chain() for the first node).
  std::uint32_t pop_chain_head(std::uint32_t c) noexcept {
    const std::uint32_t node = chain_head_[c];
    const std::uint32_t n = next_[node];
    position_[node] = unqueued;
    chain_head_[c] = n;
    if (n == npos) {
      drop_chain(c);
    } else {
      heap_[1].sequence = sequence_[n];  // stays the top: see erase_from_chain()
    }
    return node;
  }

  void drop_chain(std::uint32_t c) noexcept {
    drop_entry(N + c, position_[N + c]);
    chain_head_[c] = free_chain_;
    free_chain_ = c;
  }

  void erase_from_chain(std::uint32_t node, std::uint32_t c) noexcept {
    position_[node] = unqueued;
    const bool first = chain_head_[c] == node;
    const std::uint32_t p = first ? npos : prev_[node];
    const std::uint32_t n = next_[node];
    (p != npos ? next_[p] : chain_head_[c]) = n;
    (n != npos ? prev_[n] : chain_tail_[c]) = p;
    if (chain_head_[c] == npos) {  // the chain is empty: drop its entry
      drop_chain(c);
    } else if (p == npos) {
      // A new first node: the entry's key grows, but it stays where it is. Entries with equal
      // deadlines hold disjoint runs of sequences, ordered as the entries were made (an entry is
      // joined only while it is the newest), so the entry still sorts before every entry it
      // sorted before.
      heap_[position_[N + c]].sequence = sequence_[n];
    }
  }

  // Removes the entry `ref`, which is at heap index i.
  TINYLOOP_ALWAYS_INLINE void drop_entry(std::uint32_t ref, std::size_t i) noexcept {
    if constexpr (Chains)
      if (newest_ == ref) newest_ = npos;
    const std::size_t last = heap_size_--;
    if (i != last) refill(i, heap_[last]);
  }

  // Puts `last` (the entry that was at the end) into the hole at i.
  void refill(std::size_t i, const entry& last) noexcept {
    if (less(last, heap_[parent(i)]))
      sift_up(i, last);
    else
      sift_down(i, last);
  }

  // Entries sit at 1..heap_size_; the children of i are 4i-2 .. 4i+1. heap_[0] is a sentinel with
  // the lowest key, so moving up needs no test for the root.
  static constexpr std::size_t parent(std::size_t i) noexcept { return (i + 2) / 4; }
  static constexpr Key lowest_key() noexcept {
    if constexpr (std::numeric_limits<Key>::is_specialized)
      return std::numeric_limits<Key>::lowest();
    else
      return Key::min();
  }

  static bool less(const entry& a, const entry& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.sequence < b.sequence);
  }
  void place(std::size_t i, const entry& e) noexcept {
    heap_[i] = e;
    position_[e.ref] = static_cast<std::uint32_t>(i);
  }
  // Out of line: see push(). Left to itself, GCC -O3 inlined it into after() once it had few
  // callers, and the registers it needs cost the usual, non-moving push four instructions.
  TINYLOOP_NOINLINE_FOR_SPEED void sift_up(std::size_t i, const entry e) noexcept {
    for (;;) {  // ends at the root at the latest: nothing is less than the sentinel
      const std::size_t p = parent(i);
      if (!less(e, heap_[p])) break;
      place(i, heap_[p]);
      i = p;
    }
    place(i, e);
  }
  void sift_down(std::size_t i, entry e) noexcept {
    for (;;) {
      const std::size_t first = 4 * i - 2;
      if (first > heap_size_) break;
      const std::size_t last = first + 4 <= heap_size_ ? first + 4 : heap_size_ + 1;
      std::size_t best = first;
      for (std::size_t c = first + 1; c < last; ++c)
        if (less(heap_[c], heap_[best])) best = c;
      if (!less(heap_[best], e)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, e);
  }

  entry heap_[N + 1];
  std::size_t heap_size_ = 0;
  std::uint32_t newest_ = npos;                // ref of the entry armed last, while it is queued
  Key newest_deadline_{};                      // its deadline
  std::uint32_t position_[N + chain_slots];   // node: see in_chain; N + chain: its entry's heap index
  // Per chain (free chains are linked through chain_head_), and per node for chain members.
  std::uint32_t chain_head_[chain_slots];
  std::uint32_t chain_tail_[chain_slots];
  std::uint32_t free_chain_ = npos;
  std::uint32_t fresh_chain_ = 0;
  std::uint32_t prev_[chain_slots];
  std::uint32_t next_[chain_slots];
  std::uint64_t sequence_[chain_slots];
};

// A bounded multi-producer multi-consumer ring with a sequence number per slot (after Dmitry
// Vyukov's design). A slot's sequence says whose turn it is: == position means free for the
// producer that claims `position`; == position + 1 means published for the consumer of `position`.
// A producer claims a position with one CAS and publishes with one store, so a producer that is
// preempted (or interrupted) between the two delays only the consumer of that one slot: other
// producers keep claiming later slots, and try_pop reports "empty" at the unpublished slot instead
// of waiting for it.
//
// With DestroyLeftovers = false the destructor leaves the items still queued to the owner, which
// calls destroy_leftovers() first: the loop does so through code that only post() links.
template <class T, std::size_t Capacity, bool DestroyLeftovers = true>
class bounded_queue {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "tinyloop: a queue capacity (post_capacity) must be a power of two, at least 2");
  static_assert(std::is_nothrow_move_constructible_v<T>, "tinyloop: queue items must move without throwing");

  // One cache line per cell on hosted targets: a producer filling cell k+1 must not invalidate the
  // line the consumer is reading cell k from.
  struct alignas(TINYLOOP_CACHE_LINE) cell {
    std::atomic<std::size_t> sequence;
    alignas(T) unsigned char storage[sizeof(T)];
  };

 public:
  bounded_queue() noexcept {
    for (std::size_t i = 0; i < Capacity; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }
  ~bounded_queue() {
    if constexpr (DestroyLeftovers) destroy_leftovers();
  }
  bounded_queue(const bounded_queue&) = delete;
  bounded_queue& operator=(const bounded_queue&) = delete;

  static constexpr std::size_t capacity() noexcept { return Capacity; }

  // For the destructor: no producer or consumer is left. Destroys, in place, what was published
  // and never popped; the queue may then only be destroyed.
  void destroy_leftovers() noexcept {
    if constexpr (!std::is_trivially_destructible_v<T>) {
      const std::size_t tail = tail_.load(std::memory_order_relaxed);
      for (std::size_t pos = head_.load(std::memory_order_relaxed); pos != tail; ++pos) {
        cell& c = cells_[pos & (Capacity - 1)];
        if (c.sequence.load(std::memory_order_relaxed) == pos + 1) std::launder(reinterpret_cast<T*>(c.storage))->~T();
      }
    }
  }

  bool try_push(T&& value) noexcept {
    std::size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      cell& c = cells_[pos & (Capacity - 1)];
      // acquire: pairs with the consumer's release in try_pop, so the consumer's move out of this
      // slot is complete before we construct into it.
      const std::size_t seq = c.sequence.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq - pos);
      if (diff == 0) {
        // relaxed: the CAS only hands out positions; the slot's data is ordered by `sequence`.
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          ::new (static_cast<void*>(c.storage)) T(static_cast<T&&>(value));
          // release: publishes the constructed item to the consumer's acquire load.
          c.sequence.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // the slot still holds an item from one lap ago: full
      } else {
        pos = tail_.load(std::memory_order_relaxed);  // another producer took it; retry
      }
    }
  }

  bool try_pop(T& out) noexcept {
    std::size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      cell& c = cells_[pos & (Capacity - 1)];
      // acquire: pairs with the producer's release, so the item is fully constructed.
      const std::size_t seq = c.sequence.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq - (pos + 1));
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          T* item = std::launder(reinterpret_cast<T*>(c.storage));
          out = static_cast<T&&>(*item);
          item->~T();
          // release: the slot is free for the producer one lap ahead only after we moved out.
          c.sequence.store(pos + Capacity, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // empty, or the producer of this slot has not published yet
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

  // try_pop for a queue with one consumer (the loop's posts): the position needs no CAS, as no
  // other thread moves head_. Must not be mixed with try_pop from another thread.
  bool try_pop_single(T& out) noexcept {
    const std::size_t pos = head_.load(std::memory_order_relaxed);
    cell& c = cells_[pos & (Capacity - 1)];
    // acquire: pairs with the producer's release, so the item is fully constructed.
    if (c.sequence.load(std::memory_order_acquire) != pos + 1) return false;  // empty or unpublished
    T* item = std::launder(reinterpret_cast<T*>(c.storage));
    out = static_cast<T&&>(*item);
    item->~T();
    // relaxed: head_ is read by size_approx() only as an estimate.
    head_.store(pos + 1, std::memory_order_relaxed);
    // release: the slot is free for the producer one lap ahead only after we moved out.
    c.sequence.store(pos + Capacity, std::memory_order_release);
    return true;
  }

  // Consumer side: is the next item published (try_pop would succeed)?
  bool front_ready() const noexcept {
    const std::size_t pos = head_.load(std::memory_order_relaxed);
    // acquire: pairs with the producer's release, like try_pop.
    const std::size_t seq = cells_[pos & (Capacity - 1)].sequence.load(std::memory_order_acquire);
    return seq == pos + 1;
  }

  // Claimed minus consumed positions: an upper bound on what try_pop can return right now.
  TINYLOOP_ALWAYS_INLINE std::size_t size_approx() const noexcept {
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    const std::size_t head = head_.load(std::memory_order_acquire);
    const auto diff = static_cast<std::intptr_t>(tail - head);
    return diff > 0 ? static_cast<std::size_t>(diff) : 0;
  }

 private:
  // Producers hammer tail_, consumers head_: separate cache lines stop them invalidating each other.
  alignas(TINYLOOP_CACHE_LINE) std::atomic<std::size_t> tail_{0};
  alignas(TINYLOOP_CACHE_LINE) std::atomic<std::size_t> head_{0};
  alignas(TINYLOOP_CACHE_LINE) cell cells_[Capacity];
};

}  // namespace detail

// ==============================================================================================
// 4. The port concept and the ports
// ==============================================================================================
//
// A port is a type with:
//   using clock = ...;                           steady; duration, time_point, static now() noexcept
//   static constexpr bool has_fds;               add/modify/remove work (else errc::unsupported)
//   static constexpr bool has_signals;           POSIX signals can be watched (else errc::unsupported)
//   static constexpr bool interrupt_safe_wake;   wake() may be called from an interrupt handler
//   template <class Config> class backend {      one per loop, sized by the loop's Config
//     errc open() noexcept;  void close() noexcept;  int last_errno() const noexcept;
//     errc add(int fd, events, std::uint64_t token) noexcept;      (only when has_fds)
//     errc modify(int fd, events, std::uint64_t token) noexcept;   (only when has_fds)
//     errc remove(int fd, std::uint64_t token) noexcept;           (only when has_fds)
//     template <class Sink> errc wait(typename clock::time_point deadline, Sink& sink) noexcept;
//     void wake() noexcept;
//   };
// wait() blocks until an event, a wake() or the deadline (time_point::min(): never block;
// time_point::max(): no deadline), never returning before the deadline because of rounding. It calls
// sink(token, events) at most Config::events_per_wait times, with read/write masked by the interest
// and error/hangup always. The port consumes its own wake channel. The loop calls wake() at most
// once per sleep, so ports need not coalesce wakes. Policy (ordering, deferred removal, budgets,
// stale tokens) lives in event_loop, not here. add() of an fd that is already registered must give
// errc::already_exists (epoll's kernel says EEXIST; ports that keep their own table check it).
// Optionally, static constexpr bool native_signals with watch_signal(signo, token) and
// unwatch_signal(signo): the port reports signals to the sink itself (see detail::native_signals).

namespace detail {

// A token is the loop's slot index and the slot's generation; ports store it and hand it back.
constexpr std::uint64_t make_token(std::uint32_t index, std::uint32_t generation) noexcept {
  return static_cast<std::uint64_t>(index) | (static_cast<std::uint64_t>(generation) << 32);
}

template <class Clock>
constexpr bool never_blocks(typename Clock::time_point deadline) noexcept {
  return deadline == Clock::time_point::min();
}

#if TINYLOOP_HOSTED
// Milliseconds until `deadline` for poll(2)-style waits: -1 for no deadline, rounded up so that
// the wait never ends before the deadline, clamped to what an int holds.
template <class Clock>
int timeout_ms(typename Clock::time_point deadline) noexcept {
  if (deadline == Clock::time_point::min()) return 0;
  if (deadline == Clock::time_point::max()) return -1;
  const auto now = Clock::now();
  if (deadline <= now) return 0;
  const auto ms = ceil_saturating<std::chrono::milliseconds>(deadline - now).count();
  return ms > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(ms);
}

inline errc errno_to_errc(int e) noexcept {
  switch (e) {
    case EBADF:
    case EPERM:  // epoll refuses regular files and directories
    case EINVAL: return errc::invalid_argument;
    case EEXIST: return errc::already_exists;
    default: return errc::os_error;
  }
}
#endif

}  // namespace detail

#if TINYLOOP_HAS_EPOLL
// ---- epoll_port: Linux epoll, edge-triggered, eventfd wake ------------------------------------
struct epoll_port {
  using clock = std::chrono::steady_clock;
  static constexpr bool has_fds = true;
  static constexpr bool has_signals = true;
  static constexpr bool interrupt_safe_wake = false;

  template <class Config>
  class backend {
    // No loop token has all bits set: its index is below max_sources and its generation is odd.
    static constexpr std::uint64_t wake_token = ~std::uint64_t{0};

   public:
    backend() noexcept = default;
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    errc open() noexcept {
      epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
      if (epoll_fd_ < 0) return fail();
      wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (wake_fd_ < 0) return fail();
      // Level-triggered on purpose: the eventfd is drained in wait(), and a write that races the
      // drain must still end the next wait.
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = wake_token;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) return fail();
      return errc::ok;
    }

    void close() noexcept {
      if (wake_fd_ >= 0) ::close(wake_fd_);
      if (epoll_fd_ >= 0) ::close(epoll_fd_);
      wake_fd_ = epoll_fd_ = -1;
    }

    int last_errno() const noexcept { return errno_; }

    errc add(int fd, events interest, std::uint64_t token) noexcept {
      return control(EPOLL_CTL_ADD, fd, interest, token);
    }
    errc modify(int fd, events interest, std::uint64_t token) noexcept {
      return control(EPOLL_CTL_MOD, fd, interest, token);
    }
    errc remove(int fd, std::uint64_t) noexcept {
      epoll_event ev{};  // non-null for kernels before 2.6.9
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev) == 0) return errc::ok;
      // The user may have closed the fd already, which removed it from the epoll set.
      if (errno == ENOENT || errno == EBADF) return errc::ok;
      return fail();
    }

    template <class Sink>
    errc wait(clock::time_point deadline, Sink& sink) noexcept {
      int n;
      do {
        // Recomputed on every pass, so EINTR retries wait only for the time that is left.
        n = ::epoll_wait(epoll_fd_, events_, static_cast<int>(Config::events_per_wait),
                         detail::timeout_ms<clock>(deadline));
      } while (n < 0 && errno == EINTR);
      if (n < 0) return fail();
      for (int i = 0; i < n; ++i) {
        const epoll_event& e = events_[i];
        if (e.data.u64 == wake_token) {
          drain_wake();
          continue;
        }
        events ev = events::none;
        if (e.events & (EPOLLIN | EPOLLPRI)) ev |= events::read;
        if (e.events & EPOLLOUT) ev |= events::write;
        if (e.events & EPOLLERR) ev |= events::error;
        // The peer shut down its writing side (EPOLLRDHUP) or both (EPOLLHUP): hangup, as poll_port
        // (POLLRDHUP) and kqueue_port (EV_EOF) say it. Reads still return what is buffered.
        if (e.events & (EPOLLHUP | EPOLLRDHUP)) ev |= events::hangup;
        sink(e.data.u64, ev);
      }
      return errc::ok;
    }

    // Async-signal-safe: one write(2). EAGAIN means the counter is already non-zero, which is as
    // good as our write.
    void wake() noexcept {
      const int saved = errno;
      const std::uint64_t one = 1;
      ssize_t r;
      do r = ::write(wake_fd_, &one, sizeof one);
      while (r < 0 && errno == EINTR);
      errno = saved;
    }

   private:
    errc control(int op, int fd, events interest, std::uint64_t token) noexcept {
      epoll_event ev{};
      ev.events = EPOLLET;
      if (any(interest & events::read)) ev.events |= EPOLLIN;
      if (any(interest & events::write)) ev.events |= EPOLLOUT;
      // The peer's half-close, as poll_port's POLLRDHUP: not for write-only interest, where the peer
      // may still be reading (a full hangup still comes as EPOLLHUP).
      if (!any(interest & events::write) || any(interest & events::read)) ev.events |= EPOLLRDHUP;
      ev.data.u64 = token;
      if (::epoll_ctl(epoll_fd_, op, fd, &ev) == 0) return errc::ok;
      errno_ = errno;
      return detail::errno_to_errc(errno_);
    }
    void drain_wake() noexcept {
      std::uint64_t count;
      while (::read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
      }
    }
    errc fail() noexcept {
      errno_ = errno;
      return errc::os_error;
    }

    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    int errno_ = 0;
    epoll_event events_[Config::events_per_wait];
  };
};
#endif  // TINYLOOP_HAS_EPOLL

#if TINYLOOP_HAS_KQUEUE
// ---- kqueue_port: BSD/macOS kqueue, EV_CLEAR (edge) filters, EVFILT_USER wake -------------------
//
// One knote per direction: EVFILT_READ and EVFILT_WRITE are registered separately, each with
// EV_CLEAR so that a report is an edge (the contract's style; epoll_port uses EPOLLET likewise).
// udata carries the token where a pointer holds 64 bits; on 32-bit targets it carries the slot
// index alone. Either way the index finds this port's table entry, whose fd must equal the event's
// ident and whose token is handed to the sink, so the two layouts share one code path.
//
// Error and hangup are reported whatever the interest, so a source always keeps, besides the
// filters its interest names, one filter that can see EV_EOF on it. Which one depends on the fd's
// access mode: the kernel accepts a read filter on a write-only fd (a pipe's write end) but never
// fires it, so such an fd gets a write filter. Pausing (interest none) leaves the filters as they
// were and masks their readiness here. The direction a resume names is registered again (EV_ADD
// re-evaluates the filter), because readiness that arrived while paused was masked and would
// otherwise never be reported.
//
// Every change carries EV_RECEIPT, so the kernel answers each one with an EV_ERROR entry whose
// data is 0 or that change's errno, and a failed change cannot be mistaken for another's result.
//
// Signals come through EVFILT_SIGNAL knotes (native_signals): the kernel counts deliveries in a
// knote that clears itself when reported, so several deliveries before a wait give one report,
// handed to the sink under the token the loop gave watch_signal(). A knote does not replace the
// disposition (it records a signal whatever the disposition is, and SIG_DFL still kills): the loop
// sets that (section 5). The port keeps its own signo -> token table, so a report of a signal it
// no longer watches is dropped and udata is not needed (it could not hold a token on 32-bit).
struct kqueue_port {
  using clock = std::chrono::steady_clock;
  static constexpr bool has_fds = true;
  static constexpr bool has_signals = true;
  static constexpr bool native_signals = true;
  static constexpr bool interrupt_safe_wake = false;

  template <class Config>
  class backend {
    static constexpr std::size_t capacity = Config::max_sources;
    static constexpr std::uint8_t read_filter = 1;
    static constexpr std::uint8_t write_filter = 2;

   public:
    backend() noexcept = default;
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    errc open() noexcept {
      kq_ = ::kqueue();
      if (kq_ < 0) return fail();
      // fork() children do not inherit a kqueue, but exec() would keep the descriptor open.
      if (::fcntl(kq_, F_SETFD, FD_CLOEXEC) != 0) return fail();
      struct kevent change = make_change(0, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0);
      if (!apply(&change, 1)) return fail();
      if (change.data != 0) {
        errno_ = static_cast<int>(change.data);
        return errc::os_error;
      }
      return errc::ok;
    }

    void close() noexcept {
      if (kq_ >= 0) ::close(kq_);  // drops every knote; the users' fds stay open
      kq_ = -1;
    }

    int last_errno() const noexcept { return errno_; }

    errc add(int fd, events interest, std::uint64_t token) noexcept {
      const auto index = static_cast<std::uint32_t>(token);
      if (fd < 0 || index >= capacity) return errc::invalid_argument;
      registration& r = table_[index];
      if (r.fd >= 0) return errc::already_exists;
      // EV_ADD on an fd that already has knotes would silently take them over: refuse it here.
      for (const registration& other : table_)
        if (other.fd == fd) return errc::already_exists;
      const int mode = ::fcntl(fd, F_GETFL);
      if (mode < 0) {
        errno_ = errno;
        return errc::invalid_argument;
      }
      switch (mode & O_ACCMODE) {
        case O_RDONLY: r.usable = read_filter; break;
        case O_WRONLY: r.usable = write_filter; break;
        default: r.usable = read_filter | write_filter; break;
      }
      r.fd = fd;
      r.token = token;
      r.interest = interest;
      r.filters = 0;
      const errc e = sync(r, interest, events::none);
      if (e != errc::ok) {
        const int saved = errno_;
        unregister(r);  // a half-made registration (the write filter failed, say) is undone
        errno_ = saved;
      }
      return e;
    }

    errc modify(int fd, events interest, std::uint64_t token) noexcept {
      registration* r = find(fd, token);
      if (r == nullptr) return errc::not_found;
      const events before = r->interest;
      r->token = token;
      r->interest = interest;
      return sync(*r, interest, before);
    }

    errc remove(int fd, std::uint64_t token) noexcept {
      registration* r = find(fd, token);
      return r != nullptr ? unregister(*r) : errc::ok;
    }

    // EV_ADD (EV_RECEIPT added by apply()): the kernel's answer comes back as an EV_ERROR entry,
    // e.g. EINVAL for a number it does not know.
    errc watch_signal(int signo, std::uint64_t token) noexcept {
      if (signo <= 0) return errc::invalid_argument;
      signal_watch* slot = nullptr;
      for (signal_watch& w : signals_) {
        if (w.signo == signo) return errc::already_exists;
        if (w.signo == 0 && slot == nullptr) slot = &w;
      }
      if (slot == nullptr) return errc::full;
      struct kevent change = make_change(signo, EVFILT_SIGNAL, EV_ADD, 0, 0);
      if (!apply(&change, 1)) return fail();
      if (change.data != 0) {
        errno_ = static_cast<int>(change.data);
        return detail::errno_to_errc(errno_);
      }
      slot->signo = signo;
      slot->token = token;
      return errc::ok;
    }

    // The signal is unwatched whatever the kernel answers: a report of it is dropped from now on.
    errc unwatch_signal(int signo) noexcept {
      for (signal_watch& w : signals_) {
        if (w.signo != signo || signo <= 0) continue;
        w = signal_watch{};
        struct kevent change = make_change(signo, EVFILT_SIGNAL, EV_DELETE, 0, 0);
        if (!apply(&change, 1)) return fail();
        if (change.data != 0 && change.data != ENOENT) {
          errno_ = static_cast<int>(change.data);
          return errc::os_error;
        }
        return errc::ok;
      }
      return errc::not_found;
    }

    template <class Sink>
    errc wait(clock::time_point deadline, Sink& sink) noexcept {
      for (;;) {
        timespec ts{};
        // A registration answered with EPIPE has a report waiting: do not block before giving it.
        const timespec* timeout = pending_ != 0 ? &ts : to_timeout(deadline, ts);
        const int n = ::kevent(kq_, nullptr, 0, fetched_, static_cast<int>(Config::events_per_wait), timeout);
        if (n < 0) {
          if (errno == EINTR) continue;  // to_timeout() recomputes the time that is left
          return fail();
        }
        bool woken = false;
        std::size_t touched = 0;
        std::size_t signalled = 0;  // sink calls for signals; with touched, at most n <= events_per_wait
        for (int i = 0; i < n; ++i) {
          const struct kevent& k = fetched_[i];
          if (k.filter == static_cast<decltype(k.filter)>(EVFILT_USER)) {
            woken = true;  // EV_CLEAR: retrieving it consumed the trigger
            continue;
          }
          if (k.filter == static_cast<decltype(k.filter)>(EVFILT_SIGNAL)) {
            // data counts the deliveries since the last report: one report whatever the count.
            for (const signal_watch& w : signals_) {
              if (w.signo > 0 && static_cast<std::uintptr_t>(w.signo) == k.ident) {
                sink(w.token, events::read);
                ++signalled;
                break;
              }
            }
            continue;
          }
          const auto index = static_cast<std::uint32_t>(from_udata(k.udata));
          if (index >= capacity) continue;
          registration& r = table_[index];
          if (r.fd < 0 || static_cast<std::uintptr_t>(r.fd) != k.ident) continue;  // not ours (any more)
          note(r, index, translate(k, r.interest), touched);
        }
        if (pending_ != 0) {
          for (std::uint32_t index = 0; index < capacity && touched + signalled < Config::events_per_wait;
               ++index) {
            registration& r = table_[index];
            if (!any(r.pending)) continue;
            note(r, index, r.pending, touched);
            r.pending = events::none;
            --pending_;
          }
        }
        for (std::size_t i = 0; i < touched; ++i) {
          registration& r = table_[touched_[i]];
          const events ev = r.ready;
          r.ready = events::none;
          sink(r.token, ev);
        }
        if (touched != 0 || signalled != 0 || woken || n == 0 || deadline == clock::time_point::min())
          return errc::ok;
        // Only readiness a paused source masks: nothing for the loop, so wait out the rest.
      }
    }

    // One kevent(2) call that cannot block (no event list). Not in POSIX's async-signal-safe list,
    // as no kqueue call is, but it is a plain system call that takes no user-space lock.
    void wake() noexcept {
      const int saved = errno;  // may run in a signal handler: the interrupted code's errno stays
      struct kevent change = make_change(0, EVFILT_USER, 0, NOTE_TRIGGER, 0);
      int r;
      do r = ::kevent(kq_, &change, 1, nullptr, 0, nullptr);
      while (r < 0 && errno == EINTR);
      errno = saved;
    }

   private:
    struct registration {
      int fd = -1;  // -1: the slot has no registration
      events interest = events::none;
      std::uint8_t filters = 0;        // read_filter | write_filter, as registered in the kernel
      std::uint8_t usable = 0;         // the filters the fd's access mode lets fire
      events pending = events::none;   // to report at the next wait (EPIPE at registration)
      events ready = events::none;     // merged reports of the wait in progress
      std::uint64_t token = 0;
    };
    struct signal_watch {
      int signo = 0;  // 0: free
      std::uint64_t token = 0;
    };

    // udata is void* on FreeBSD, macOS, OpenBSD and NetBSD 10, intptr_t on older NetBSD.
    static void set_udata(void*& field, std::uintptr_t v) noexcept { field = reinterpret_cast<void*>(v); }
    static void set_udata(std::intptr_t& field, std::uintptr_t v) noexcept { field = static_cast<std::intptr_t>(v); }
    static std::uintptr_t from_udata(void* v) noexcept { return reinterpret_cast<std::uintptr_t>(v); }
    static std::uintptr_t from_udata(std::intptr_t v) noexcept { return static_cast<std::uintptr_t>(v); }

    // Not EV_SET: its definition differs between systems (FreeBSD also clears ext[]); value
    // initialisation zeroes every field whatever the layout, and the casts fit NetBSD's unsigned
    // filter and flags.
    static struct kevent make_change(int ident, int filter, unsigned flags, unsigned fflags,
                                     std::uint64_t token) noexcept {
      struct kevent k {};
      k.ident = static_cast<std::uintptr_t>(ident);
      k.filter = static_cast<decltype(k.filter)>(filter);
      k.flags = static_cast<decltype(k.flags)>(flags);
      k.fflags = static_cast<decltype(k.fflags)>(fflags);
      set_udata(k.udata, sizeof(void*) >= sizeof(std::uint64_t) ? static_cast<std::uintptr_t>(token)
                                                                 : static_cast<std::uint32_t>(token));
      return k;
    }

    static events translate(const struct kevent& k, events interest) noexcept {
      if ((k.flags & EV_ERROR) != 0) return events::error;  // data holds the errno
      events ev = events::none;
      const bool reading = k.filter == static_cast<decltype(k.filter)>(EVFILT_READ);
      ev |= reading ? events::read : events::write;
      ev &= interest;
      if ((k.flags & EV_EOF) != 0) {
        ev |= events::hangup;
        // fflags holds a socket's pending error. On the write side, EOF means the reader is gone and
        // a write would fail with EPIPE: an error too, as poll(2) and epoll say POLLERR for it.
        if (k.fflags != 0 || !reading) ev |= events::error;
      }
      return ev;
    }

    void note(registration& r, std::uint32_t index, events ev, std::size_t& touched) noexcept {
      if (!any(ev)) return;
      // The read and write knotes of one fd come as two events: merged into one report.
      if (!any(r.ready)) touched_[touched++] = index;
      r.ready |= ev;
    }

    registration* find(int fd, std::uint64_t token) noexcept {
      const auto index = static_cast<std::uint32_t>(token);
      if (index >= capacity || table_[index].fd != fd || fd < 0) return nullptr;
      return &table_[index];
    }

    // Brings r's knotes in line with `interest`. `before` is the previous interest: a direction
    // it lacked and `interest` has is registered again so the kernel re-evaluates it.
    errc sync(registration& r, events interest, events before) noexcept {
      std::uint8_t want = 0;
      if (any(interest & events::read)) want |= read_filter;
      if (any(interest & events::write)) want |= write_filter;
      if (want == 0) want = r.filters;  // paused: keep what is there
      // One filter that can fire, for EV_EOF (see the top of this section).
      if ((want & r.usable) == 0) want |= (r.usable & read_filter) != 0 ? read_filter : write_filter;
      std::uint8_t refresh = 0;
      if (any(interest & events::read) && !any(before & events::read)) refresh |= read_filter;
      if (any(interest & events::write) && !any(before & events::write)) refresh |= write_filter;

      struct kevent changes[2];
      std::uint8_t which[2];
      int n = 0;
      for (int i = 0; i < 2; ++i) {
        const std::uint8_t f = i == 0 ? read_filter : write_filter;
        const int filter = i == 0 ? EVFILT_READ : EVFILT_WRITE;
        if ((want & f) != 0 && ((refresh & f) != 0 || (r.filters & f) == 0))
          changes[n] = make_change(r.fd, filter, EV_ADD | EV_CLEAR, 0, r.token);
        else if ((want & f) == 0 && (r.filters & f) != 0)
          changes[n] = make_change(r.fd, filter, EV_DELETE, 0, 0);
        else
          continue;
        which[n++] = f;
      }
      if (n == 0) return errc::ok;
      if (!apply(changes, n)) return fail();
      errc result = errc::ok;
      for (int i = 0; i < n; ++i) {
        const int err = static_cast<int>(changes[i].data);
        const std::uint8_t f = which[i];
        if ((changes[i].flags & EV_DELETE) != 0) {
          r.filters = static_cast<std::uint8_t>(r.filters & ~f);  // gone whatever the answer
          if (err == 0 || err == ENOENT || err == EBADF) continue;
        } else if (err == 0) {
          r.filters |= f;
          continue;
        } else if (err == EPIPE && f == write_filter) {
          // FreeBSD refuses a write filter on a pipe whose reader is gone. That is a report, not a
          // failure: the source exists and hears about it at the next wait.
          if (!any(r.pending)) ++pending_;
          r.pending |= events::error | events::hangup;
          continue;
        }
        if (result == errc::ok) {
          errno_ = err;
          result = detail::errno_to_errc(err);
        }
      }
      return result;
    }

    errc unregister(registration& r) noexcept {
      struct kevent changes[2];
      int n = 0;
      if ((r.filters & read_filter) != 0) changes[n++] = make_change(r.fd, EVFILT_READ, EV_DELETE, 0, 0);
      if ((r.filters & write_filter) != 0) changes[n++] = make_change(r.fd, EVFILT_WRITE, EV_DELETE, 0, 0);
      if (any(r.pending)) --pending_;
      r = registration{};
      if (n == 0) return errc::ok;
      if (!apply(changes, n)) return fail();
      for (int i = 0; i < n; ++i) {
        const int err = static_cast<int>(changes[i].data);
        // The user may have closed the fd already, which dropped its knotes.
        if (err != 0 && err != ENOENT && err != EBADF) {
          errno_ = err;
          return errc::os_error;
        }
      }
      return errc::ok;
    }

    // Applies changes[0..n) (n <= 2). On return, changes[i].data is 0 or the errno of change i.
    // False, with errno set, when the call itself failed.
    bool apply(struct kevent* changes, int n) noexcept {
#if defined(EV_RECEIPT)
      struct kevent receipts[2];
      for (int i = 0; i < n; ++i) changes[i].flags |= EV_RECEIPT;
      // With EV_RECEIPT on every change, the kernel returns after the changes without collecting
      // events; the zero timeout only guards against a kernel that does not.
      const timespec zero{};
      int got;
      do got = ::kevent(kq_, changes, n, receipts, n, &zero);
      while (got < 0 && errno == EINTR);  // changes are applied before EINTR; redoing them is safe
      if (got < 0) return false;
      for (int i = 0; i < n; ++i) {
        // Receipts come back in change order, one per change.
        const bool answered = i < got && (receipts[i].flags & EV_ERROR) != 0;
        changes[i].data = answered ? receipts[i].data : 0;
      }
#else
      for (int i = 0; i < n; ++i) {
        int r;
        do r = ::kevent(kq_, &changes[i], 1, nullptr, 0, nullptr);
        while (r < 0 && errno == EINTR);
        changes[i].data = r < 0 ? errno : 0;
      }
#endif
      return true;
    }

    // Rounded up to whole nanoseconds, so the wait never ends before the deadline. Capped at a day,
    // which every kernel accepts; the loop simply waits again.
    static const timespec* to_timeout(clock::time_point deadline, timespec& ts) noexcept {
      ts.tv_sec = 0;
      ts.tv_nsec = 0;
      if (deadline == clock::time_point::max()) return nullptr;
      const auto now = clock::now();
      if (deadline <= now) return &ts;
      const std::chrono::nanoseconds cap = std::chrono::hours(24);
      std::chrono::nanoseconds left = detail::ceil_saturating<std::chrono::nanoseconds>(deadline - now);
      if (left > cap) left = cap;
      ts.tv_sec = static_cast<decltype(ts.tv_sec)>(left.count() / 1000000000);
      ts.tv_nsec = static_cast<decltype(ts.tv_nsec)>(left.count() % 1000000000);
      return &ts;
    }

    errc fail() noexcept {
      errno_ = errno;
      return errc::os_error;
    }

    int kq_ = -1;
    int errno_ = 0;
    std::size_t pending_ = 0;  // registrations with a pending report
    registration table_[capacity];
    signal_watch signals_[Config::max_signals > 0 ? Config::max_signals : 1];
    struct kevent fetched_[Config::events_per_wait];
    std::uint32_t touched_[Config::events_per_wait];
  };
};
#endif  // TINYLOOP_HAS_KQUEUE

#if TINYLOOP_HAS_POLL
// ---- poll_port: POSIX poll(2), level-triggered, eventfd or pipe wake ----------------------------
//
// For POSIX systems with neither epoll nor kqueue. poll(2) keeps no state in the kernel, so the
// port keeps it: a dense pollfd array, entry 0 being the wake channel, that every wait hands to the
// kernel whole (a wait costs O(registered fds); that is poll's price, see bench/). Removal moves
// the last entry into the hole; position_ maps the loop's slot index (the token's low 32 bits) to
// the entry, so modify() and remove() are O(1); add() scans for a duplicate fd.
//
// poll(2) is level-triggered: a ready fd is reported on every wait until its handler drains it,
// which the edge-style contract allows. Two conditions would be reported on every wait with nothing
// a handler can do about them, so they are reported once and the entry is parked (its pollfd.fd
// set to -1, which poll(2) skips) until modify() re-arms it:
//   - POLLNVAL: the user closed the fd without remove(). Its number may be reused by an unrelated
//     file, whose readiness must not reach this source.
//   - error or hangup on a paused source (interest none): poll(2) always reports POLLERR/POLLHUP,
//     and a paused source has no handler that would act on them.
struct poll_port {
  using clock = std::chrono::steady_clock;
  static constexpr bool has_fds = true;
  static constexpr bool has_signals = true;
  static constexpr bool interrupt_safe_wake = false;

  template <class Config>
  class backend {
    static constexpr std::size_t capacity = Config::max_sources;
    static constexpr std::uint32_t absent = 0;  // position 0 is the wake channel, never a source

   public:
    backend() noexcept = default;
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    errc open() noexcept {
      // TINYLOOP_POLL_PIPE_WAKE picks the pipe on Linux too (the tests run both).
#if defined(__linux__) && !defined(TINYLOOP_POLL_PIPE_WAKE)
      // An eventfd is both ends of the channel, and its counter never fills up.
      wake_read_ = wake_write_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (wake_read_ < 0) return fail();
#else
      int ends[2];
      if (::pipe(ends) != 0) return fail();
      wake_read_ = ends[0];
      wake_write_ = ends[1];
      // Non-blocking: wake() must never block (a full pipe already means "wake up"), and the drain
      // reads until EAGAIN. (pipe2() would set both atomically, but macOS lacks it.)
      for (const int fd : ends) {
        const int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return fail();
        if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return fail();
      }
#endif
      pfds_[0].fd = wake_read_;
      pfds_[0].events = POLLIN;
      pfds_[0].revents = 0;
      count_ = 0;
      return errc::ok;
    }

    void close() noexcept {
      if (wake_write_ >= 0 && wake_write_ != wake_read_) ::close(wake_write_);
      if (wake_read_ >= 0) ::close(wake_read_);
      wake_read_ = wake_write_ = -1;
      count_ = 0;
    }

    int last_errno() const noexcept { return errno_; }

    errc add(int fd, events interest, std::uint64_t token) noexcept {
      const auto index = static_cast<std::uint32_t>(token);
      if (fd < 0 || index >= capacity) return errc::invalid_argument;
      if (position_[index] != absent) return errc::already_exists;
      // poll(2) keeps no registrations, so a second one for the same fd would go unnoticed.
      for (std::size_t pos = 1; pos <= count_; ++pos)
        if (entries_[pos].fd == fd) return errc::already_exists;
      // poll(2) would take a bad fd and say POLLNVAL later; say it now, as epoll and kqueue do.
      if (::fcntl(fd, F_GETFD) == -1) {
        errno_ = errno;
        return errc::invalid_argument;
      }
      if (count_ == capacity) return errc::full;  // unreachable while each slot has one entry
      const std::size_t pos = ++count_;
      pfds_[pos].fd = fd;
      pfds_[pos].events = requested(interest);
      pfds_[pos].revents = 0;
      entries_[pos] = {token, fd, interest};
      position_[index] = static_cast<std::uint32_t>(pos);
      return errc::ok;
    }

    errc modify(int fd, events interest, std::uint64_t token) noexcept {
      const std::size_t pos = find(fd, token);
      if (pos == absent) return errc::not_found;
      entries_[pos].token = token;
      entries_[pos].interest = interest;
      pfds_[pos].fd = fd;  // un-parks: the new interest gets a fresh report of what is pending
      pfds_[pos].events = requested(interest);
      pfds_[pos].revents = 0;
      return errc::ok;
    }

    errc remove(int fd, std::uint64_t token) noexcept {
      const std::size_t pos = find(fd, token);
      if (pos != absent) erase(pos);
      return errc::ok;
    }

    template <class Sink>
    errc wait(clock::time_point deadline, Sink& sink) noexcept {
      const auto nfds = static_cast<nfds_t>(count_ + 1);
      int ready;
      do {
        // Recomputed on every pass, so an EINTR retry waits only for the time that is left; rounded
        // up to whole milliseconds, so the wait never ends before the deadline.
        ready = ::poll(pfds_, nfds, detail::timeout_ms<clock>(deadline));
      } while (ready < 0 && errno == EINTR);
      if (ready < 0) return fail();
      if (ready > 0 && pfds_[0].revents != 0) {
        pfds_[0].revents = 0;
        drain_wake();
        --ready;
      }
      // Starts where the previous scan stopped: when more fds are ready than the loop takes per
      // wait, the ones left out come first next time (being level-triggered, they are still ready).
      // The entry after the last is a sentinel that looks ready, so the search for the next ready
      // entry, the whole cost of a wait on a large idle set, is one test per entry.
      pfds_[count_ + 1].revents = POLLNVAL;
      std::size_t pos = 1 + (next_ < count_ ? next_ : 0);
      bool wrapped = false;
      std::size_t reported = 0;
      while (ready > 0 && reported < Config::events_per_wait) {
        while (pfds_[pos].revents == 0) ++pos;
        if (pos == count_ + 1) {
          if (wrapped) break;  // unreachable while poll(2) counts right; never loop forever
          wrapped = true;
          pos = 1;
          continue;
        }
        --ready;
        pollfd& p = pfds_[pos];
        const entry& e = entries_[pos];
        const events ev = translate(p.revents, e.interest);
        const bool paused = !any(e.interest & (events::read | events::write));
        if ((p.revents & POLLNVAL) != 0 || (paused && any(ev))) p.fd = -1;  // parked, see above
        p.revents = 0;
        ++pos;
        if (!any(ev)) continue;
        sink(e.token, ev);
        ++reported;
      }
      next_ = pos - 1;
      return errc::ok;
    }

    // Async-signal-safe: one write(2). EAGAIN means a wake is already pending, as good as ours.
    void wake() noexcept {
      const int saved = errno;  // may run in a signal handler: the interrupted code's errno stays
#if defined(__linux__) && !defined(TINYLOOP_POLL_PIPE_WAKE)
      const std::uint64_t one = 1;
#else
      const unsigned char one = 1;
#endif
      ssize_t r;
      do r = ::write(wake_write_, &one, sizeof one);
      while (r < 0 && errno == EINTR);
      errno = saved;
    }

   private:
    struct entry {
      std::uint64_t token;
      int fd;  // also kept here: pollfd.fd is -1 while parked
      events interest;
    };

    static short requested(events interest) noexcept {
      int mask = 0;
      if (any(interest & events::read)) mask |= POLLIN;
      if (any(interest & events::write)) mask |= POLLOUT;
#if defined(POLLRDHUP)
      // The peer shut down its writing side. Reported as hangup, as kqueue's EV_EOF on the read
      // filter is; not asked for when only write is wanted, where it would repeat on every wait.
      if (!any(interest & events::write) || any(interest & events::read)) mask |= POLLRDHUP;
#endif
      return static_cast<short>(mask);
    }

    static events translate(short revents, events interest) noexcept {
      events ev = events::none;
      if ((revents & POLLIN) != 0) ev |= events::read;
      if ((revents & POLLOUT) != 0) ev |= events::write;
      ev &= interest;
      if ((revents & (POLLERR | POLLNVAL)) != 0) ev |= events::error;
      if ((revents & POLLHUP) != 0) ev |= events::hangup;
#if defined(POLLRDHUP)
      if ((revents & POLLRDHUP) != 0) ev |= events::hangup;
#endif
      return ev;
    }

    std::size_t find(int fd, std::uint64_t token) const noexcept {
      const auto index = static_cast<std::uint32_t>(token);
      if (index >= capacity) return absent;
      const std::size_t pos = position_[index];
      return pos != absent && entries_[pos].fd == fd ? pos : absent;
    }

    void erase(std::size_t pos) noexcept {
      position_[static_cast<std::uint32_t>(entries_[pos].token)] = absent;
      if (pos != count_) {
        pfds_[pos] = pfds_[count_];
        entries_[pos] = entries_[count_];
        position_[static_cast<std::uint32_t>(entries_[pos].token)] = static_cast<std::uint32_t>(pos);
      }
      --count_;
    }

    void drain_wake() noexcept {
      // Reads everything written so far; a wake() that lands after this stays in the channel and
      // ends the next wait, so none is lost.
      unsigned char buf[64];  // an eventfd read needs 8 bytes and takes the whole counter
      for (;;) {
        const ssize_t r = ::read(wake_read_, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < static_cast<ssize_t>(sizeof buf)) return;
      }
    }

    errc fail() noexcept {
      errno_ = errno;
      return errc::os_error;
    }

    int wake_read_ = -1;
    int wake_write_ = -1;
    int errno_ = 0;
    std::size_t count_ = 0;  // registered fds, in pfds_[1..count_]
    std::size_t next_ = 0;   // where the next scan starts, relative to pfds_[1]
    pollfd pfds_[capacity + 2];  // [0] wake, [1..count_] sources, [count_ + 1] the scan's sentinel
    entry entries_[capacity + 1];  // parallel to pfds_; [0] unused
    std::uint32_t position_[capacity] = {};  // slot index -> position in pfds_, or absent
  };
};
#endif  // TINYLOOP_HAS_POLL


// ---- sim_port: virtual time and scripted readiness, for deterministic tests -------------------
//
// The clock is process-wide virtual time that only moves when a test advances it or when a loop
// would wait for a timer: the wait returns at once with the clock set to the deadline, so an hour
// of timers runs in microseconds. Channels are small integers a test makes ready by hand with
// backend::make_ready(); readiness is edge-style (reported once, then cleared).
struct sim_port {
  struct clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<clock, duration>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept { return time_point(duration(ticks_.load(std::memory_order_relaxed))); }
    static void advance(duration d) noexcept {
      if (d > duration::zero()) ticks_.fetch_add(d.count(), std::memory_order_relaxed);
    }
    // Moves the clock forward to t; never backwards.
    static void advance_to(time_point t) noexcept {
      rep cur = ticks_.load(std::memory_order_relaxed);
      while (cur < t.time_since_epoch().count() &&
             !ticks_.compare_exchange_weak(cur, t.time_since_epoch().count(), std::memory_order_relaxed)) {
      }
    }
    static void reset() noexcept { ticks_.store(0, std::memory_order_relaxed); }

   private:
    static inline std::atomic<rep> ticks_{0};
  };

  static constexpr bool has_fds = true;
  static constexpr bool has_signals = false;
  static constexpr bool interrupt_safe_wake = true;
  static constexpr int max_channels = 1024;

  template <class Config>
  class backend {
   public:
    errc open() noexcept { return errc::ok; }
    void close() noexcept {}
    int last_errno() const noexcept { return 0; }

    errc add(int channel, events interest, std::uint64_t token) noexcept {
      if (channel < 0 || channel >= max_channels) return errc::invalid_argument;
      if (find(channel) != npos) return errc::already_exists;
      if (count_ == Config::max_sources) return errc::full;
      registrations_[count_++] = {channel, interest, token};
      return errc::ok;
    }
    errc modify(int channel, events interest, std::uint64_t token) noexcept {
      const std::size_t i = find(channel);
      if (i == npos) return errc::not_found;
      registrations_[i].interest = interest;
      registrations_[i].token = token;
      return errc::ok;
    }
    errc remove(int channel, std::uint64_t) noexcept {
      const std::size_t i = find(channel);
      if (i == npos) return errc::ok;
      registrations_[i] = registrations_[--count_];
      return errc::ok;
    }

    // Test API (loop thread): make a channel ready, or forget its readiness.
    void make_ready(int channel, events ev) noexcept {
      if (channel >= 0 && channel < max_channels) ready_[channel] |= ev;
    }
    void clear_ready(int channel) noexcept {
      if (channel >= 0 && channel < max_channels) ready_[channel] = events::none;
    }

    template <class Sink>
    errc wait(clock::time_point deadline, Sink& sink) noexcept {
      stalled_ = false;
      std::size_t reported = 0;
      // Starts where the previous scan stopped, so a channel that is always ready cannot keep the
      // others out of a full batch.
      for (std::size_t n = 0; n < count_ && reported < Config::events_per_wait; ++n) {
        if (next_ >= count_) next_ = 0;
        registration& r = registrations_[next_++];
        const events ev = ready_[r.channel] & (r.interest | events::error | events::hangup);
        if (!any(ev)) continue;
        ready_[r.channel] &= ~ev;
        sink(r.token, ev);
        ++reported;
      }
      // acq_rel: a wake() from another thread published work before setting the flag.
      if (reported != 0 || woken_.exchange(false, std::memory_order_acq_rel)) return errc::ok;
      if (deadline == clock::time_point::min()) return errc::ok;
      // No deadline and nothing scripted: only the test can make something happen, and it is
      // not running while we are. Say so, rather than spin, so run() and run_once() return.
      stalled_ = deadline == clock::time_point::max();
      if (!stalled_) clock::advance_to(deadline);
      return errc::ok;
    }

    void wake() noexcept { woken_.store(true, std::memory_order_release); }
    bool stalled() const noexcept { return stalled_; }

   private:
    static constexpr std::size_t npos = ~std::size_t{0};
    struct registration {
      int channel;
      events interest;
      std::uint64_t token;
    };
    std::size_t find(int channel) const noexcept {
      for (std::size_t i = 0; i < count_; ++i)
        if (registrations_[i].channel == channel) return i;
      return npos;
    }

    registration registrations_[Config::max_sources] = {};
    std::size_t count_ = 0;
    std::size_t next_ = 0;
    events ready_[max_channels] = {};
    std::atomic<bool> woken_{false};
    bool stalled_ = false;
  };
};

// ---- baremetal_port<Board>: a microcontroller with no OS -------------------------------------
//
// Board supplies:
//   using clock = ...;                                  steady, static now() noexcept
//   static void init() noexcept;                        called when a loop opens the port
//   static void wait(clock::time_point deadline) noexcept;
//       sleeps until an interrupt or the deadline (max(): none). Returns at once if wake() ran since
//       the previous wait() returned: check the wake flag with interrupts masked, then WFI (which
//       wakes on a pending interrupt even while masked), so no interrupt is lost in between.
//   static void wake() noexcept;                        interrupt-safe
//   static events poll(int device) noexcept;            current readiness of a device channel
// Devices are level-triggered underneath: a ready device is reported on every iteration while it
// stays ready and interesting, which the contract allows.
namespace detail {
template <class B, class = void> struct board_has_init : std::false_type {};
template <class B> struct board_has_init<B, std::void_t<decltype(B::init())>> : std::true_type {};
}  // namespace detail

template <class Board>
struct baremetal_port {
  using clock = typename Board::clock;
  static constexpr bool has_fds = true;
  static constexpr bool has_signals = false;
  static constexpr bool interrupt_safe_wake = true;

  template <class Config>
  class backend {
   public:
    errc open() noexcept {
      if constexpr (detail::board_has_init<Board>::value) Board::init();  // optional
      return errc::ok;
    }
    void close() noexcept {}
    int last_errno() const noexcept { return 0; }

    errc add(int device, events interest, std::uint64_t token) noexcept {
      if (device < 0) return errc::invalid_argument;
      for (std::size_t i = 0; i < count_; ++i)
        if (devices_[i].device == device) return errc::already_exists;
      if (count_ == Config::max_sources) return errc::full;
      devices_[count_++] = {device, interest, token, false};
      scan_ = &backend::report;  // see scan_
      return errc::ok;
    }
    errc modify(int device, events interest, std::uint64_t token) noexcept {
      for (std::size_t i = 0; i < count_; ++i) {
        if (devices_[i].device == device) {
          devices_[i].interest = interest;
          devices_[i].token = token;
          devices_[i].parked = false;
          return errc::ok;
        }
      }
      return errc::not_found;
    }
    errc remove(int device, std::uint64_t) noexcept {
      for (std::size_t i = 0; i < count_; ++i) {
        if (devices_[i].device == device) {
          devices_[i] = devices_[--count_];
          return errc::ok;
        }
      }
      return errc::ok;
    }

    template <class Sink>
    errc wait(typename clock::time_point deadline, Sink& sink) noexcept {
      if (scan(sink) != 0 || deadline == clock::time_point::min()) return errc::ok;
      Board::wait(deadline);
      scan(sink);
      return errc::ok;
    }

    void wake() noexcept { Board::wake(); }

   private:
    using sink_function = void (*)(void* sink, std::uint64_t token, events ev) noexcept;

    template <class Sink>
    static void call_sink(void* sink, std::uint64_t token, events ev) noexcept {
      (*static_cast<Sink*>(sink))(token, ev);
    }
    template <class Sink>
    std::size_t scan(Sink& sink) noexcept {
      return scan_ != nullptr ? scan_(*this, &call_sink<Sink>, &sink) : 0;
    }

    // Starts where the previous scan stopped, so a device that is always ready cannot keep the
    // ones after it out of a full batch.
    static std::size_t report(backend& self, sink_function sink, void* context) noexcept {
      std::size_t reported = 0;
      for (std::size_t n = 0; n < self.count_ && reported < Config::events_per_wait; ++n) {
        if (self.next_ >= self.count_) self.next_ = 0;
        device& d = self.devices_[self.next_++];
        if (d.parked) continue;
        const events ev = Board::poll(d.device) & (d.interest | events::error | events::hangup);
        if (!any(ev)) continue;
        // A paused device is told about a sticky error or hangup once, then left alone until
        // modify(): reporting it on every iteration would keep the core from ever sleeping.
        if (!any(d.interest)) d.parked = true;
        sink(context, d.token, ev);
        ++reported;
      }
      return reported;
    }

    struct device {
      int device;
      events interest;
      std::uint64_t token;
      bool parked;  // a paused device whose error/hangup was reported
    };
    device devices_[Config::max_sources];  // [0, count_) in use
    std::size_t count_ = 0;
    std::size_t next_ = 0;
    // Set by the first add(): a program that never registers a device links no device scan.
    std::size_t (*scan_)(backend&, sink_function, void*) noexcept = nullptr;
  };
};

#if TINYLOOP_HAS_EPOLL
using default_port = epoll_port;
#elif TINYLOOP_HAS_KQUEUE
using default_port = kqueue_port;
#elif TINYLOOP_HAS_POLL
using default_port = poll_port;
#else
// No OS underneath: name a port explicitly, e.g. event_loop<baremetal_port<my_board>>.
struct default_port;
#endif

namespace detail {

template <class, class = void>
struct has_clock : std::false_type {};
template <class P>
struct has_clock<P, std::void_t<typename P::clock::time_point, typename P::clock::duration,
                                decltype(P::clock::now())>> : std::true_type {};

template <class, class = void>
struct has_flags : std::false_type {};
template <class P>
struct has_flags<P, std::void_t<decltype(bool{P::has_fds}), decltype(bool{P::has_signals}),
                                decltype(bool{P::interrupt_safe_wake})>> : std::true_type {};

struct probe_sink {
  void operator()(std::uint64_t, events) noexcept {}
};

template <class B, class Clock, class = void>
struct has_core_backend : std::false_type {};
template <class B, class Clock>
struct has_core_backend<
    B, Clock,
    std::void_t<decltype(errc{std::declval<B&>().open()}), decltype(std::declval<B&>().close()),
                decltype(int{std::declval<const B&>().last_errno()}), decltype(std::declval<B&>().wake()),
                decltype(errc{std::declval<B&>().wait(std::declval<typename Clock::time_point>(),
                                                     std::declval<probe_sink&>())})>> : std::true_type {};

template <class B, class = void>
struct has_fd_backend : std::false_type {};
template <class B>
struct has_fd_backend<
    B, std::void_t<decltype(errc{std::declval<B&>().add(0, events::read, std::uint64_t{})}),
                   decltype(errc{std::declval<B&>().modify(0, events::read, std::uint64_t{})}),
                   decltype(errc{std::declval<B&>().remove(0, std::uint64_t{})})>> : std::true_type {};

// Optional backend member: bool stalled() const noexcept, true when the last wait found that
// nothing could ever end it (sim_port with no deadline and nothing scripted). run() then returns.
template <class B, class = void>
struct has_stalled : std::false_type {};
template <class B>
struct has_stalled<B, std::void_t<decltype(bool{std::declval<const B&>().stalled()})>> : std::true_type {};

// Optional port flag: static constexpr bool native_signals. A port that sets it watches POSIX
// signals in its own kernel object (kqueue's EVFILT_SIGNAL) with two more backend members:
//   errc watch_signal(int signo, std::uint64_t token) noexcept;   wait() then calls sink(token, ...)
//   errc unwatch_signal(int signo) noexcept;                      when the signal was delivered
// The loop still owns the signal numbers and sets the disposition (section 5). Ports without the
// flag (epoll, poll) leave signals to the loop's own sigaction handler.
template <class P, class = void>
struct native_signals : std::false_type {};
template <class P>
struct native_signals<P, std::enable_if_t<P::native_signals>> : std::true_type {};

template <class B, class = void>
struct has_signal_backend : std::false_type {};
template <class B>
struct has_signal_backend<B, std::void_t<decltype(errc{std::declval<B&>().watch_signal(0, std::uint64_t{})}),
                                         decltype(errc{std::declval<B&>().unwatch_signal(0)})>>
    : std::true_type {};

template <class P, class C, class = void>
struct has_backend : std::false_type {};
template <class P, class C>
struct has_backend<P, C, std::void_t<typename P::template backend<C>>> : std::true_type {};

template <class Port, class Config>
constexpr void check_backend() noexcept;

// Checks a port against the concept above, with a message for each thing that is missing.
template <class Port, class Config>
constexpr bool check_port() noexcept {
  static_assert(has_clock<Port>::value,
                "tinyloop port: needs `using clock = ...` with duration, time_point and a static now()");
  static_assert(has_flags<Port>::value,
                "tinyloop port: needs static constexpr bool has_fds, has_signals, interrupt_safe_wake");
  static_assert(has_backend<Port, Config>::value,
                "tinyloop port: needs a member `template <class Config> class backend` (the per-loop state)");
  if constexpr (has_backend<Port, Config>::value) check_backend<Port, Config>();
  return true;
}

template <class Port, class Config>
constexpr void check_backend() noexcept {
  using backend = typename Port::template backend<Config>;
  static_assert(std::is_default_constructible_v<backend>,
                "tinyloop port: backend<Config> must be default constructible (acquire resources in open())");
  static_assert(has_core_backend<backend, typename Port::clock>::value,
                "tinyloop port: backend<Config> needs errc open(), void close(), int last_errno() const, "
                "void wake(), and template <class Sink> errc wait(clock::time_point, Sink&)");
  if constexpr (Port::has_fds)
    static_assert(has_fd_backend<backend>::value,
                  "tinyloop port: a port with has_fds needs errc add(int, events, std::uint64_t), "
                  "errc modify(int, events, std::uint64_t) and errc remove(int, std::uint64_t)");
  if constexpr (native_signals<Port>::value) {
    static_assert(Port::has_signals, "tinyloop port: native_signals needs has_signals = true");
    static_assert(has_signal_backend<backend>::value,
                  "tinyloop port: a port with native_signals needs errc watch_signal(int, std::uint64_t) "
                  "and errc unwatch_signal(int)");
  }
}

}  // namespace detail

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
// The same checks as a C++20 concept, for port authors who want to test their type directly:
//   static_assert(tinyloop::port<my_port>);
template <class P, class Config = default_config>
concept port = detail::has_clock<P>::value && detail::has_flags<P>::value &&
               detail::has_backend<P, Config>::value &&
               detail::has_core_backend<typename P::template backend<Config>, typename P::clock>::value &&
               (!P::has_fds || detail::has_fd_backend<typename P::template backend<Config>>::value) &&
               (!detail::native_signals<P>::value ||
                (P::has_signals && detail::has_signal_backend<typename P::template backend<Config>>::value));
#endif

// ==============================================================================================
// 5. POSIX signal plumbing
// ==============================================================================================
//
// Two ways in, one bookkeeping. Either way the loop owns a signal number process-wide (owner[],
// so a second loop gets already_exists whatever its port), records it in pending[], and runs the
// callback later on its own thread (run_signals()).
//   - Ports without native_signals (epoll, poll): handler() records the signal and wakes the owning
//     loop. No signalfd: it needs the signal blocked in every thread of the process, which a library
//     cannot promise.
//   - Ports with native_signals (kqueue): the port's kernel object records it and its wait() hands
//     it to the sink under signal_token(signo); the disposition is absorb(), which only stops the
//     default action.

namespace detail {

// The loop side of a watched signal: `notify` is called from the handler with `context`.
struct signal_target {
  void (*notify)(void* context) noexcept;
  void* context;
};

#if TINYLOOP_HOSTED
#if defined(NSIG)
inline constexpr int signal_limit = NSIG;
#else
inline constexpr int signal_limit = 65;
#endif

struct signal_hub {
  // One owning loop per signal number in the process. Atomics so the handler, which may run on any
  // thread, reads them without a data race; lock-free so reading them is async-signal-safe.
  static inline std::atomic<signal_target*> owner[signal_limit] = {};
  static inline std::atomic<bool> pending[signal_limit] = {};
  // Handlers of each signal running right now, on any thread (see release()).
  static inline std::atomic<unsigned> running[signal_limit] = {};
  static_assert(std::atomic<signal_target*>::is_always_lock_free && std::atomic<bool>::is_always_lock_free &&
                    std::atomic<unsigned>::is_always_lock_free,
                "tinyloop: signal delivery needs lock-free atomics");

  static void handler(int signo) noexcept {
    if (signo <= 0 || signo >= signal_limit) return;
    const int saved = errno;  // write(2) in notify may change it under the interrupted code
    // seq_cst, with the load below and release()'s store and load: see release().
    running[signo].fetch_add(1, std::memory_order_seq_cst);
    // relaxed: published to the loop by notify's release of the loop's own flag.
    pending[signo].store(true, std::memory_order_relaxed);
    // seq_cst (so also acquire: pairs with the release in claim(), the target is fully set up).
    if (signal_target* t = owner[signo].load(std::memory_order_seq_cst)) t->notify(t->context);
    running[signo].fetch_sub(1, std::memory_order_release);
    errno = saved;
  }

  // The disposition while a port watches the signal itself. A handler that does nothing, not SIG_IGN:
  // ignoring SIGCHLD makes the kernel reap children (waitpid() then fails with ECHILD) and FreeBSD's
  // EVFILT_SIGNAL does not even record an ignored SIGCHLD; and SIG_IGN survives execve(), so every
  // program the process starts would ignore the signal too, where a caught one is reset to SIG_DFL.
  static void absorb(int) noexcept {}

  static bool claim(int signo, signal_target* t) noexcept {
    signal_target* expected = nullptr;
    // release: the target's fields are visible to a handler that loads it.
    if (!owner[signo].compare_exchange_strong(expected, t, std::memory_order_release, std::memory_order_relaxed))
      return false;
    // A handler of the previous owner still running on another thread may have set it after that
    // owner's release(): the new owner starts clean.
    pending[signo].store(false, std::memory_order_relaxed);
    return true;
  }
  // After release() returns no handler touches the owner any more, so the loop may go away. A
  // handler on another thread may have read the owner just before, and be anywhere in notify()
  // (preempted, even): release() waits for it. In the single order of seq_cst operations, either
  // the handler's increment comes before our load of `running` (we wait for its decrement) or
  // after it, and then its load of the owner comes after our store (it reads null or a new owner).
  // The wait ends: the caller has restored the previous disposition first (or never installed
  // ours), so no new handler of ours starts, and a running one only sets flags and writes a
  // descriptor.
  static void release(int signo) noexcept {
    owner[signo].store(nullptr, std::memory_order_seq_cst);
    while (running[signo].load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    pending[signo].store(false, std::memory_order_relaxed);
  }
  // Loop thread: was the signal raised since the last call?
  static bool take(int signo) noexcept {
    // acq_rel RMW: cannot lose a store that lands between a load and a reset.
    return pending[signo].exchange(false, std::memory_order_acq_rel);
  }
};
#endif

// The token under which a native_signals port reports signo: generation 0, which no source token
// has (a live slot's generation is odd), so the loop tells the two apart by the generation alone.
constexpr std::uint64_t signal_token(int signo) noexcept { return static_cast<std::uint32_t>(signo); }
constexpr bool is_signal_token(std::uint64_t token) noexcept { return (token >> 32) == 0; }

}  // namespace detail

// ==============================================================================================
// 6. event_loop
// ==============================================================================================

template <class Port = default_port, class Config = default_config>
class event_loop {
  static_assert(detail::check_port<Port, Config>());
  static_assert(Config::max_sources >= 1 && Config::max_timers >= 1 && Config::events_per_wait >= 1,
                "tinyloop config: max_sources, max_timers and events_per_wait must be at least 1");
  static_assert(Config::max_sources < 0xffffffffu && Config::max_timers < 0xffffffffu,
                "tinyloop config: capacities must fit in 32-bit ids");

 public:
  using port_type = typename Port::template backend<Config>;
  using clock = typename Port::clock;
  using duration = typename clock::duration;
  using time_point = typename clock::time_point;
  using callback = inplace_function<void(), Config::callback_bytes>;
  using io_callback = inplace_function<void(events), Config::callback_bytes>;
  using signal_callback = inplace_function<void(int), Config::callback_bytes>;

  // An extension point for work finished outside the loop (worker_pool uses it): trigger() from
  // any thread, a signal handler or an interrupt makes the loop call on_trigger on its own thread,
  // once per batch of triggers, with the same wake coalescing as post().
  struct async_hook {
    void (*on_trigger)(void* context) noexcept = nullptr;
    bool (*keeps_alive)(void* context) noexcept = nullptr;  // run() does not return while true
    void* context = nullptr;

   private:
    friend class event_loop;
    async_hook* next_ = nullptr;
    event_loop* loop_ = nullptr;
    std::atomic<bool> triggered_{false};
  };

  event_loop() noexcept {
    status_ = port_.open();
    if (status_ != errc::ok) {
      os_errno_ = port_.last_errno();
      port_.close();
    }
    now_ = clock::now();  // after open(): a board may start its clock in init()
    bind_thread();
  }

  ~event_loop() {
    // Dispositions first, while a native_signals port's knotes still record (close() drops them).
    if (signal_machinery_ != nullptr) signal_machinery_(*this, signal_step::close);
    for (async_hook* h = hooks_; h != nullptr; h = h->next_) h->loop_ = nullptr;
    if (status_ == errc::ok) port_.close();
    // Pending posts are destroyed unrun. No producer is left, so the pointer's store is visible.
    if (const auto machinery = post_machinery_.load(std::memory_order_relaxed)) machinery(*this, post_step::discard);
  }

  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  errc status() const noexcept { return status_; }
  int os_errno() const noexcept { return os_errno_; }
  port_type& port() noexcept { return port_; }

  // ---- I/O readiness ------------------------------------------------------------------------

  result<source_id> add(int fd, events interest, io_callback cb) noexcept {
    return add_impl(fd, interest, static_cast<io_callback&&>(cb));
  }
  // The same for a callable that is not an io_callback yet: built straight into the source's slot
  // (see the timers' overloads).
  template <class F, class = detail::enable_if_direct<F, io_callback>>
  result<source_id> add(int fd, events interest, F&& f) noexcept {
    return add_impl(fd, interest, static_cast<F&&>(f));
  }

  errc modify(source_id id, events interest) noexcept {
    assert_loop_thread();
    if constexpr (!Port::has_fds) {
      return errc::unsupported;
    } else {
      if (!sources_.live(id.index(), id.generation())) return errc::not_found;
      source& s = sources_[id.index()];
      interest &= events::read | events::write;
      const errc e = port_.modify(s.fd, interest, detail::make_token(id.index(), id.generation()));
      if (e != errc::ok) {
        os_errno_ = port_.last_errno();
        return e;
      }
      if (any(s.interest) != any(interest)) {
        if (any(interest))
          ++interested_sources_;
        else
          --interested_sources_;
      }
      s.interest = interest;
      return errc::ok;
    }
  }

  errc remove(source_id id) noexcept {
    assert_loop_thread();
    if constexpr (!Port::has_fds) {
      return errc::unsupported;
    } else {
      if (!sources_.live(id.index(), id.generation())) return errc::not_found;
      source& s = sources_[id.index()];
      // The source is gone whatever the OS says: an error here means the registration is already
      // gone too (the fd was closed), and a stale id must not linger.
      const errc e = port_.remove(s.fd, detail::make_token(id.index(), id.generation()));
      if (e != errc::ok) os_errno_ = port_.last_errno();
      if (any(s.interest)) --interested_sources_;
      s.interest = events::none;
      s.cb = nullptr;  // empty while its own callback runs: dispatch_io() holds it
      sources_.invalidate(id.index());
      sources_.recycle(id.index());
      return e;
    }
  }

  // ---- timers -------------------------------------------------------------------------------

  template <class Rep, class Period>
  result<timer_id> after(std::chrono::duration<Rep, Period> delay, callback cb) noexcept {
    return after_impl(delay, static_cast<callback&&>(cb));
  }
  template <class Rep, class Period>
  result<timer_id> every(std::chrono::duration<Rep, Period> period, callback cb) noexcept {
    return every_impl(period, static_cast<callback&&>(cb));
  }
  result<timer_id> at(time_point deadline, callback cb) noexcept {
    return at_impl(deadline, static_cast<callback&&>(cb));
  }

  // The same three for a callable that is not a callback yet (a lambda, a function): it is built
  // straight into the timer's slot instead of into a temporary that is then moved there. Overload
  // resolution prefers these (no conversion); they accept exactly what the callback parameter
  // accepts, and behave the same.
  template <class Rep, class Period, class F, class = detail::enable_if_direct<F, callback>>
  result<timer_id> after(std::chrono::duration<Rep, Period> delay, F&& f) noexcept {
    return after_impl(delay, static_cast<F&&>(f));
  }
  template <class Rep, class Period, class F, class = detail::enable_if_direct<F, callback>>
  result<timer_id> every(std::chrono::duration<Rep, Period> period, F&& f) noexcept {
    return every_impl(period, static_cast<F&&>(f));
  }
  template <class F, class = detail::enable_if_direct<F, callback>>
  result<timer_id> at(time_point deadline, F&& f) noexcept {
    return at_impl(deadline, static_cast<F&&>(f));
  }

  // Always inline when built for speed, as after() is: out of line (GCC's choice once a program
  // cancels from two places) an arm + cancel cost 131 instructions instead of 95 (TimerScaling).
  TINYLOOP_ALWAYS_INLINE errc cancel(timer_id id) noexcept {
    assert_loop_thread();
    const std::uint32_t i = id.index();
    if (!timers_.live(i, id.generation())) return errc::not_found;
    heap_.erase(i);           // not queued while it fires: nothing to do then
    timers_[i].cb = nullptr;  // empty while it fires: fire_timers() holds it
    timers_.invalidate(i);
    timers_.recycle(i);
    return errc::ok;
  }

  // ---- signals ------------------------------------------------------------------------------

  errc watch_signal(int signo, signal_callback cb) noexcept {
    assert_loop_thread();
#if TINYLOOP_HOSTED
    if constexpr (!Port::has_signals) {
      (void)signo;
      return errc::unsupported;
    } else {
      if (signo <= 0 || signo >= detail::signal_limit || !cb) return errc::invalid_argument;
      // A synchronous fault's handler must not return (the instruction would fault again, forever):
      // the loop's handler only records the signal, so these cannot be watched.
      if (signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE || signo == SIGILL) return errc::invalid_argument;
      if (status_ != errc::ok) return status_;
      for (std::size_t i = 0; i < signal_count_; ++i)
        if (signals_[i].signo == signo) return errc::already_exists;
      if (signal_count_ == Config::max_signals) return errc::full;
      if (signal_machinery_ == nullptr) {
        // The first watch sets the signal state up (see signal_machinery()). The target is written
        // before claim() publishes it to the handler, and only now: once a signal of this loop was
        // claimed, its handler may read the target at any time.
        signal_target_ = {&event_loop::signal_arrived, this};
        for (std::size_t i = 0; i < Config::max_signals; ++i) signals_.construct(i);
        signal_machinery_ = &event_loop::signal_machinery;
      }
      if (!detail::signal_hub::claim(signo, &signal_target_)) return errc::already_exists;  // another loop
      if constexpr (port_signals) {
        // The port's registration before the disposition: a signal that arrives in between meets the
        // previous disposition (and may also reach the callback); in the other order our handler
        // could swallow it unrecorded.
        const errc e = port_.watch_signal(signo, detail::signal_token(signo));
        if (e != errc::ok) {
          os_errno_ = port_.last_errno();
          detail::signal_hub::release(signo);
          return e;
        }
      }
      watched_signal& w = signals_[signal_count_];
      struct sigaction sa {};
      sa.sa_handler = port_signals ? &detail::signal_hub::absorb : &detail::signal_hub::handler;
      sigfillset(&sa.sa_mask);  // one handler at a time keeps the handler trivially reentrant
      sa.sa_flags = SA_RESTART;
      if (::sigaction(signo, &sa, &w.previous) != 0) {
        const int err = errno;
        if constexpr (port_signals) (void)port_.unwatch_signal(signo);
        os_errno_ = err;
        detail::signal_hub::release(signo);
        return err == EINVAL ? errc::invalid_argument : errc::os_error;  // SIGKILL, SIGSTOP
      }
      w.signo = signo;
      w.cb = static_cast<signal_callback&&>(cb);
      ++signal_count_;
      return errc::ok;
    }
#else
    (void)signo;
    (void)cb;
    return errc::unsupported;
#endif
  }

  errc unwatch_signal(int signo) noexcept {
    assert_loop_thread();
#if TINYLOOP_HOSTED
    if constexpr (!Port::has_signals) {
      (void)signo;
      return errc::unsupported;
    } else {
      if (signo <= 0 || signo >= detail::signal_limit) return errc::invalid_argument;
      for (std::size_t i = 0; i < signal_count_; ++i) {
        if (signals_[i].signo != signo) continue;
        // The disposition first: while the port's knote still records, no signal is swallowed.
        restore_signal(signo);
        errc e = errc::ok;
        if constexpr (port_signals) {
          // Unwatched whatever the port says (as remove() does for a source); its error is returned.
          e = port_.unwatch_signal(signo);
          if (e != errc::ok) os_errno_ = port_.last_errno();
        }
        if (running_signal_ != 0) {
          // Its callback is running: keep the slot until it returns (run_signals() compacts).
          signals_[i].signo = 0;
        } else {
          signals_[i] = static_cast<watched_signal&&>(signals_[--signal_count_]);
          signals_[signal_count_].cb = nullptr;
        }
        return e;
      }
      return errc::not_found;
    }
#else
    (void)signo;
    return errc::unsupported;
#endif
  }

  // ---- any thread -----------------------------------------------------------------------------

  errc post(callback cb) noexcept {
    if (!cb) return errc::invalid_argument;
    // The first post() links the post phase (see post_machinery_). The pointer is set only after
    // the status test passed, and status_ never changes after construction, so a set pointer
    // stands for that test: one load on the usual path, as before.
    // relaxed load and store: the push's release store publishes the pointer with the item (see
    // run_phase()); producers that race here store the same value.
    if (post_machinery_.load(std::memory_order_relaxed) == nullptr) {
      if (status_ != errc::ok) return status_;
      post_machinery_.store(&event_loop::post_machinery, std::memory_order_relaxed);
    }
    if (!posts_.try_push(static_cast<callback&&>(cb))) return errc::full;
    notify();
    return errc::ok;
  }

  void wake() noexcept {
    woken_.store(true, std::memory_order_relaxed);  // ordered before the check by notify()'s fence
    notify();
  }

  void stop() noexcept {
    stop_.store(true, std::memory_order_relaxed);  // ordered before the check by notify()'s fence
    notify();
  }

  errc attach(async_hook& h) noexcept {
    assert_loop_thread();
    if (h.loop_ != nullptr) return errc::already_exists;
    hook_runner_ = [](event_loop& l) noexcept { return l.run_hooks(); };  // see hook_runner_
    h.loop_ = this;
    h.next_ = hooks_;
    hooks_ = &h;
    // A trigger() that came while the hook was detached is delivered now (found by the fuzzer).
    if (h.triggered_.load(std::memory_order_relaxed)) hooks_pending_.store(true, std::memory_order_relaxed);
    return errc::ok;
  }

  errc detach(async_hook& h) noexcept {
    assert_loop_thread();
    for (async_hook** p = &hooks_; *p != nullptr; p = &(*p)->next_) {
      if (*p == &h) {
        if (hook_cursor_ == &h) hook_cursor_ = h.next_;
        *p = h.next_;
        h.next_ = nullptr;
        h.loop_ = nullptr;
        // A detached hook has nothing pending: a later attach() starts fresh.
        h.triggered_.store(false, std::memory_order_relaxed);
        return errc::ok;
      }
    }
    return errc::not_found;
  }

  void trigger(async_hook& h) noexcept {
    // relaxed stores: both are ordered before notify()'s fence, and the loop reads them with
    // acquire exchanges after its own fence.
    h.triggered_.store(true, std::memory_order_relaxed);
    hooks_pending_.store(true, std::memory_order_release);
    notify();
  }

  // ---- running --------------------------------------------------------------------------------

  errc run() noexcept {
    bind_thread();
    if (status_ != errc::ok) return status_;
    stalled_ = false;
    for (;;) {
      if (stop_.exchange(false, std::memory_order_acquire)) return errc::ok;
      if (!alive()) return errc::ok;
      const errc e = iterate(true);
      if (e != errc::ok) return e;
      if (stalled_) return errc::ok;
    }
  }

  errc run_once() noexcept { return run_one(true); }
  errc poll() noexcept { return run_one(false); }

  time_point now() const noexcept { return now_; }
  // True between a stop() and the return of the run call it ends. Extensions that run several
  // callbacks per on_trigger (worker_pool) check it between them, as the loop does.
  bool stop_requested() const noexcept { return stop_.load(std::memory_order_relaxed); }
  std::size_t pending_timers() const noexcept { return timers_.size(); }
  std::size_t active_sources() const noexcept { return sources_.size(); }

 private:
  struct source {  // fd and interest are set by add(), and read only while the source is live
    int fd;
    events interest;
    io_callback cb;
  };
  struct timer {
    duration period{};  // zero for one-shot timers
    callback cb;
  };
  struct fetched_event {
    std::uint64_t token;
    events ev;
  };
  struct watched_signal {
    int signo = 0;
    signal_callback cb;
#if TINYLOOP_HOSTED
    struct sigaction previous {};
#endif
  };

  // ---- the wake protocol ----------------------------------------------------------------------
  //
  // Producers (post, wake, stop, trigger, the signal handler) publish their work, then call
  // notify(). The loop, before it blocks, sets sleeping_ and re-checks for work. Both sides touch
  // sleeping_ with an acq_rel read-modify-write, so the two RMWs are ordered in its modification
  // order and the later one reads from the earlier (a Dekker handshake without fences, which
  // ThreadSanitizer cannot model and GCC's -Wtsan rejects):
  //   - producer's RMW first: the loop's exchange acquires it, so the work published before it
  //     is visible to the loop's re-check, and the loop does not block;
  //   - loop's exchange first: the producer's RMW reads 1 and the producer wakes the loop.
  // Either the producer sees the sleeper or the loop sees the work; never neither. Among producers
  // that see it, the wake_pending_ exchange lets exactly one issue the port's wake() per sleep.
  // The model of this protocol that spin checks is in tests/model/.
  void notify() noexcept {
    // A read that is an RMW (adding 0): see above for why a plain load would not do. fetch_add,
    // not fetch_or: x86 has no fetch-or that returns the old value, so that one compiles to a
    // compare-exchange loop that retries while other producers write the line; this is one xadd.
    if (sleeping_.fetch_add(0, std::memory_order_acq_rel) == 0) return;  // awake: it re-checks
    // acq_rel: the loop's exchange that clears the flag reads from ours, so our work happens-before
    // its next check even when we skip the wake.
    if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
    port_.wake();
  }

  // A post whose producer is still between claiming and publishing its slot does not count: the
  // loop may sleep, and that producer's notify() wakes it once the post is visible.
  bool work_pending() const noexcept {
    return posts_.front_ready() || woken_.load(std::memory_order_relaxed) ||
           stop_.load(std::memory_order_relaxed) || signal_pending_.load(std::memory_order_relaxed) ||
           hooks_pending_.load(std::memory_order_relaxed);
  }

  static void signal_arrived(void* self) noexcept {
    auto* loop = static_cast<event_loop*>(self);
    loop->signal_pending_.store(true, std::memory_order_release);
    loop->notify();
  }

  // ---- signals the port watches itself (native_signals) ---------------------------------------

  static constexpr bool port_signals = detail::native_signals<Port>::value;

  // The sink's share: on the loop thread, inside the port's wait. Recorded as the handler does, so
  // run_signals() serves both ways in; pending[] is a flag, so reports coalesce until it runs.
  void signal_fetched(std::uint64_t token) noexcept {
#if TINYLOOP_HOSTED
    const auto signo = static_cast<std::uint32_t>(token);
    if (signo == 0 || signo >= static_cast<std::uint32_t>(detail::signal_limit)) return;
    detail::signal_hub::pending[signo].store(true, std::memory_order_relaxed);
    signal_pending_.store(true, std::memory_order_relaxed);  // loop thread: read by this thread only
#else
    (void)token;
#endif
  }

  // A non-blocking iteration must still ask such a port, even with no fds, or signals would wait
  // for the next blocking one.
  bool signals_in_port() const noexcept {
    if constexpr (port_signals)
      return signal_count_ != 0;
    else
      return false;
  }

  // ---- the signal machinery, reached only through signal_machinery_ ---------------------------
  //
  // The first watch_signal() sets the pointer, the signal target and the table up. The signal
  // phase and the destructor call through it, so a program that never watches a signal
  // instantiates none of this (no run_signals(), no sigaction() restore loop, no handler) and its
  // constructor and destructor do not touch the table: code size on small targets.
  enum class signal_step : unsigned char { run, close };

  static std::size_t signal_machinery(event_loop& loop, signal_step step) noexcept {
    if (step == signal_step::run) return loop.run_signals();
    for (std::size_t i = 0; i < loop.signal_count_; ++i) loop.restore_signal(loop.signals_[i].signo);
    for (std::size_t i = 0; i < Config::max_signals; ++i) loop.signals_.destroy(i);
    return 0;
  }

  // ---- one iteration ----------------------------------------------------------------------------

  errc run_one(bool may_wait) noexcept {
    bind_thread();
    if (status_ != errc::ok) return status_;
    const errc e = iterate(may_wait);
    stop_.store(false, std::memory_order_relaxed);  // a stop ends the run call it interrupted
    return e;
  }

  errc iterate(bool may_wait) noexcept {
    for (;;) {
      now_ = clock::now();
      arm_limit_ = next_sequence_;
      std::size_t ran = run_ready();
      if (stopping()) break;

      const bool block = may_wait && ran == 0;
      const errc e = wait_for_events(block ? next_deadline() : time_point::min());
      if (e != errc::ok) return e;
      // A wait that may have slept starts a new iteration: the callbacks of what it fetched, and
      // the timers they arm, must see the time the events arrived, not the time we fell asleep.
      if (slept_) now_ = clock::now();
      ran += run_io();
      if constexpr (port_signals) ran += run_phase(3);  // what the port fetched runs now, as I/O does
      if (ran != 0 || !block || stopping()) break;
      // Nothing ran although we waited: a timer came due, or work arrived that this iteration
      // had not seen; or a wake() asked us to return.
      if (woken_.exchange(false, std::memory_order_relaxed)) break;
      if constexpr (detail::has_stalled<port_type>::value) {
        if (port_.stalled() && !hooks_keep_alive()) {  // nothing can ever arrive: the sim port without the test's help
          stalled_ = true;
          break;
        }
      }
    }
    woken_.store(false, std::memory_order_relaxed);
    return errc::ok;
  }

  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  // Runs what is ready, phase by phase: leftover fetched I/O, due timers, posts, signals, hooks.
  // A stop() ends the iteration inside a phase; the next iteration then starts with the phase
  // after it, so a callback that stops every time it runs (a self-rearming timer, say) cannot keep
  // the later phases from ever running (found by the loop fuzzer).
  // Always inline (one caller): left to GCC -O3's budget it went out of line, +17 instructions per
  // iteration.
  TINYLOOP_ALWAYS_INLINE std::size_t run_ready() noexcept {
    std::size_t ran = 0;
#if !defined(__OPTIMIZE_SIZE__)
    if (first_phase_ == 0) {  // the usual case, spelled out so that each phase's test is inlined
      // Forced inline: GCC's own choice flips with unrelated changes elsewhere and then every
      // iteration pays five calls (+100 instructions per iteration, measured).
      auto stopped_after = [&](unsigned phase) TINYLOOP_LAMBDA_INLINE {
        ran += run_phase(phase);
        if (!stopping()) return false;
        first_phase_ = (phase + 1) % phase_count;
        return true;
      };
      (void)(stopped_after(0) || stopped_after(1) || stopped_after(2) || stopped_after(3) || stopped_after(4));
      return ran;
    }
#endif
    unsigned phase = first_phase_;
    first_phase_ = 0;
    for (unsigned n = 0; n < phase_count; ++n) {
      ran += run_phase(phase);
      if (++phase == phase_count) phase = 0;
      if (stopping()) {
        first_phase_ = phase;
        break;
      }
    }
    return ran;
  }

  static constexpr unsigned phase_count = 5;

  TINYLOOP_ALWAYS_INLINE std::size_t run_phase(unsigned phase) noexcept {
    switch (phase) {
      case 0: return run_io();
      case 1: return heap_.empty() ? 0 : fire_timers();
      case 2: {
        // Null only while no post() is visible to us yet. size_approx() may count a claim (a
        // relaxed CAS) whose producer's store of the pointer we do not see; that post is then not
        // published to us either, and waits like one try_pop_single() finds unpublished: every
        // producer stores (or reads) the pointer before its push's release store of the slot, so
        // the acquire load that first sees the slot published (work_pending()'s front_ready()
        // before the loop sleeps, which then does not sleep) makes the pointer happen-before
        // every later load here (write-read or read-read coherence: no store ever resets it).
        // Built for speed, the pointer is tested first: in a loop that never had a post, one
        // load is the whole phase (2 instructions fewer per iteration). Built for size, the other
        // order is the smaller code (26 bytes on x86-64).
        if (TINYLOOP_SMALL_CODE && posts_.size_approx() == 0) return 0;
        const auto machinery = post_machinery_.load(std::memory_order_relaxed);
        if (machinery == nullptr || (!TINYLOOP_SMALL_CODE && posts_.size_approx() == 0)) return 0;
        return machinery(*this, post_step::run);
      }
      case 3:
        if constexpr (Port::has_signals)
          if (signal_pending_.load(std::memory_order_relaxed) && signal_machinery_ != nullptr)
            return signal_machinery_(*this, signal_step::run);
        return 0;
      default:
        if (!hooks_pending_.load(std::memory_order_relaxed)) return 0;
        if (hook_runner_ != nullptr) return hook_runner_(*this);
        // A trigger() on a hook that was never attached: attach() delivers it (it checks the hook).
        hooks_pending_.store(false, std::memory_order_relaxed);
        return 0;
    }
  }

  // What the last wait fetched and no stop() left behind. Events come only for sources that add()
  // registered, and add() sets io_runner_.
  std::size_t run_io() noexcept {
    return fetched_next_ < fetched_count_ && io_runner_ != nullptr ? io_runner_(*this) : 0;
  }

  time_point next_deadline() const noexcept {
    return heap_.empty() ? time_point::max() : heap_.top_deadline();
  }

  errc wait_for_events(time_point deadline) noexcept {
    fetched_count_ = fetched_next_ = 0;
    slept_ = false;
    auto sink = [this](std::uint64_t token, events ev) noexcept {
      if constexpr (port_signals)
        if (detail::is_signal_token(token)) return signal_fetched(token);
      if (fetched_count_ < Config::events_per_wait) fetched_[fetched_count_++] = {token, ev};
    };
    if (deadline == time_point::min()) {
      // Nothing to wait for and no fds: skip the syscall. Wakes are drained by the next real wait.
      if (sources_.size() == 0 && !signals_in_port()) return errc::ok;
    } else {
      sleeping_.exchange(1, std::memory_order_acq_rel);  // pairs with notify()'s RMW
      if (work_pending())
        deadline = time_point::min();
      else
        slept_ = true;  // only a wait that may have slept needs a fresh now_
    }
    const errc e = port_.wait(deadline, sink);
    sleeping_.store(0, std::memory_order_relaxed);  // (already 0 after a poll: only the loop sets it)
    // RMW, not a store: a producer that saw `true` here and skipped its wake is ordered before us.
    // Also after a poll: the port may have drained its wake channel, and a wake_pending_ left set
    // would make every producer skip its wake() during our next sleep (found by spin: tests/model/).
    wake_pending_.exchange(false, std::memory_order_acq_rel);
    if (e != errc::ok) os_errno_ = port_.last_errno();
    return e;
  }

  std::size_t dispatch_io() noexcept {
    std::size_t ran = 0;
    while (fetched_next_ < fetched_count_ && !stopping()) {
      const fetched_event f = fetched_[fetched_next_++];
      const auto index = static_cast<std::uint32_t>(f.token);
      const auto gen = static_cast<std::uint32_t>(f.token >> 32);
      if (!sources_.live(index, gen)) continue;  // removed after the wait fetched it
      source& s = sources_[index];
      const events ev = f.ev & (s.interest | events::error | events::hangup);
      if (!any(ev)) continue;  // paused by modify() after the wait fetched it
      // The callback runs from a local, so that removing its own source frees the slot at once
      // (add() inside the callback may reuse it, even at full capacity).
      io_callback cb = static_cast<io_callback&&>(s.cb);
      cb(ev);
      if (sources_.live(index, gen)) sources_[index].cb = static_cast<io_callback&&>(cb);
      ++ran;
    }
    return ran;
  }

  template <class Rep, class Period, class F>
  TINYLOOP_ALWAYS_INLINE result<timer_id> after_impl(std::chrono::duration<Rep, Period> delay, F&& f) noexcept {
    assert_loop_thread();
    return arm(detail::add_saturating(now_, detail::ceil_saturating<duration>(delay)), duration::zero(),
               static_cast<F&&>(f));
  }

  template <class Rep, class Period, class F>
  TINYLOOP_ALWAYS_INLINE result<timer_id> every_impl(std::chrono::duration<Rep, Period> period, F&& f) noexcept {
    assert_loop_thread();
    const duration p = detail::ceil_saturating<duration>(period);
    if (p <= duration::zero()) return errc::invalid_argument;
    fire_periodic_ = &event_loop::fire_periodic;  // links the re-arm (see fire_periodic_)
    return arm(detail::add_saturating(now_, p), p, static_cast<F&&>(f));
  }

  template <class F>
  TINYLOOP_ALWAYS_INLINE result<timer_id> at_impl(time_point deadline, F&& f) noexcept {
    assert_loop_thread();
    // A deadline in the past is due now. Clamping keeps it behind the timers that are due in the
    // current iteration, which only a timer armed before the iteration may be.
    return arm(deadline < now_ ? now_ : deadline, duration::zero(), static_cast<F&&>(f));
  }

  template <class F>
  TINYLOOP_ALWAYS_INLINE result<source_id> add_impl(int fd, events interest, F&& f) noexcept {
    assert_loop_thread();
    if constexpr (!Port::has_fds) {
      (void)fd;
      (void)interest;
      (void)f;
      return errc::unsupported;
    } else {
      if (status_ != errc::ok) return status_;
      if (fd < 0 || !any(interest & (events::read | events::write)) || detail::is_empty_callable(f))
        return errc::invalid_argument;
      const std::uint32_t i = sources_.acquire();
      if (i == sources_.npos) return errc::full;
      const std::uint32_t gen = sources_.generation(i);
      const errc e = port_.add(fd, interest, detail::make_token(i, gen));
      if (e != errc::ok) {
        os_errno_ = port_.last_errno();
        sources_.invalidate(i);
        sources_.recycle(i);
        return e;
      }
      source& s = sources_[i];
      s.fd = fd;
      s.interest = interest;
      // A free slot's callback is empty (remove() leaves it so): built in it, as arm() does.
      if constexpr (detail::is_inplace_function<std::decay_t<F>>::value)
        s.cb.take(f);
      else
        s.cb.emplace_empty(static_cast<F&&>(f));
      ++interested_sources_;
      io_runner_ = [](event_loop& l) noexcept { return l.dispatch_io(); };  // see io_runner_
      return source_id(i, gen);
    }
  }

  // `f` is a callback (moved into the slot) or any callable a callback can be built from (built in
  // the slot). Only a callback or a pointer can be empty; the test compiles away for the rest.
  template <class F>
  TINYLOOP_ALWAYS_INLINE result<timer_id> arm(time_point deadline, duration period, F&& f) noexcept {
    if (detail::is_empty_callable(f)) return errc::invalid_argument;
    const std::uint32_t i = timers_.acquire();
    if (i == timers_.npos) return errc::full;
    timer& t = timers_[i];
    // A free slot's callback is always empty (cancel() and fire_timers() leave it so), so the new
    // one is built in it: nothing to destroy, no self-move check.
    if constexpr (detail::is_inplace_function<std::decay_t<F>>::value)
      t.cb.take(f);
    else
      t.cb.emplace_empty(static_cast<F&&>(f));
    t.period = period;
    heap_.push(i, deadline, next_sequence_++);
    return timer_id(i, timers_.generation(i));
  }

  std::size_t fire_timers() noexcept {
    std::size_t ran = 0;
    while (!heap_.empty() && !stopping()) {  // a stop() before the run, or by the last callback
      // Only timers armed before this iteration began: one armed by a callback, even with zero
      // delay, waits for the next iteration, so a self-rearming timer cannot starve I/O.
      const time_point deadline = heap_.top_deadline();
      if (deadline > now_ || heap_.top_sequence() >= arm_limit_) break;
      const std::uint32_t i = heap_.pop_top();
      ++ran;
      // The callback runs from a local. A one-shot timer has fired: its id is stale and its slot
      // free before the callback runs, so re-arming inside works even at full capacity. A
      // periodic timer keeps its slot unless the callback cancels it (which frees it at once).
      timer& t = timers_[i];
      detail::assume(static_cast<bool>(t.cb));  // a queued timer has a callback: no empty case
      callback cb(static_cast<callback&&>(t.cb));
      if (t.period == duration::zero()) {
        timers_.invalidate(i);
        timers_.recycle(i);
        cb();
        detail::assume(static_cast<bool>(cb));  // the local still holds it: its destructor has no empty case
      } else {
        fire_periodic_(*this, i, deadline, cb);  // set by every(), the only source of a period
      }
    }
    return ran;
  }

  // A periodic timer's firing: the callback, then (unless it cancelled its own timer) the next
  // deadline. Reached through fire_periodic_, which every() sets, so a program without periodic
  // timers links none of it; out of line anyway, which keeps fire_timers() small.
  static void fire_periodic(event_loop& loop, std::uint32_t i, time_point deadline, callback& cb) noexcept {
    auto& timers = loop.timers_;
    const std::uint32_t gen = timers.generation(i);
    const duration period = timers[i].period;
    cb();
    if (!timers.live(i, gen)) return;  // cancelled by its own callback
    ::new (static_cast<void*>(&timers[i].cb)) callback(static_cast<callback&&>(cb));  // emptied when it fired
    // Firing n is due at start + n * period. Behind by more than a period: skip to the first
    // multiple after now rather than delivering a burst.
    const time_point now = loop.now_;
    time_point next = detail::add_saturating(deadline, period);
    if (next < now) next = detail::add_saturating(deadline, skip_periods(now - deadline, period));
    loop.heap_.push(i, next, loop.next_sequence_++);
  }

  // The smallest multiple of `period` greater than `behind` (behind >= period > 0). Binary long
  // division by doubling and halving: no 64-bit divide, which on 32-bit cores would pull in libgcc's
  // __aeabi_ldivmod (about 860 bytes on Cortex-M3).
  static duration skip_periods(duration behind, duration period) noexcept {
    duration chunk = period;
    while (chunk <= behind - chunk) chunk += chunk;  // the largest period * 2^k <= behind
    duration skipped = duration::zero();             // a multiple of period, <= behind
    for (; chunk >= period; chunk /= 2)              // halving period * 2^k is exact
      if (chunk <= behind - skipped) skipped += chunk;
    return skipped == behind ? skipped : skipped + period;
  }

  // ---- the post machinery, reached only through post_machinery_ --------------------------------
  //
  // post() sets the pointer. The post phase and the destructor's disposal of unrun posts call
  // through it, so a program that never posts links neither (code size, as for signals).
  enum class post_step : unsigned char { run, discard };

  // Built for size, both steps are one loop. Built for speed, running has its own, without the
  // step tests per post (2% of the instructions on PostBatch).
  static std::size_t post_machinery(event_loop& loop, post_step step) noexcept {
    if constexpr (TINYLOOP_SMALL_CODE) return loop.run_posts(step);
    if (step == post_step::run) return loop.run_posts(post_step::run);
    loop.posts_.destroy_leftovers();
    return 0;
  }

  // Discarding, in the destructor, no producer is left: the snapshot is every post, all published,
  // and a stop() left over must not keep any.
  std::size_t run_posts(post_step step) noexcept {
    // A snapshot: callbacks posted while we drain run next iteration, so one iteration is bounded.
    std::size_t budget = posts_.size_approx();
    std::size_t ran = 0;
    callback cb;
    while (budget-- != 0 && (step == post_step::discard || !stopping()) && posts_.try_pop_single(cb)) {
      if (step == post_step::run) cb();
      cb = nullptr;
      ++ran;
    }
    return ran;
  }

  std::size_t run_signals() noexcept {
    std::size_t ran = 0;
#if TINYLOOP_HOSTED
    // acquire: pairs with signal_arrived()'s release, making the per-signal flags visible.
    if (!signal_pending_.exchange(false, std::memory_order_acquire)) return 0;
    for (std::size_t i = 0; i < signal_count_; ++i) {
      if (stopping()) {
        signal_pending_.store(true, std::memory_order_relaxed);  // finish next time
        break;
      }
      const int signo = signals_[i].signo;
      if (signo == 0 || !detail::signal_hub::take(signo)) continue;
      running_signal_ = signo;
      signals_[i].cb(signo);
      running_signal_ = 0;
      ++ran;
    }
    // Drop slots unwatched by their own callback.
    for (std::size_t i = 0; i < signal_count_;) {
      if (signals_[i].signo == 0) {
        signals_[i] = static_cast<watched_signal&&>(signals_[--signal_count_]);
        signals_[signal_count_].cb = nullptr;
      } else {
        ++i;
      }
    }
#endif
    return ran;
  }

  std::size_t run_hooks() noexcept {
    hooks_pending_.exchange(false, std::memory_order_acquire);
    std::size_t ran = 0;
    // The cursor lives in the loop so that detach() inside an on_trigger can step it past the
    // hook it unlinks (found by the loop fuzzer: tests/fuzz/corpus/loop/regress-hook-detached-by-hook).
    for (async_hook* h = hooks_; h != nullptr; h = hook_cursor_) {
      hook_cursor_ = h->next_;
      if (stopping()) {
        hooks_pending_.store(true, std::memory_order_relaxed);  // the rest run next time
        break;
      }
      // acq_rel: the triggering thread's work happens-before on_trigger.
      if (h->triggered_.exchange(false, std::memory_order_acq_rel)) {
        h->on_trigger(h->context);
        ++ran;
      }
    }
    hook_cursor_ = nullptr;
    return ran;
  }

  bool hooks_keep_alive() const noexcept {
    for (const async_hook* h = hooks_; h != nullptr; h = h->next_)
      if (h->keeps_alive != nullptr && h->keeps_alive(h->context)) return true;
    return false;
  }

  bool alive() const noexcept {
    return interested_sources_ != 0 || timers_.size() != 0 || signal_count_ != 0 || posts_.size_approx() != 0 ||
           hooks_keep_alive();
  }

  void restore_signal(int signo) noexcept {
#if TINYLOOP_HOSTED
    for (std::size_t i = 0; i < signal_count_; ++i) {
      if (signals_[i].signo == signo) {
        ::sigaction(signo, &signals_[i].previous, nullptr);
        detail::signal_hub::release(signo);
        return;
      }
    }
#else
    (void)signo;
#endif
  }

  void bind_thread() noexcept {
#if TINYLOOP_HOSTED && !defined(NDEBUG)
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
#endif
  }
  void assert_loop_thread() const noexcept {
#if TINYLOOP_HOSTED && !defined(NDEBUG)
    TINYLOOP_ASSERT(owner_.load(std::memory_order_relaxed) == std::this_thread::get_id());
#endif
  }

  // Loop-thread state.
  port_type port_;
  errc status_ = errc::ok;
  int os_errno_ = 0;
  time_point now_{};
  detail::slot_table<source, Config::max_sources> sources_;
  std::size_t interested_sources_ = 0;
  fetched_event fetched_[Config::events_per_wait];
  std::size_t fetched_count_ = 0;
  std::size_t fetched_next_ = 0;
  bool slept_ = false;  // the last wait_for_events() let the port block
  detail::slot_table<timer, Config::max_timers> timers_;
  detail::timer_heap<time_point, Config::max_timers> heap_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t arm_limit_ = 0;
  bool stalled_ = false;
  unsigned first_phase_ = 0;  // see run_ready()
  // Constructed by the first watch_signal(), destroyed by signal_machinery(): all or none.
  detail::manual_array<watched_signal, (Port::has_signals && Config::max_signals > 0 ? Config::max_signals : 1)> signals_;
  std::size_t signal_count_ = 0;
  int running_signal_ = 0;
  detail::signal_target signal_target_;  // set by the first watch_signal(), see signal_machinery()
  std::size_t (*signal_machinery_)(event_loop&, signal_step) noexcept = nullptr;  // set by watch_signal()
  async_hook* hooks_ = nullptr;
  async_hook* hook_cursor_ = nullptr;  // run_hooks()'s next hook, stepped by detach()
  // The optional phases are reached through pointers that add() and attach() set, so a program
  // that never registers a source or a hook links none of their code (flash on a microcontroller).
  std::size_t (*io_runner_)(event_loop&) noexcept = nullptr;
  std::size_t (*hook_runner_)(event_loop&) noexcept = nullptr;
  void (*fire_periodic_)(event_loop&, std::uint32_t, time_point, callback&) noexcept = nullptr;  // set by every()
#if TINYLOOP_HOSTED && !defined(NDEBUG)
  std::atomic<std::thread::id> owner_{};
#endif

  // Shared with other threads and interrupt handlers.
  detail::bounded_queue<callback, Config::post_capacity, false> posts_;  // the destructor empties it
  alignas(TINYLOOP_CACHE_LINE) std::atomic<unsigned> sleeping_{0};
  // Set by the first post(), read by every post() (on this line, which notify() writes anyway).
  // Lock-free: post() runs in interrupt handlers.
  using post_runner = std::size_t (*)(event_loop&, post_step) noexcept;
  std::atomic<post_runner> post_machinery_{nullptr};
  static_assert(std::atomic<post_runner>::is_always_lock_free, "tinyloop: post() needs lock-free pointer atomics");
  // Booleans held in atomic<uint8_t> rather than atomic<bool>: libstdc++ wraps atomic<bool>'s
  // load() and exchange() in functions that are not always-inline, and at -Os GCC calls them out of
  // line from every use (76 bytes of flash on Cortex-M3).
  using flag = std::atomic<std::uint8_t>;
  flag wake_pending_{false};
  flag woken_{false};
  flag stop_{false};
  flag signal_pending_{false};
  flag hooks_pending_{false};
};

// ==============================================================================================
// 7. worker_pool (hosted ports only)
// ==============================================================================================

#if TINYLOOP_HOSTED
#define TINYLOOP_HAS_WORKER_POOL 1

// =============================================================================================================
// worker_pool: runs blocking or CPU-heavy work on Threads threads; every done() runs on the loop thread.
//
// Threads:   any thread may call submit() and cancel(); the constructor and the destructor run on the loop
//            thread; done() always runs on the loop thread (inside run()/run_once()/poll(), or in ~worker_pool).
// Memory:    Capacity item slots live inside the pool; the threads are started in the constructor, which is
//            the only place the pool allocates (thread stacks). Nothing after that allocates.
// Item life: free -> queued -> running -> finished   (done(ok) on the loop thread)
//                          `-> cancelled             (done(cancelled) on the loop thread, work destroyed unrun)
//            The two ways out of `queued` are compare-exchanges on the slot's tag word, so a cancel() racing
//            a worker's pickup has exactly one winner.
// Queues:    free slots: a tagged Treiber stack (no spurious "full" while a slot is being returned);
//            work:       detail::bounded_queue (MPMC: submitters -> workers) of slot indices;
//            completed:  detail::bounded_queue (MPSC: workers/cancellers -> loop) of slot indices.
//            A slot index is in each ring at most once (a slot returns to the free stack only after both
//            its work-ring entry was consumed and its done() ran), so no ring ever needs more cells than it
//            has (the work ring's push may still wait a moment for a preempted worker: see push_work).
// Wakes:     completions reach the loop through an async_hook: trigger() is coalesced by the loop, and
//            keeps_alive() holds run() open while any done() is outstanding. Idle workers sleep on a
//            pthread condition variable; submit() only takes the mutex when a worker is asleep.
// Loop:      any type with status(), attach(async_hook&), detach(async_hook&), trigger(async_hook&) and a
//            nested async_hook, as event_loop has. The pool is constructed and destroyed on the loop
//            thread, before the loop is destroyed; destroying it from one of its own done()s is fine.
// =============================================================================================================

namespace detail {
// The smallest power of two >= n, and at least 2 (what bounded_queue accepts).
constexpr std::size_t queue_capacity_for(std::size_t n) noexcept {
  std::size_t p = 2;
  while (p < n) p <<= 1;
  return p;
}
}  // namespace detail

template <class Loop, std::size_t Threads = 2, std::size_t Capacity = 64, std::size_t Bytes = 4 * sizeof(void*)>
class worker_pool {
  static_assert(Threads >= 1, "worker_pool: Threads must be at least 1");
  static_assert(Capacity >= 1 && Capacity <= (std::size_t{1} << 30),
                "worker_pool: Capacity must be between 1 and 2^30 work items");
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "worker_pool needs lock-free 64-bit atomics (slot tags and the free-stack head are 64-bit)");

 public:
  using work_function = inplace_function<void(), Bytes>;
  using done_function = inplace_function<void(errc), Bytes>;

  explicit worker_pool(Loop& loop) noexcept : loop_(loop) {
    for (std::size_t i = Capacity; i-- > 0;) {
      push_free(static_cast<std::uint32_t>(i));
    }
    hook_.on_trigger = &on_trigger;
    hook_.keeps_alive = &keeps_alive;
    hook_.context = this;
    // Relaxed stores to status_ here: the threads that read it later were started after (pthread_create
    // synchronizes) or got the pool from this thread by some synchronizing hand-off.
    if (loop_.status() != errc::ok) {
      status_.store(loop_.status(), std::memory_order_relaxed);
      return;
    }
    const errc attached = loop_.attach(hook_);
    if (attached != errc::ok) {
      status_.store(attached, std::memory_order_relaxed);
      return;
    }
    attached_ = true;
    // Workers start with asynchronous signals blocked (they inherit the creator's mask): a watched signal is
    // then always taken by a thread that is not running user work, and blocking calls in work() never see
    // EINTR because of us. Synchronous signals stay unblocked (blocking them is undefined if they happen).
    sigset_t all, old;
    sigfillset(&all);
    const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (int signo : synchronous) sigdelset(&all, signo);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started_ < Threads; ++started_) {
      if (pthread_create(&threads_[started_], nullptr, &worker_main, this) != 0) break;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (started_ != Threads) {
      status_.store(errc::os_error, std::memory_order_relaxed);
      stop_workers();
    }
  }

  // On the loop thread. Unstarted work is cancelled, running work is waited for, then every outstanding
  // done() runs here (ok or cancelled) before the destructor returns. Destroy the pool before its loop.
  ~worker_pool() {
    if (destroyed_ != nullptr) *destroyed_ = true;  // destroyed by one of its own done()s: see on_trigger()
    // Relaxed: submit() reads it relaxed too; a submit() that still slips in (from a work() running on a
    // worker) is caught by the second cancel pass below, after the join.
    status_.store(errc::cancelled, std::memory_order_relaxed);
    cancel_queued();  // so the workers do not start it; its done() runs below
    stop_workers();
    cancel_queued();
    // Every thread is joined: no producer is left mid-push, so try_pop() fails only when the ring is empty.
    std::uint32_t index = 0;
    while (completed_.try_pop(index)) finish(index);
    if (attached_) loop_.detach(hook_);
    pthread_cond_destroy(&wakeup_);
    pthread_mutex_destroy(&mutex_);
  }

  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // errc::ok, or why the pool cannot run work: the loop's status, os_error when a thread could not start
  // (submit() then returns it and runs nothing), cancelled once the destructor has begun.
  errc status() const noexcept { return status_.load(std::memory_order_relaxed); }

  // Any thread (not a signal handler). Lock-free except for a short mutex hold when a worker is asleep and
  // must be woken. On any error both callbacks are destroyed unrun and nothing else is touched:
  //   invalid_argument  work or done is empty
  //   full              all Capacity slots hold work whose done() has not run yet
  //   status()          the pool could not start, or is being destroyed (a done() run by ~worker_pool)
  result<work_id> submit(work_function work, done_function done) noexcept {
    if (!work || !done) return errc::invalid_argument;
    // Relaxed: only this pool's constructor and destructor write it (see ~worker_pool()).
    const errc st = status_.load(std::memory_order_relaxed);
    if (st != errc::ok) return st;
    const std::uint32_t index = acquire_slot();
    if (index == no_slot) return errc::full;
    slot& s = slots_[index];
    // The free-stack pop (acquire) synchronized with the push that returned this slot, so the previous
    // item's callbacks are destroyed and nobody else touches s until we publish it below.
    // Live generations are odd, free ones even (as for timer_id): a default work_id (0) never matches.
    const std::uint32_t generation = generation_of(s.tag.load(std::memory_order_relaxed)) + 1;
    s.work = std::move(work);
    s.done = std::move(done);
    s.refs.store(2, std::memory_order_relaxed);  // used if it is cancelled; published by the release below
    // Counted before the item can possibly complete, so the loop's decrement can never come first
    // (both are RMWs on one atomic and the increment happens-before the decrement).
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    // Release: cancel() acquires this value in its CAS and then may hand the slot to the loop, which
    // destroys s.work / runs s.done: they must see the stores above.
    s.tag.store(pack(generation, state::queued), std::memory_order_release);
    push_work(index);
    wake_worker();
    return work_id(index, generation);
  }

  // Any thread. ok: the work had not started and never will; its done() runs with errc::cancelled on the
  // loop thread (later, never inside cancel()). not_found: default, stale, already cancelled, running or
  // finished work (too late to cancel).
  errc cancel(work_id id) noexcept {
    if (id.index() >= Capacity) return errc::not_found;
    slot& s = slots_[id.index()];
    std::uint64_t expected = pack(id.generation(), state::queued);
    // The single point of decision against a worker's pickup (same CAS from the same value). Acquire on
    // success: pairs with submit()'s release so the loop, reached through the completion ring, sees the
    // callbacks. Relaxed on failure: nothing is read.
    if (!s.tag.compare_exchange_strong(expected, pack(id.generation(), state::cancelled), std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return errc::not_found;
    stale_entries_.fetch_add(1, std::memory_order_relaxed);  // see reclaim()
    complete(id.index());
    return errc::ok;
  }

 private:
  enum class state : std::uint32_t { free, queued, running, finished, cancelled };
  static constexpr std::uint32_t no_slot = ~std::uint32_t{0};
  static constexpr std::size_t ring_capacity = detail::queue_capacity_for(Capacity);

  struct slot {
    std::atomic<std::uint64_t> tag{0};     // generation << 32 | state; generation odd while in use
    std::atomic<std::uint32_t> refs{0};    // cancelled items: work-ring entry + pending done() (release())
    std::atomic<std::uint32_t> next{no_slot};  // free-stack link
    work_function work;
    done_function done;
  };

  static constexpr std::uint64_t pack(std::uint32_t generation, state st) noexcept {
    return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(st);
  }
  static constexpr std::uint32_t generation_of(std::uint64_t tag) noexcept {
    return static_cast<std::uint32_t>(tag >> 32);
  }
  static constexpr state state_of(std::uint64_t tag) noexcept { return static_cast<state>(tag & 0xffffffffu); }

  // The work ring has a cell per slot and holds at most one entry per slot, so it is never full. try_push
  // can still fail for a moment: the cell at the tail is one a worker took one lap ago and has claimed but
  // not yet released (a handful of instructions, unless that worker is preempted right there). Retrying is
  // the only way not to lose the entry; we yield so a preempted worker can finish.
  void push_work(std::uint32_t index) noexcept {
    for (;;) {
      std::uint32_t entry = index;
      if (work_.try_push(std::move(entry))) return;
      sched_yield();
    }
  }

  // ---- free slots: Treiber stack, head = ABA counter << 32 | index -----------------------------------------
  void push_free(std::uint32_t index) noexcept {
    std::uint64_t head = free_head_.load(std::memory_order_relaxed);
    for (;;) {
      slots_[index].next.store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
      // Release: publishes the link above and everything done to the slot before it was freed (callbacks
      // destroyed, new generation) to the pop that takes it. Failure reloads relaxed: nothing is read.
      if (free_head_.compare_exchange_weak(head, ((head >> 32) + 1) << 32 | index, std::memory_order_release,
                                           std::memory_order_relaxed))
        return;
    }
  }
  std::uint32_t pop_free() noexcept {
    // Acquire (also on failure): the head we read must come with the `next` link its pusher stored. A
    // stale link (the slot was popped and pushed again meanwhile) fails the CAS, because every push bumps
    // the counter: ABA would need 2^32 pushes while this thread is preempted between load and CAS.
    std::uint64_t head = free_head_.load(std::memory_order_acquire);
    for (;;) {
      const auto index = static_cast<std::uint32_t>(head);
      if (index == no_slot) return no_slot;
      const std::uint32_t next = slots_[index].next.load(std::memory_order_relaxed);
      if (free_head_.compare_exchange_weak(head, (head & ~std::uint64_t{0xffffffffu}) | next,
                                           std::memory_order_acquire, std::memory_order_acquire))
        return index;
    }
  }

  // A free slot, or no_slot when every slot holds an item whose done() has not run yet.
  // A cancelled item whose done() already ran can still hold its slot through its work-ring entry:
  // reclaim() discards the entries still in the ring, and an entry a worker has taken is being
  // discarded at this moment (a handful of instructions). stale_entries_ counts those entries and
  // drops only after the slot is back on the free stack, so while it is above zero a slot is about
  // to come free, and we wait for it rather than report a full pool that is not (seen under
  // qemu-user: a worker preempted between its discard and the free-stack push). The acquire loads
  // pair with the release decrements, so the pop after a zero count sees the slot that was pushed.
  std::uint32_t acquire_slot() noexcept {
    std::uint32_t index = pop_free();
    while (index == no_slot && stale_entries_.load(std::memory_order_acquire) > 0) {
      index = reclaim();
      if (index == no_slot) index = pop_free();
      if (index == no_slot) sched_yield();  // a worker holds the entry: let it finish
    }
    return index != no_slot ? index : pop_free();
  }

  // submit() found no free slot. A cancelled item whose done() already ran still holds its slot through
  // its work-ring entry, until a worker pops and discards it, which can take long when every worker is
  // busy. Discard such entries here (live ones go back to the ring) so that cancelling makes room at once.
  // Bounded: at most one pass over the ring. Live entries may end up behind later ones; the pool does not
  // promise FIFO order (several workers never could).
  std::uint32_t reclaim() noexcept {
    std::uint32_t index = 0;
    bool requeued = false;
    std::uint32_t found = no_slot;
    for (std::size_t n = 0; n < ring_capacity && found == no_slot && work_.try_pop(index); ++n) {
      // Relaxed: the state only picks the branch. The entry is ours now, so the item is queued or
      // cancelled and stays so (a racing cancel() turning it cancelled is handled by the worker later).
      if (state_of(slots_[index].tag.load(std::memory_order_relaxed)) == state::cancelled) {
        release(index);
        stale_entries_.fetch_sub(1, std::memory_order_release);  // after the slot is free: see acquire_slot()
        found = pop_free();
      } else {
        push_work(index);
        requeued = true;
      }
    }
    if (requeued) wake_worker();  // a worker may have gone to sleep while we held the entries
    return found;
  }

  // A cancelled item's slot has two owners that finish in either order: its work-ring entry (dropped by
  // whoever pops it) and its pending done() (dropped by the loop). The last one frees the slot. acq_rel:
  // the last one must see the other's writes to the slot. (Work that ran needs no count: its worker
  // consumed the entry before running it, so the loop is the only owner left when done() runs.)
  void release(std::uint32_t index) noexcept {
    if (slots_[index].refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_slot(index);
  }

  // Bumps the generation (every id of the old item is then stale) and returns the slot to the free stack.
  void free_slot(std::uint32_t index) noexcept {
    slot& s = slots_[index];
    const std::uint32_t generation = generation_of(s.tag.load(std::memory_order_relaxed)) + 1;  // even
    // Relaxed: nobody can be waiting on this slot; the free-stack push (release) publishes it.
    s.tag.store(pack(generation, state::free), std::memory_order_relaxed);
    push_free(index);
  }

  // ---- completions -------------------------------------------------------------------------------------
  // Any thread, after the slot reached finished or cancelled. The ring push (release) publishes the state
  // and the slot's callbacks to the loop's pop (acquire); trigger() wakes the loop at most once per sleep.
  // The push cannot fail, not even for a moment (unlike the work ring's): the loop is the only consumer and
  // pops in order, so for the tail cell to be still claimed from the previous lap, the loop would be holding
  // that item while ring_capacity - 1 more sit in the ring and this one arrives: ring_capacity + 1 items
  // in flight, more than the Capacity slots there are.
  void complete(std::uint32_t index, bool notify = true) noexcept {
    std::uint32_t entry = index;
    const bool pushed = completed_.try_push(std::move(entry));
    (void)pushed;
    if (notify) loop_.trigger(hook_);
  }

  // Loop thread, in the destructor: moves every still-queued item to cancelled. Workers may race us for
  // an item; the CAS (as in cancel()) gives it to exactly one side. The destructor drains the ring itself;
  // the trigger this sends is dropped when it detaches the hook.
  void cancel_queued() noexcept {
    bool any = false;
    for (std::uint32_t i = 0; i < Capacity; ++i) {
      // Relaxed load: a stale value only makes the CAS fail and reload; success acquires as in cancel().
      std::uint64_t t = slots_[i].tag.load(std::memory_order_relaxed);
      while (state_of(t) == state::queued) {
        if (slots_[i].tag.compare_exchange_weak(t, pack(generation_of(t), state::cancelled),
                                                std::memory_order_acquire, std::memory_order_relaxed)) {
          stale_entries_.fetch_add(1, std::memory_order_relaxed);
          complete(i, false);
          any = true;
          break;
        }
      }
    }
    if (any) loop_.trigger(hook_);  // once for the batch
  }

  // Loop thread: lets the slot go, then runs its done(). Nothing of the pool is touched after done()
  // returns, so a done() may submit (even into this slot) or destroy the pool (see on_trigger()).
  void finish(std::uint32_t index) noexcept {
    slot& s = slots_[index];
    // Relaxed: ordered after the completion-ring pop (acquire) that handed us this index.
    const bool ran = state_of(s.tag.load(std::memory_order_relaxed)) == state::finished;
    if (!ran) s.work = work_function();  // cancelled: destroyed unrun, here on the loop thread
    done_function done = std::move(s.done);
    // Relaxed: a counter read only by keeps_alive() on this same thread (see submit() for the increment),
    // between iterations: a done() that submits more puts it back up before the loop looks.
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
    if (ran)
      free_slot(index);
    else
      release(index);
    done(ran ? errc::ok : errc::cancelled);
  }

  static void on_trigger(void* ctx) noexcept {
    auto& self = *static_cast<worker_pool*>(ctx);
    // A done() may destroy the pool; the destructor then sets this flag (it also runs every done() left).
    bool destroyed = false;
    self.destroyed_ = &destroyed;
    // Bounded: at most one ring's worth per loop iteration, so done() callbacks that keep submitting quick
    // work cannot starve timers and I/O. The rest is picked up next iteration (we trigger ourselves).
    // A pop that fails because a producer is mid-push is fine: that producer triggers after its push.
    std::uint32_t index = 0;
    for (std::size_t n = 0; n < ring_capacity; ++n) {
      if (!self.completed_.try_pop(index)) {
        self.destroyed_ = nullptr;
        return;
      }
      self.finish(index);
      if (destroyed) return;
      if (self.loop_.stop_requested()) break;  // stop() ends the batch after the done() that asked
    }
    self.destroyed_ = nullptr;
    self.loop_.trigger(self.hook_);
  }

  static bool keeps_alive(void* ctx) noexcept {
    // Relaxed: see finish(). Work submitted from another thread after run() saw zero is, as with post(),
    // a race the caller must order (submit before run(), or keep something else alive).
    return static_cast<worker_pool*>(ctx)->outstanding_.load(std::memory_order_relaxed) != 0;
  }

  // ---- workers -----------------------------------------------------------------------------------------
  void wake_worker() noexcept {
    // Handshake with the worker's "sleepers_ + 1, then re-check the ring" in worker_main, done with RMWs
    // on sleepers_ rather than fences (ThreadSanitizer models RMWs, not fences). All RMWs on sleepers_ are
    // totally ordered. If ours comes after a worker's increment, we read it and signal. If ours comes
    // first, that increment (acq_rel) reads from our RMW or a later one in its release sequence, so our
    // push, sequenced before our RMW, happens-before the worker's re-check, which then finds the entry.
    // A worker counted in sleepers_ holds the mutex until it is inside cond_wait, so once we got the mutex
    // it waits, and the signal cannot be lost. It is sent after unlocking: a worker woken while we still
    // held the mutex would only block on it again.
    if (sleepers_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
    pthread_mutex_lock(&mutex_);
    pthread_mutex_unlock(&mutex_);
    pthread_cond_signal(&wakeup_);
  }

  static void* worker_main(void* arg) noexcept {
    auto& self = *static_cast<worker_pool*>(arg);
    std::uint32_t index = 0;
    for (;;) {
      if (self.work_.try_pop(index)) {
        self.execute(index);
        continue;
      }
      pthread_mutex_lock(&self.mutex_);
      if (self.stopping_) {
        pthread_mutex_unlock(&self.mutex_);
        return nullptr;
      }
      self.sleepers_.fetch_add(1, std::memory_order_acq_rel);  // see wake_worker()
      const bool got = self.work_.try_pop(index);
      // A failed re-check means the ring is empty or a submitter is mid-push; that submitter has not done
      // its RMW yet, so it will see us in sleepers_ and signal. Spurious wakeups just loop around.
      if (!got) pthread_cond_wait(&self.wakeup_, &self.mutex_);
      // Relaxed: an RMW, so it keeps the release sequences above intact; a submitter that still sees us
      // counted only sends a signal nobody needs.
      self.sleepers_.fetch_sub(1, std::memory_order_relaxed);
      pthread_mutex_unlock(&self.mutex_);
      if (got) self.execute(index);
    }
  }

  void execute(std::uint32_t index) noexcept {
    slot& s = slots_[index];
    // The work-ring pop (acquire) synchronized with submit(): the slot's generation and callbacks are
    // visible, and the generation cannot change while our entry holds a reference.
    const std::uint32_t generation = generation_of(s.tag.load(std::memory_order_relaxed));
    std::uint64_t expected = pack(generation, state::queued);
    // Same CAS as cancel(): exactly one of us moves the item out of queued. Relaxed both ways: what we read
    // (the callbacks) was published by the ring pop, and what we write is published by the completion push.
    if (s.tag.compare_exchange_strong(expected, pack(generation, state::running), std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
      s.work();
      s.work = work_function();  // captures are released here, off the loop thread
      // Relaxed: the loop reads it after the completion-ring pop, which the push below publishes.
      s.tag.store(pack(generation, state::finished), std::memory_order_relaxed);
      complete(index);  // from here on the slot is the loop's alone (see release())
      return;
    }
    // Cancelled: cancel() already completed it; only our work-ring entry is left to drop. The count
    // drops after the slot is back on the free stack (release: see acquire_slot()).
    release(index);
    stale_entries_.fetch_sub(1, std::memory_order_release);
  }

  void stop_workers() noexcept {
    pthread_mutex_lock(&mutex_);
    stopping_ = true;
    pthread_cond_broadcast(&wakeup_);
    pthread_mutex_unlock(&mutex_);
    for (std::size_t i = 0; i < started_; ++i) pthread_join(threads_[i], nullptr);
    started_ = 0;
  }

  Loop& loop_;
  typename Loop::async_hook hook_{};
  std::atomic<errc> status_{errc::ok};
  bool attached_ = false;  // loop thread only
  bool* destroyed_ = nullptr;  // loop thread only: set while on_trigger() runs done()s
  std::size_t started_ = 0;
  pthread_t threads_[Threads]{};
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t wakeup_ = PTHREAD_COND_INITIALIZER;
  bool stopping_ = false;  // guarded by mutex_

  // Separate cache lines: submitters hammer the free head, the loop the outstanding count, workers sleepers_.
  alignas(TINYLOOP_CACHE_LINE) std::atomic<std::uint64_t> free_head_{no_slot};
  alignas(TINYLOOP_CACHE_LINE) std::atomic<std::size_t> outstanding_{0};
  alignas(TINYLOOP_CACHE_LINE) std::atomic<std::uint32_t> sleepers_{0};
  // Cancelled items whose work-ring entry has not been discarded yet (see acquire_slot()). It may go
  // below zero for a moment (a worker can discard the entry before the canceller counts it); it is
  // above zero only while such an entry is in the ring or in a worker's hands.
  std::atomic<std::int32_t> stale_entries_{0};
  detail::bounded_queue<std::uint32_t, ring_capacity> work_;
  detail::bounded_queue<std::uint32_t, ring_capacity> completed_;
  slot slots_[Capacity];
};

#endif  // TINYLOOP_HOSTED
}  // namespace tinyloop
