// Test-only kqueue(2)/kevent(2) for Linux, emulated over epoll, so that kqueue_port runs the whole
// test suite on a system that has no kqueue. Tests build with
//   -DTINYLOOP_KQUEUE_HEADER="support/kqueue_emu.hpp"   and link tests/support/kqueue_emu.cpp.
// It implements what kqueue_port uses and little more; it is not a general kqueue library.
//
// What it models faithfully (FreeBSD's kern_event.c is the reference):
//   - Knotes keyed by (ident, filter): EVFILT_READ and EVFILT_WRITE on an fd are separate
//     registrations with their own flags, udata and enabled state; EVFILT_USER knotes by ident.
//   - EV_ADD on an existing knote updates it (udata, flags) and re-evaluates readiness; EV_DELETE
//     of a missing knote fails with ENOENT; a bad fd fails with EBADF; EV_ENABLE / EV_DISABLE;
//     EV_ONESHOT deletes the knote once reported.
//   - Change processing: each change that fails, or that carries EV_RECEIPT, is copied to the event
//     list with flags = EV_ERROR and data = errno (0 for success); if the event list is full, a
//     failure makes kevent() return -1 with that errno. When any such entry was written, kevent()
//     returns their count at once without collecting events. A change with filter 0 is skipped.
//   - EV_CLEAR is edge-triggered (EPOLLET); without it a filter is level-triggered.
//   - EVFILT_USER: EV_ADD, NOTE_TRIGGER (from any thread, or a signal handler: that path is
//     lock-free and async-signal-safe), EV_CLEAR resets the trigger once reported.
//   - EVFILT_SIGNAL (ident = the signal number): counts deliveries to the process whatever the
//     disposition (SIG_IGN included, except SIGCHLD, which is not recorded while ignored); the
//     disposition still acts as usual (the process's handler runs, SIG_DFL still kills or stops);
//     a report carries the count since the last one in data and clears it (EV_CLEAR is implied);
//     EV_DELETE of a missing knote is ENOENT; a number outside 1..NSIG-1 is EINVAL. Knotes on the
//     same signal in several kqueues each count it.
//   - EOF: EVFILT_READ gets EV_EOF when the peer shut down writing (EPOLLRDHUP) or hung up
//     (EPOLLHUP); EVFILT_WRITE gets EV_EOF when the fd hung up or has an error (a pipe's reader
//     gone). EV_ADD of EVFILT_WRITE on a pipe whose reader is gone fails with EPIPE, as FreeBSD's
//     pipe_kqfilter does; a filter the fd's access mode cannot serve (EVFILT_READ on a write-only
//     fd such as a pipe's write end) is accepted and never fires, as on FreeBSD and macOS.
//   - Timeouts: NULL blocks, {0,0} polls, others are rounded up to epoll's milliseconds (so the
//     call never returns early); an invalid timespec is EINVAL; a signal gives -1/EINTR. Only
//     returns with zero events when the timeout expired.
//   - Closing the kqueue with close(2) drops everything (see "resources" below).
//
// What differs from real kqueue:
//   - One epoll registration per fd carries both filters, so EV_CLEAR is per fd: EPOLLET is used
//     only when every enabled filter on the fd has EV_CLEAR. An edge on one direction also
//     re-reports the other if it is still ready (epoll reports the whole mask): more reports than
//     kqueue would give, never fewer. Any EV_ADD/EV_DELETE/EV_ENABLE/EV_DISABLE on the fd
//     re-evaluates both filters likewise.
//   - data is 0 (no byte counts); fflags carries EIO for an error on a socket, not the socket's
//     real error (reading SO_ERROR would clear it for the user).
//   - Regular files and directories are refused with EINVAL (epoll cannot watch them; real
//     kqueue reports a regular file readable up to EOF).
//   - epoll watches open file descriptions: if the user dup()s an fd and closes the original, the
//     knotes survive here (they would be dropped on kqueue); if the user closes an fd, its knotes
//     are noticed to be gone only at the next change naming that fd.
//   - Capacities are fixed (no allocation): 64 live kqueues, 4096 fds and 8 EVFILT_USER knotes
//     per kqueue; beyond that EV_ADD fails with ENOMEM and kqueue() with EMFILE.
//   - Threads: changes to fd filters and waits on one kqueue must come from one thread at a time
//     (the loop thread); only NOTE_TRIGGER of an existing EVFILT_USER knote may come from anywhere.
//   - Filters other than READ, WRITE, USER and SIGNAL (TIMER, VNODE, PROC...) give EINVAL;
//     EV_DISPATCH is not supported (EINVAL).
//   - EVFILT_SIGNAL sees a signal through a handler of its own: while a knote watches a signal, the
//     process's disposition is kept in a shadow and the real one is the emulation's handler, which
//     counts the delivery and then applies the shadow. sigaction() is interposed (defined in
//     kqueue_emu.cpp, so every program that links the emulation has it) and reads and writes the
//     shadow, so the program sees its own dispositions as on BSD. Not modelled: dispositions set
//     with signal(2) or a raw syscall while a knote exists (they bypass the shadow), SA_RESETHAND,
//     and sigaction() for a watched signal from two threads at once. The count is of deliveries:
//     Linux merges a standard signal sent while one is pending, so data can be lower than FreeBSD's
//     count of send attempts. A default action is carried out by restoring SIG_DFL and raising the
//     signal again. The knotes of a close()d kqueue, and the handler, stay until it is reclaimed.
//   - Resources: kqueue() returns an epoll fd and also holds an eventfd for EVFILT_USER. close()
//     of the kqueue fd cannot be observed, so that eventfd is released when the next kqueue() call
//     notices the epoll fd is gone: at most one eventfd per closed kqueue stays open until then.
//
// Names: everything lives in namespace tinyloop_kqemu and is brought into the global namespace
// with using-declarations, so kqueue_port's code reads as it does on BSD (struct kevent, kqueue(),
// kevent(), EV_*, EVFILT_*). Linux has none of these names. Constants have FreeBSD's values.
#pragma once

#define TINYLOOP_KQUEUE_EMULATED 1  // tests that use the hooks below check it

#include <cstdint>
#include <time.h>

namespace tinyloop_kqemu {

struct kevent {
  std::uintptr_t ident;  // an fd, or an EVFILT_USER identifier
  short filter;
  unsigned short flags;
  unsigned int fflags;
  std::int64_t data;
  void* udata;
  std::uint64_t ext[4];  // FreeBSD 12 layout; unused
};

int kqueue() noexcept;
int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist, int nevents,
           const struct timespec* timeout) noexcept;

// Test hook: how many kqueues the emulation currently tracks (after reclaiming closed ones).
int live_kqueues() noexcept;

// Test hook (fault injection): the next change, on any kqueue, whose filter is `filter` and whose
// flags include one of `flags` fails with `error` without being applied, reported as kevent()
// reports a failed change (an EV_ERROR entry, or -1 with errno when the event list is full).
void inject_change_error(short filter, unsigned short flags, int error) noexcept;

inline void ev_set(struct kevent* k, std::uintptr_t ident, short filter, unsigned short flags, unsigned int fflags,
                   std::int64_t data, void* udata) noexcept {
  *k = {};
  k->ident = ident;
  k->filter = filter;
  k->flags = flags;
  k->fflags = fflags;
  k->data = data;
  k->udata = udata;
}

}  // namespace tinyloop_kqemu

using tinyloop_kqemu::kevent;  // the struct and the function, as <sys/event.h> declares both
using tinyloop_kqemu::kqueue;

#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_SIGNAL (-6)
#define EVFILT_USER (-11)

#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_RECEIPT 0x0040
#define EV_DISPATCH 0x0080
#define EV_SYSFLAGS 0xF000
#define EV_ERROR 0x4000
#define EV_EOF 0x8000

#define NOTE_FFNOP 0x00000000
#define NOTE_TRIGGER 0x01000000

#define EV_SET(kevp, a, b, c, d, e, f)                                                                   \
  ::tinyloop_kqemu::ev_set((kevp), static_cast<std::uintptr_t>(a), static_cast<short>(b),               \
                           static_cast<unsigned short>(c), static_cast<unsigned int>(d),                \
                           static_cast<std::int64_t>(e), (f))
