/*
 * The post/wake/sleep handshake of tinyloop::event_loop (loop.hpp 5754aa7: notify(), wait_for_events(),
 * iterate(), run_posts(), detail::bounded_queue), as a Promela model checked by spin.
 *
 * What is modelled:
 *   - NPRODUCERS producer threads; each posts POSTS_EACH callbacks, and producer 0 then calls wake().
 *     post():  claim a slot (the CAS on tail_), publish it (the slot's sequence store-release), then
 *     notify(): sleeping_.fetch_add(0, acq_rel); if it read 1, wake_pending_.exchange(true, acq_rel);
 *     if that read false, port.wake() (one write(2) on the eventfd).
 *     wake():  woken_ store, then notify().
 *   - the loop thread, one iterate() at a time: run a snapshot of the posts (size_approx() = claimed
 *     minus consumed, popped while the head slot is published), then
 *       something ran:  wait_for_events(min): a non-blocking port.wait only if a source is registered
 *                       (HAS_SOURCES), else no syscall; after it wake_pending_.exchange(false, acq_rel);
 *       nothing ran:    sleeping_.exchange(1, acq_rel); re-check work_pending() (front_ready(), woken_);
 *                       port.wait(max, or min if work is pending); sleeping_.store(0);
 *                       wake_pending_.exchange(false, acq_rel);
 *     and at the end of iterate() woken_ is consumed (run_once returns).
 *   - a counting eventfd: a write adds one; port.wait blocks while the count is zero and reads (resets)
 *     it when it is not; a non-blocking wait also resets a non-zero count (epoll reports the
 *     level-triggered eventfd and the port drains it).
 *   - the queue by its two observable facts: slots are claimed in order, and the consumer can only take
 *     slot n once slot n is published (a claimed but unpublished slot at the head hides what is behind
 *     it). Capacity is not modelled: a producer retries on errc::full before it reaches notify(), so a
 *     full queue adds no interleaving to the handshake.
 *
 * Memory model. spin explores interleavings of atomic steps, i.e. sequential consistency. That is
 * sound for this protocol because every access that decides the handshake is a read-modify-write or
 * is ordered by one:
 *   - sleeping_ is touched by both sides with RMWs (the producer's fetch_add(0), the loop's exchange(1)).
 *     RMWs on one variable are totally ordered by its modification order and each reads the value
 *     written just before it, so they behave exactly as the SC steps of this model. If the producer's
 *     RMW is first, the loop's acquire exchange reads from its release (or from a later RMW in its
 *     release sequence), so the publish is visible to the loop's re-check; if the loop's is first, the
 *     producer reads 1. The alternative design, a store and a plain load on each side separated by
 *     atomic_thread_fence(seq_cst), gives the same guarantee through the fences' single total order
 *     ([atomics.fences]); the extra outcome a missing fence (or a plain relaxed load without one) would
 *     allow is the producer's read of sleeping_ taking effect before its publish: BROKEN_NO_FENCE.
 *   - wake_pending_ is only changed with exchange: again an RMW, an atomic step here.
 *     BROKEN_NO_EXCHANGE splits it into a load and a store.
 *   - the remaining acquire/release pairs (slot sequence, woken_ read after the exchange on sleeping_)
 *     carry data to the loop; they add no interleaving beyond the ones modelled.
 *   - the eventfd read and write are system calls, serialized by the kernel.
 *   - post_machinery_ (loop.hpp: the pointer to the post phase that the first post() sets, so that a
 *     program that never posts links none of it) is the one relaxed access whose weak outcomes matter:
 *     the loop's relaxed load may still read null after a producer stored the pointer. It is modelled
 *     as the loop's view runner_seen: each of its loads may or may not pick up a store made so far
 *     (a nondeterministic choice), and an acquire that reads a published slot makes the store
 *     visible for good, since every producer stores (or reads) the pointer before its publish
 *     (write-read / read-read coherence). The loop pops only through the pointer.
 *
 * Properties checked (tests/model/CMakeLists.txt runs each):
 *   - safety (pan -DSAFETY): assertions hold and no invalid end state. The loop ends only when every
 *     post ran and the wake() was seen, and there is no timer, so a lost wake shows up as the loop
 *     blocked forever in port.wait with work queued: an invalid end state (deadlock).
 *   - at most one eventfd write per sleep: between two clears of wake_pending_ by the loop at most one
 *     producer wins the exchange that licenses a write (assertion after each exchange). The write itself
 *     can land after the loop cleared the flag (a producer preempted between its exchange and its
 *     write(2)); the loop then sees one spurious wakeup later, which iterate() hides.
 *   - liveness (ltl all_done, pan -a -f): under weak fairness every post eventually runs and the wake()
 *     is seen (no stranded post).
 *   - TIMERS: the loop's blocking wait may also return on a timer with the eventfd untouched.
 *
 * Variants:
 *   HAS_SOURCES=0/1     whether an fd is registered (decides whether a non-blocking wait makes a syscall)
 * Deliberately broken variants (CTest expects spin to find an error in each):
 *   BROKEN_STALE_CLEAR  the non-blocking wait is not followed by wake_pending_.exchange(false) (loop.hpp
 *                       before 5754aa7; spin found it). With HAS_SOURCES=1: a producer reads sleeping_ == 1,
 *                       is preempted, the loop wakes for another reason and clears wake_pending_, the
 *                       producer sets it and writes the eventfd; the loop runs a post, polls without
 *                       blocking (draining the eventfd but leaving wake_pending_ set), then sleeps; every
 *                       later producer sees wake_pending_ set and skips its wake(): the loop sleeps with a
 *                       post queued.
 *   BROKEN_NO_RECHECK   the loop blocks without re-checking for work after setting sleeping_
 *   BROKEN_NO_FENCE     the producer's read of sleeping_ takes effect before its publish
 *   BROKEN_NO_EXCHANGE  wake_pending_ is tested and set with a separate load and store
 *   BROKEN_RUNNER_LATE  the producer stores post_machinery_ after its publish, so no acquire of the
 *                       loop carries the store (it is only "eventually" visible, which a relaxed load
 *                       need never pick up): the loop may find work and never see the pointer
 */

#ifndef NPRODUCERS
#define NPRODUCERS 3
#endif
#ifndef POSTS_EACH
#define POSTS_EACH 2
#endif
#ifndef HAS_SOURCES
#define HAS_SOURCES 1
#endif
#define TOTAL (NPRODUCERS * POSTS_EACH)
#define WAKES 1

bool sleeping_ = false;
bool wake_pending_ = false;
bool woken_ = false;
byte eventfd = 0;            /* the counting eventfd */
byte grants_since_clear = 0; /* exchanges that turned wake_pending_ from false to true (each licenses
                                one eventfd write) since the loop last cleared it */

byte tail = 0;               /* next slot to claim */
byte head = 0;               /* next slot the loop pops */
bool published[TOTAL];

bool runner_stored = false;  /* a producer stored post_machinery_ */
bool runner_seen = false;    /* the loop's relaxed load of post_machinery_ returns it (see above) */

byte ran_posts = 0;          /* posts the loop has run */
byte seen_wakes = 0;         /* wake() calls the loop has seen */

ltl all_done { <> (ran_posts == TOTAL && seen_wakes == WAKES) }

/* notify(): called after the caller published its work. */
inline notify_loop() {
  /* sleeping_.fetch_add(0, acq_rel): one atomic step */
#ifndef BROKEN_NO_FENCE
  saw_sleeping = sleeping_;
#endif
  if
  :: !saw_sleeping -> skip
  :: else ->
     /* wake_pending_.exchange(true, acq_rel) */
#ifdef BROKEN_NO_EXCHANGE
     old = wake_pending_;
     atomic { wake_pending_ = true; if :: !old -> grants_since_clear++ :: else -> skip fi }
#else
     atomic { old = wake_pending_; wake_pending_ = true; if :: !old -> grants_since_clear++ :: else -> skip fi };
#endif
     assert(grants_since_clear <= 1);
     if
     :: old -> skip
     :: else -> eventfd++            /* port.wake(): one write(2) on the eventfd */
     fi
  fi
}

proctype producer(byte id) {
  byte i = 0;
  byte slot;
  bool saw_sleeping;
  bool old;
  do
  :: i < POSTS_EACH ->
#ifndef BROKEN_RUNNER_LATE
     runner_stored = true;             /* post(): post_machinery_ before the push */
#endif
     atomic { slot = tail; tail++ };   /* claim: the CAS on the enqueue position */
#ifdef BROKEN_NO_FENCE
     saw_sleeping = sleeping_;         /* load hoisted above the publish */
#endif
     published[slot] = true;           /* publish: the slot's sequence store-release */
#ifdef BROKEN_RUNNER_LATE
     runner_stored = true;
#endif
     notify_loop();
     i++                               /* local: merged into the previous step by partial order reduction */
  :: else -> break
  od;
  if
  :: id == 0 ->
     woken_ = true;                    /* wake(): the flag store, then notify() */
     notify_loop()
  :: else -> skip
  fi
}

/* The port's wait. block: deadline max (no timer) or, with TIMERS, some future deadline. */
inline port_wait(block) {
  if
  :: !block -> atomic { if :: eventfd > 0 -> eventfd = 0 :: else -> skip fi }
  :: block -> atomic { eventfd > 0 -> eventfd = 0 }
#ifdef TIMERS
  :: block -> skip                     /* the timer's deadline passed first */
#endif
  fi
}

inline clear_wake_pending() {
  atomic { wake_pending_ = false; grants_since_clear = 0 }
}

active proctype loop() {
  bool ran;
  bool work;
  byte snapshot;
  do
  :: ran_posts == TOTAL && seen_wakes == WAKES -> break
  :: else ->
     /* run_phase(2): post_machinery_.load(relaxed), which may not yet see a store (see above) */
     atomic { if :: runner_stored -> runner_seen = true :: true -> skip fi };
     /* drain, through the pointer, the posts published when the drain began */
     d_step { ran = false; snapshot = tail };
     do
     :: runner_seen && head < snapshot && published[head] ->
        d_step { head++; ran_posts++; ran = true }   /* head is the loop's own */
     :: else -> break
     od;
     if
     :: ran ->
        /* wait_for_events(min): a non-blocking port.wait, skipped when no fd is registered */
#if HAS_SOURCES
        port_wait(false);
#ifndef BROKEN_STALE_CLEAR
        clear_wake_pending()              /* wake_pending_.exchange(false, acq_rel) */
#else
        skip
#endif
#else
        skip
#endif
     :: else ->
        sleeping_ = true;                  /* sleeping_.exchange(1, acq_rel) */
        /* work_pending() */
#ifdef BROKEN_NO_RECHECK
        work = false;
#else
        /* front_ready()'s acquire of a published slot: that slot's producer stored the pointer first */
        atomic {
          work = (head < tail && published[head]) || woken_;
#ifndef BROKEN_RUNNER_LATE
          if :: head < tail && published[head] -> runner_seen = true :: else -> skip fi
#endif
        };
#endif
        port_wait(!work);
        sleeping_ = false;                 /* sleeping_.store(0, relaxed) */
        clear_wake_pending()               /* wake_pending_.exchange(false, acq_rel) */
     fi;
     /* iterate() returns: woken_.exchange(false) after an empty wait, woken_.store(false) at the end */
     atomic { if :: woken_ -> woken_ = false; seen_wakes++ :: else -> skip fi }
  od;
  assert(head == TOTAL && !woken_)
}

init {
  byte p = 0;
  atomic {
    do
    :: p < NPRODUCERS -> run producer(p); p++
    :: else -> break
    od
  }
}
