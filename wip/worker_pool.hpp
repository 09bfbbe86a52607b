// worker_pool section of loop.hpp, kept here until the lead pastes it at loop.hpp's //@@POOL@@ marker
// (inside namespace tinyloop). Until then: #include "loop.hpp" first, then this header.
//
// What goes into loop.hpp: everything between the two PASTE markers, plus <pthread.h> and <sched.h>
// added to the hosted-only includes at the top of loop.hpp.
// Once pasted, loop.hpp defines TINYLOOP_HAS_WORKER_POOL and this header becomes empty.
#pragma once

#if TINYLOOP_HOSTED && !defined(TINYLOOP_HAS_WORKER_POOL)
#include <pthread.h>
#include <sched.h>

namespace tinyloop {

// ---- PASTE BEGIN -------------------------------------------------------------------------------------------
#if TINYLOOP_HOSTED
#define TINYLOOP_HAS_WORKER_POOL 1
#define TINYLOOP_WORKER_POOL_REVISION 2  // 2: a done() may destroy its pool

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
    std::uint32_t index = pop_free();
    // Relaxed: a hint. A missed stale entry costs a spurious full at worst, an extra pass costs nothing.
    if (index == no_slot && stale_entries_.load(std::memory_order_relaxed) > 0) index = reclaim();
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
        stale_entries_.fetch_sub(1, std::memory_order_relaxed);
        release(index);
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
    // Cancelled: cancel() already completed it; only our work-ring entry is left to drop.
    stale_entries_.fetch_sub(1, std::memory_order_relaxed);
    release(index);
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
  // Cancelled items whose work-ring entry no worker has discarded yet. A hint for submit(): it may go
  // below zero for a moment (a worker can discard the entry before the canceller counts it).
  std::atomic<std::int32_t> stale_entries_{0};
  detail::bounded_queue<std::uint32_t, ring_capacity> work_;
  detail::bounded_queue<std::uint32_t, ring_capacity> completed_;
  slot slots_[Capacity];
};

#endif  // TINYLOOP_HOSTED
// ---- PASTE END ---------------------------------------------------------------------------------------------

}  // namespace tinyloop
#endif
