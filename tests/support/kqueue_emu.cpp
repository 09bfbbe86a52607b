// Test-only kqueue emulation over epoll. What it models and what it does not: kqueue_emu.hpp.
//
// Layout: a fixed array of queues (static storage, so nothing is allocated and tests that count
// allocations see none). A queue is an epoll fd, an eventfd for EVFILT_USER and EVFILT_SIGNAL, a
// small array of user knotes, one signal knote per signal number, and an open-addressing table
// fd -> {read filter, write filter} whose entry is registered in epoll with data.u64 = fd and the
// union of the enabled filters' events. Signals: see "signals" below.
#include "kqueue_emu.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstddef>
#include <type_traits>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tinyloop_kqemu {
namespace {

constexpr int max_queues = 64;
constexpr std::size_t fd_slots = 4096;  // a power of two
constexpr std::size_t fd_mask = fd_slots - 1;
constexpr std::size_t max_fds = fd_slots / 4 * 3;  // keeps probe sequences short
constexpr int max_user = 8;
constexpr int max_epoll_events = 32;  // per epoll_wait call
constexpr int max_carry = max_epoll_events;  // each fd gives at most one report more than fits
constexpr std::uint64_t wake_key = ~std::uint64_t{0};  // epoll data of the eventfd; no fd has it

// No default member initialisers here or below: the queue array must be zero-initialised static
// storage (no constructor runs at start-up, and untouched pages stay unmapped). `{}` resets.
struct filter_state {
  bool present;
  bool enabled;
  bool inert;            // the fd's access mode cannot serve this filter: accepted, never fires
  unsigned short flags;  // EV_CLEAR | EV_ONESHOT, as registered
  void* udata;
};

struct fd_entry {
  int key;  // fd + 1; 0 marks an empty slot
  bool in_epoll;
  filter_state read;
  filter_state write;
};

// Fields other than the atomics are written by the queue's own thread before `present` is
// published (release) and read by triggering threads after they see it (acquire).
struct user_knote {
  std::atomic<bool> present;
  std::atomic<bool> enabled;
  std::atomic<bool> triggered;
  std::uintptr_t ident;
  unsigned short flags;
  void* udata;
};

// Written by the queue's own thread; `count` and `present` are also read and bumped by the signal
// handler, on any thread.
struct signal_knote {
  std::atomic<bool> present;
  std::atomic<bool> enabled;
  std::atomic<std::int64_t> count;  // deliveries since the last report
  unsigned short flags;             // EV_ONESHOT, as registered (EV_CLEAR is implied)
  void* udata;
};

constexpr int signal_limit = NSIG;

enum : int { slot_free = 0, slot_busy = 1, slot_live = 2 };

struct queue {
  std::atomic<int> state;  // free -> busy (claimed by CAS) -> live; live -> busy -> free on reclaim
  std::atomic<int> epfd;
  int evfd;
  std::size_t nfds;
  int ncarry;
  struct kevent carry[max_carry];  // reports that did not fit the caller's list, oldest first
  user_knote users[max_user];
  std::atomic<bool> signalled;  // a signal knote may have a count: scan them
  signal_knote signals[signal_limit];
  fd_entry fds[fd_slots];
};

queue queues[max_queues];  // static storage: zero-initialised, every slot free
#if __cplusplus >= 202002L
// C++20's std::atomic sets its value in a constexpr default constructor, so queue is no longer
// trivial; its constructor being constexpr still makes the array constant-initialised.
static_assert(std::is_nothrow_default_constructible<queue>::value, "constant-initialised, no start-up code");
#else
static_assert(std::is_trivially_default_constructible<queue>::value, "zero-initialised, no start-up code");
#endif

// ---- helpers ------------------------------------------------------------------------------------

bool is_socket(int fd) noexcept {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

// A pipe (or FIFO) write end whose read end is closed: Linux reports POLLERR on it.
bool is_broken_pipe(int fd) noexcept {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return false;
  pollfd p{};
  p.fd = fd;
  p.events = POLLOUT;
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

void poke(queue& q) noexcept {
  const std::uint64_t one = 1;
  ssize_t r;
  do r = ::write(q.evfd, &one, sizeof one);
  while (r < 0 && errno == EINTR);
}

void drain(queue& q) noexcept {
  std::uint64_t count;
  while (::read(q.evfd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

void reset(queue& q) noexcept {
  q.nfds = 0;
  q.ncarry = 0;
  for (user_knote& u : q.users) {
    u.present.store(false, std::memory_order_relaxed);
    u.enabled.store(false, std::memory_order_relaxed);
    u.triggered.store(false, std::memory_order_relaxed);
  }
  q.signalled.store(false, std::memory_order_relaxed);
  for (signal_knote& k : q.signals) {
    k.present.store(false, std::memory_order_relaxed);
    k.enabled.store(false, std::memory_order_relaxed);
    k.count.store(0, std::memory_order_relaxed);
  }
  for (fd_entry& e : q.fds) e = fd_entry{};
}

// ---- signals ----------------------------------------------------------------------------------
//
// The kernel counts a signal in every EVFILT_SIGNAL knote whatever the process's disposition is.
// User space sees a signal only through a handler, so while any knote watches a signal, the real
// disposition is trampoline() and the one the program set lives in a shadow: trampoline() counts
// the delivery in every knote and then does what the shadow says. sigaction() (interposed at the
// end of this file) reads and writes the shadow while knotes exist, and the real disposition
// otherwise. The shadow is double-buffered so that a handler on another thread reads a whole one.

using sigaction_fn = int (*)(int, const struct sigaction*, struct sigaction*);

struct disposition {
  std::atomic<int> knotes;  // EVFILT_SIGNAL knotes on this signal, over every queue
  std::atomic<int> current;
  struct sigaction shadow[2];
};

disposition dispositions[signal_limit];
std::atomic<sigaction_fn> real_sigaction_fn;

// libc's sigaction (or a sanitizer's interceptor in front of it). Resolved at start-up: dlsym is
// not async-signal-safe and may allocate, which the allocation-counting tests would see.
sigaction_fn real_sigaction() noexcept {
  sigaction_fn f = real_sigaction_fn.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<sigaction_fn>(::dlsym(RTLD_NEXT, "sigaction"));
    real_sigaction_fn.store(f, std::memory_order_release);
  }
  return f;
}
[[gnu::constructor]] void resolve_real_sigaction() { real_sigaction(); }

// Signals a handler can be installed for (the kernel never lets SIGKILL or SIGSTOP be caught).
bool catchable(int signo) noexcept { return signo > 0 && signo < signal_limit && signo != SIGKILL && signo != SIGSTOP; }

const struct sigaction& shadow_of(int signo) noexcept {
  const disposition& d = dispositions[signo];
  return d.shadow[d.current.load(std::memory_order_acquire)];
}

bool is(const struct sigaction& sa, void (*h)(int)) noexcept { return (sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == h; }

void trampoline(int signo, siginfo_t* info, void* context) noexcept;

// Makes the real disposition match the shadow: the trampoline with the shadow's mask and flags, or
// SIGCHLD's SIG_IGN itself, which the kernel must see (it then reaps children; FreeBSD's
// EVFILT_SIGNAL does not record an ignored SIGCHLD either).
void install(int signo) noexcept {
  const struct sigaction& sh = shadow_of(signo);
  if (signo == SIGCHLD && is(sh, SIG_IGN)) {
    real_sigaction()(signo, &sh, nullptr);
    return;
  }
  struct sigaction t {};
  t.sa_sigaction = &trampoline;
  t.sa_mask = sh.sa_mask;
  t.sa_flags = SA_SIGINFO | (sh.sa_flags & ~(SA_SIGINFO | SA_RESETHAND));
  real_sigaction()(signo, &t, nullptr);
}

// A new knote on signo: the first one takes the disposition over.
void hold_disposition(int signo) noexcept {
  if (!catchable(signo)) return;  // SIGKILL, SIGSTOP: the knote is accepted and never fires
  disposition& d = dispositions[signo];
  if (d.knotes.load(std::memory_order_relaxed) == 0) {
    real_sigaction()(signo, nullptr, &d.shadow[0]);
    d.current.store(0, std::memory_order_release);
    d.knotes.store(1, std::memory_order_release);
    install(signo);
    return;
  }
  d.knotes.fetch_add(1, std::memory_order_relaxed);
}

// A knote on signo is gone: the last one hands the program's disposition back to the kernel.
void drop_disposition(int signo) noexcept {
  if (!catchable(signo)) return;
  disposition& d = dispositions[signo];
  if (d.knotes.fetch_sub(1, std::memory_order_acq_rel) == 1) real_sigaction()(signo, &shadow_of(signo), nullptr);
}

void drop_signal_knotes(queue& q) noexcept {
  for (int signo = 1; signo < signal_limit; ++signo) {
    signal_knote& k = q.signals[signo];
    if (!k.present.load(std::memory_order_relaxed)) continue;
    k.present.store(false, std::memory_order_release);
    drop_disposition(signo);
  }
}

// What the kernel does for SIG_DFL: nothing for the signals whose default is to ignore, else
// terminate or stop, carried out by the real default with the signal unblocked.
void default_action(int signo) noexcept {
  if (signo == SIGCHLD || signo == SIGURG || signo == SIGWINCH || signo == SIGCONT) return;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  real_sigaction()(signo, &dfl, nullptr);
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, signo);
  ::pthread_sigmask(SIG_UNBLOCK, &one, &old);
  ::raise(signo);  // terminates here; a stop returns once continued
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  install(signo);
}

// The kernel counts the signal in the knotes when it is sent, then delivers it to the disposition.
// Async-signal-safe: atomics and write(2).
void trampoline(int signo, siginfo_t* info, void* context) noexcept {
  const int saved = errno;
  // The disposition in effect at delivery, read before the knotes are told: once told, the loop
  // may already be restoring another one (SIG_DFL, say) on its own thread.
  const struct sigaction sh = shadow_of(signo);
  for (queue& q : queues) {
    if (q.state.load(std::memory_order_acquire) != slot_live) continue;
    signal_knote& k = q.signals[signo];
    if (!k.present.load(std::memory_order_acquire)) continue;
    // release: scan() acquires the count after it saw `signalled` or drained the eventfd.
    k.count.fetch_add(1, std::memory_order_release);
    q.signalled.store(true, std::memory_order_release);
    if (k.enabled.load(std::memory_order_relaxed)) poke(q);
  }
  if ((sh.sa_flags & SA_SIGINFO) != 0) {
    if (sh.sa_sigaction != nullptr) sh.sa_sigaction(signo, info, context);
  } else if (sh.sa_handler == SIG_DFL) {
    default_action(signo);
  } else if (sh.sa_handler != SIG_IGN) {
    sh.sa_handler(signo);
  }
  errno = saved;
}

// Frees live queues whose epoll fd was closed by their user (the number is `fresh`, which we just
// got from the kernel, or is closed, or is no longer an epoll set holding our eventfd).
void reclaim(int fresh) noexcept {
  for (queue& q : queues) {
    if (q.state.load(std::memory_order_acquire) != slot_live) continue;
    const int ep = q.epfd.load(std::memory_order_relaxed);
    bool stale = ep == fresh || ::fcntl(ep, F_GETFD) == -1;
    if (!stale) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = wake_key;
      stale = ::epoll_ctl(ep, EPOLL_CTL_MOD, q.evfd, &ev) != 0;
    }
    if (!stale) continue;
    int expected = slot_live;
    if (!q.state.compare_exchange_strong(expected, slot_busy, std::memory_order_acq_rel)) continue;
    drop_signal_knotes(q);  // before the eventfd goes: the trampoline no longer pokes it
    ::close(q.evfd);
    q.epfd.store(-1, std::memory_order_relaxed);
    q.state.store(slot_free, std::memory_order_release);
  }
}

queue* find_queue(int kq) noexcept {
  if (kq < 0) return nullptr;
  for (queue& q : queues)
    if (q.state.load(std::memory_order_acquire) == slot_live && q.epfd.load(std::memory_order_relaxed) == kq)
      return &q;
  return nullptr;
}

// ---- the fd table: linear probing, fds hash to themselves ----------------------------------------

fd_entry* lookup(queue& q, int fd) noexcept {
  std::size_t i = static_cast<std::size_t>(fd) & fd_mask;
  for (std::size_t n = 0; n < fd_slots; ++n, i = (i + 1) & fd_mask) {
    if (q.fds[i].key == 0) return nullptr;
    if (q.fds[i].key == fd + 1) return &q.fds[i];
  }
  return nullptr;
}

fd_entry* insert(queue& q, int fd) noexcept {
  if (q.nfds == max_fds) return nullptr;
  std::size_t i = static_cast<std::size_t>(fd) & fd_mask;
  while (q.fds[i].key != 0) i = (i + 1) & fd_mask;
  q.fds[i] = fd_entry{};
  q.fds[i].key = fd + 1;
  ++q.nfds;
  return &q.fds[i];
}

// Backward-shift deletion keeps every probe sequence unbroken without tombstones.
void erase(queue& q, fd_entry& e) noexcept {
  std::size_t hole = static_cast<std::size_t>(&e - q.fds);
  std::size_t j = hole;
  for (;;) {
    j = (j + 1) & fd_mask;
    if (q.fds[j].key == 0) break;
    const std::size_t home = static_cast<std::size_t>(q.fds[j].key - 1) & fd_mask;
    // Entry j may move into the hole unless its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    q.fds[hole] = q.fds[j];
    hole = j;
  }
  q.fds[hole] = fd_entry{};
  --q.nfds;
}

void purge_carry(queue& q, std::uintptr_t ident, short filter) noexcept {
  int kept = 0;
  for (int i = 0; i < q.ncarry; ++i)
    if (q.carry[i].ident != ident || q.carry[i].filter != filter) q.carry[kept++] = q.carry[i];
  q.ncarry = kept;
}

// The fd was closed: its knotes died with it (epoll dropped it too, unless it was dup()ed).
void forget(queue& q, fd_entry& e) noexcept {
  const auto ident = static_cast<std::uintptr_t>(e.key - 1);
  purge_carry(q, ident, EVFILT_READ);
  purge_carry(q, ident, EVFILT_WRITE);
  erase(q, e);
}

constexpr int stale_fd = -1;  // sync(): epoll no longer knows the fd (closed, number reused)

// Makes epoll's registration of e match its enabled filters.
int sync(queue& q, fd_entry& e) noexcept {
  const int fd = e.key - 1;
  const bool rd = e.read.present && e.read.enabled && !e.read.inert;
  const bool wr = e.write.present && e.write.enabled && !e.write.inert;
  const int ep = q.epfd.load(std::memory_order_relaxed);
  if (!rd && !wr) {
    // Out of epoll entirely: epoll reports EPOLLERR/EPOLLHUP even for an empty mask.
    if (e.in_epoll) {
      epoll_event ev{};
      ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);  // ENOENT/EBADF: already gone, as wanted
      e.in_epoll = false;
    }
    return 0;
  }
  epoll_event ev{};
  ev.data.u64 = static_cast<std::uint64_t>(fd);
  if (rd) ev.events |= EPOLLIN | EPOLLRDHUP;
  if (wr) ev.events |= EPOLLOUT;
  const bool clear = (!rd || (e.read.flags & EV_CLEAR) != 0) && (!wr || (e.write.flags & EV_CLEAR) != 0);
  if (clear) ev.events |= EPOLLET;
  int op = e.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(ep, op, fd, &ev) == 0) {
    e.in_epoll = true;
    return 0;
  }
  int err = errno;
  if (op == EPOLL_CTL_ADD && err == EEXIST) {  // epoll kept it although we thought it gone
    op = EPOLL_CTL_MOD;
    if (::epoll_ctl(ep, op, fd, &ev) == 0) {
      e.in_epoll = true;
      return 0;
    }
    err = errno;
  }
  if (op == EPOLL_CTL_MOD && err == ENOENT) return stale_fd;
  if (err == EPERM) return EINVAL;  // regular file or directory: see the header
  return err;
}

// ---- changes ------------------------------------------------------------------------------------

user_knote* find_user(queue& q, std::uintptr_t ident) noexcept {
  for (user_knote& u : q.users)
    if (u.present.load(std::memory_order_acquire) && u.ident == ident) return &u;
  return nullptr;
}

int apply_user(queue& q, const struct kevent& c) noexcept {
  user_knote* k = find_user(q, c.ident);
  if ((c.flags & EV_DELETE) != 0) {
    if (k == nullptr) return ENOENT;
    k->present.store(false, std::memory_order_release);
    k->triggered.store(false, std::memory_order_relaxed);
    return 0;
  }
  if ((c.flags & EV_ADD) != 0) {
    if (k == nullptr) {
      for (user_knote& u : q.users) {
        if (!u.present.load(std::memory_order_relaxed)) {
          k = &u;
          break;
        }
      }
      if (k == nullptr) return ENOMEM;
      k->ident = c.ident;
      k->triggered.store(false, std::memory_order_relaxed);
      k->flags = static_cast<unsigned short>(c.flags & (EV_CLEAR | EV_ONESHOT));
      k->udata = c.udata;
      k->enabled.store((c.flags & EV_DISABLE) == 0, std::memory_order_relaxed);
      k->present.store(true, std::memory_order_release);
    } else {
      k->flags = static_cast<unsigned short>(c.flags & (EV_CLEAR | EV_ONESHOT));
      k->udata = c.udata;
      k->enabled.store((c.flags & EV_DISABLE) == 0, std::memory_order_relaxed);
    }
  } else if (k == nullptr) {
    return ENOENT;
  }
  if ((c.flags & EV_DISABLE) != 0) k->enabled.store(false, std::memory_order_relaxed);
  if ((c.flags & EV_ENABLE) != 0) k->enabled.store(true, std::memory_order_relaxed);
  if ((c.fflags & NOTE_TRIGGER) != 0) {
    // The flag first, then the eventfd: a waiter that drains the eventfd then finds the flag.
    k->triggered.store(true, std::memory_order_release);
    poke(q);
  } else if ((c.flags & EV_ENABLE) != 0 && k->triggered.load(std::memory_order_relaxed)) {
    poke(q);
  }
  return 0;
}

int apply_fd(queue& q, const struct kevent& c) noexcept {
  if (c.ident > static_cast<std::uintptr_t>(INT_MAX)) return EBADF;
  const int fd = static_cast<int>(c.ident);
  const bool reading = c.filter == EVFILT_READ;
  fd_entry* e = lookup(q, fd);
  if (::fcntl(fd, F_GETFD) == -1) {
    if (e != nullptr) forget(q, *e);
    return EBADF;
  }

  if ((c.flags & EV_DELETE) != 0) {
    if (e == nullptr) return ENOENT;
    filter_state& f = reading ? e->read : e->write;
    if (!f.present) return ENOENT;
    f = filter_state{};
    purge_carry(q, c.ident, c.filter);
    if (sync(q, *e) == stale_fd) {  // the fd was closed and its number reused: nothing was left
      forget(q, *e);
      return ENOENT;
    }
    if (!e->read.present && !e->write.present) erase(q, *e);
    return 0;
  }

  if ((c.flags & EV_ADD) != 0) {
    // As FreeBSD's and macOS's pipe_kqfilter: a filter the fd's access mode cannot serve (a read
    // filter on a pipe's write end) is accepted and never fires.
    const int accmode = ::fcntl(fd, F_GETFL) & O_ACCMODE;
    const bool inert = reading ? accmode == O_WRONLY : accmode == O_RDONLY;
    if (!reading && !inert && is_broken_pipe(fd)) return EPIPE;  // as FreeBSD's pipe_kqfilter
    const bool created = e == nullptr;
    if (created) {
      e = insert(q, fd);
      if (e == nullptr) return ENOMEM;
    }
    filter_state& f = reading ? e->read : e->write;
    const filter_state old = f;
    f.present = true;
    f.inert = inert;
    f.enabled = (c.flags & EV_DISABLE) == 0;
    f.flags = static_cast<unsigned short>(c.flags & (EV_CLEAR | EV_ONESHOT));
    f.udata = c.udata;
    int r = sync(q, *e);
    if (r == stale_fd) {
      // The fd was closed and its number reused by the file now being added: the other filter's
      // knote died with the old file.
      (reading ? e->write : e->read) = filter_state{};
      purge_carry(q, c.ident, reading ? EVFILT_WRITE : EVFILT_READ);
      e->in_epoll = false;
      r = sync(q, *e);
    }
    if (r != 0) {
      f = old;
      if (created || (!e->read.present && !e->write.present)) {
        if (e->in_epoll) {
          epoll_event ev{};
          ::epoll_ctl(q.epfd.load(std::memory_order_relaxed), EPOLL_CTL_DEL, fd, &ev);
        }
        erase(q, *e);
      } else {
        sync(q, *e);
      }
      return r == stale_fd ? ENOENT : r;
    }
    return 0;
  }

  // EV_ENABLE / EV_DISABLE (or nothing) on an existing knote.
  if (e == nullptr) return ENOENT;
  filter_state& f = reading ? e->read : e->write;
  if (!f.present) return ENOENT;
  if ((c.flags & EV_DISABLE) != 0) {
    f.enabled = false;
    purge_carry(q, c.ident, c.filter);
  }
  if ((c.flags & EV_ENABLE) != 0) f.enabled = true;
  if ((c.flags & (EV_ENABLE | EV_DISABLE)) != 0 && sync(q, *e) == stale_fd) {
    forget(q, *e);
    return ENOENT;
  }
  return 0;
}

int apply_signal(queue& q, const struct kevent& c) noexcept {
  if (c.ident == 0 || c.ident >= static_cast<std::uintptr_t>(signal_limit)) return EINVAL;  // as _SIG_VALID
  const int signo = static_cast<int>(c.ident);
  signal_knote& k = q.signals[signo];
  const bool present = k.present.load(std::memory_order_relaxed);
  if ((c.flags & EV_DELETE) != 0) {
    if (!present) return ENOENT;
    k.present.store(false, std::memory_order_release);
    k.count.store(0, std::memory_order_relaxed);
    drop_disposition(signo);
    return 0;
  }
  if ((c.flags & EV_ADD) != 0) {
    k.flags = static_cast<unsigned short>(c.flags & EV_ONESHOT);
    k.udata = c.udata;
    k.enabled.store((c.flags & EV_DISABLE) == 0, std::memory_order_relaxed);
    if (!present) {
      k.count.store(0, std::memory_order_relaxed);  // signals sent before the knote existed do not count
      k.present.store(true, std::memory_order_release);
      hold_disposition(signo);
    }
  } else if (!present) {
    return ENOENT;
  }
  if ((c.flags & EV_DISABLE) != 0) k.enabled.store(false, std::memory_order_relaxed);
  if ((c.flags & EV_ENABLE) != 0) {
    k.enabled.store(true, std::memory_order_relaxed);
    if (k.count.load(std::memory_order_relaxed) != 0) poke(q);
  }
  return 0;
}

int apply(queue& q, const struct kevent& c) noexcept {
  if ((c.flags & EV_DISPATCH) != 0) return EINVAL;
  switch (c.filter) {
    case EVFILT_USER: return apply_user(q, c);
    case EVFILT_SIGNAL: return apply_signal(q, c);
    case EVFILT_READ:
    case EVFILT_WRITE: return apply_fd(q, c);
    default: return EINVAL;
  }
}

// ---- collecting events --------------------------------------------------------------------------

int take_users(queue& q, struct kevent* out, int room) noexcept {
  int k = 0;
  for (user_knote& u : q.users) {
    if (k == room) break;
    if (!u.present.load(std::memory_order_acquire) || !u.enabled.load(std::memory_order_relaxed)) continue;
    // EV_CLEAR: reporting consumes the trigger; otherwise it stays until the knote is deleted.
    const bool fired = (u.flags & EV_CLEAR) != 0 ? u.triggered.exchange(false, std::memory_order_acq_rel)
                                                 : u.triggered.load(std::memory_order_acquire);
    if (!fired) continue;
    struct kevent r {};
    r.ident = u.ident;
    r.filter = EVFILT_USER;
    r.flags = static_cast<unsigned short>(EV_ADD | u.flags);
    r.udata = u.udata;
    out[k++] = r;
    if ((u.flags & EV_ONESHOT) != 0) u.present.store(false, std::memory_order_release);
  }
  return k;
}

// EV_CLEAR is implied: a report takes the count.
int take_signals(queue& q, struct kevent* out, int room) noexcept {
  if (room == 0 || !q.signalled.exchange(false, std::memory_order_acquire)) return 0;
  int k = 0;
  for (int signo = 1; signo < signal_limit; ++signo) {
    signal_knote& s = q.signals[signo];
    if (!s.present.load(std::memory_order_acquire) || !s.enabled.load(std::memory_order_relaxed)) continue;
    if (s.count.load(std::memory_order_relaxed) == 0) continue;
    if (k == room) {
      q.signalled.store(true, std::memory_order_relaxed);  // the rest at the next call
      break;
    }
    struct kevent r {};
    r.ident = static_cast<std::uintptr_t>(signo);
    r.filter = static_cast<short>(EVFILT_SIGNAL);
    r.flags = static_cast<unsigned short>(EV_ADD | EV_CLEAR | s.flags);
    r.data = s.count.exchange(0, std::memory_order_acq_rel);
    r.udata = s.udata;
    out[k++] = r;
    if ((s.flags & EV_ONESHOT) != 0) {
      s.present.store(false, std::memory_order_release);
      drop_disposition(signo);
    }
  }
  return k;
}

void report(queue& q, fd_entry& e, bool reading, std::uint32_t mask, struct kevent* out, int& k, int room) noexcept {
  filter_state& f = reading ? e.read : e.write;
  const int fd = e.key - 1;
  struct kevent r {};
  r.ident = static_cast<std::uintptr_t>(fd);
  r.filter = static_cast<short>(reading ? EVFILT_READ : EVFILT_WRITE);
  r.flags = static_cast<unsigned short>(EV_ADD | f.flags);
  r.udata = f.udata;
  const std::uint32_t eof = reading ? (EPOLLRDHUP | EPOLLHUP) : (EPOLLHUP | EPOLLERR);
  if ((mask & eof) != 0) r.flags |= EV_EOF;
  if ((mask & EPOLLERR) != 0 && is_socket(fd)) {
    r.flags |= EV_EOF;
    r.fflags = EIO;  // a placeholder: the socket's real error stays in SO_ERROR for the user
  }
  if (k < room)
    out[k++] = r;
  else if (q.ncarry < max_carry)
    q.carry[q.ncarry++] = r;
  if ((f.flags & EV_ONESHOT) != 0) {
    f = filter_state{};
    sync(q, e);
  }
}

// Milliseconds left until `deadline` on CLOCK_MONOTONIC, rounded up; 0 once it passed.
int remaining_ms(const timespec& deadline) noexcept {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const long long ns = (static_cast<long long>(deadline.tv_sec) - now.tv_sec) * 1000000000LL +
                       (deadline.tv_nsec - now.tv_nsec);
  if (ns <= 0) return 0;
  const long long ms = (ns + 999999) / 1000000;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

int scan(queue& q, struct kevent* out, int nevents, const struct timespec* timeout) noexcept {
  timespec deadline{};
  if (timeout != nullptr) {
    ::clock_gettime(CLOCK_MONOTONIC, &deadline);
    const long long max_sec = LLONG_MAX / 4;  // far enough: no overflow below
    const long long sec = timeout->tv_sec > max_sec ? max_sec : static_cast<long long>(timeout->tv_sec);
    deadline.tv_sec = static_cast<time_t>(deadline.tv_sec + sec);
    deadline.tv_nsec += timeout->tv_nsec;
    if (deadline.tv_nsec >= 1000000000) {
      deadline.tv_nsec -= 1000000000;
      ++deadline.tv_sec;
    }
  }
  for (;;) {
    int k = 0;
    while (k < nevents && q.ncarry > 0) {
      out[k++] = q.carry[0];
      for (int i = 1; i < q.ncarry; ++i) q.carry[i - 1] = q.carry[i];
      --q.ncarry;
    }
    k += take_users(q, out + k, nevents - k);
    k += take_signals(q, out + k, nevents - k);
    if (k == nevents) return k;
    const int ms = k > 0 ? 0 : timeout == nullptr ? -1 : remaining_ms(deadline);
    // As many fds as there is room for, as kqueue fills the list; an fd with both filters ready
    // gives two reports, and one that does not fit is carried to the next call.
    epoll_event evs[max_epoll_events];
    const int room = nevents - k;
    const int max = room > max_epoll_events ? max_epoll_events : room;
    const int n = ::epoll_wait(q.epfd.load(std::memory_order_relaxed), evs, max, ms);
    if (n < 0) {
      if (k > 0) return k;
      return -1;  // errno from epoll_wait: EINTR when a signal handler ran, as kevent(2) says
    }
    bool poked = false;
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.u64 == wake_key) {
        drain(q);
        poked = true;
        continue;
      }
      fd_entry* e = lookup(q, static_cast<int>(evs[i].data.u64));
      if (e == nullptr) continue;
      const std::uint32_t m = evs[i].events;
      if (e->read.present && e->read.enabled && !e->read.inert && (m & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
        report(q, *e, true, m, out, k, nevents);
      if (e->write.present && e->write.enabled && !e->write.inert && (m & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0)
        report(q, *e, false, m, out, k, nevents);
      if (!e->read.present && !e->write.present) erase(q, *e);  // both were EV_ONESHOT
    }
    if (poked) {
      k += take_users(q, out + k, nevents - k);
      k += take_signals(q, out + k, nevents - k);
    }
    if (k > 0) return k;
    if (n == 0) return 0;  // the timeout expired (ms covered all of it, rounded up)
    // Only internal wakes (the eventfd without a trigger, a filter disabled since): wait on.
  }
}

// inject_change_error(): armed by a test, consumed by the first matching change.
struct injection {
  std::atomic<bool> armed;
  short filter;
  unsigned short flags;
  int error;
};
injection injected;

bool take_injected(const struct kevent& c, int& err) noexcept {
  if (!injected.armed.load(std::memory_order_acquire)) return false;
  if (c.filter != injected.filter || (c.flags & injected.flags) == 0) return false;
  if (!injected.armed.exchange(false, std::memory_order_acq_rel)) return false;
  err = injected.error;
  return true;
}

}  // namespace

// ---- the public functions -------------------------------------------------------------------------

int kqueue() noexcept {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -1;
  reclaim(ep);
  const int ev = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ev < 0) {
    const int err = errno;
    ::close(ep);
    errno = err;
    return -1;
  }
  epoll_event wake{};
  wake.events = EPOLLIN;  // level: drained in scan()
  wake.data.u64 = wake_key;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, ev, &wake) != 0) {
    const int err = errno;
    ::close(ev);
    ::close(ep);
    errno = err;
    return -1;
  }
  for (queue& q : queues) {
    int expected = slot_free;
    if (!q.state.compare_exchange_strong(expected, slot_busy, std::memory_order_acq_rel)) continue;
    reset(q);
    q.evfd = ev;
    q.epfd.store(ep, std::memory_order_relaxed);
    q.state.store(slot_live, std::memory_order_release);
    return ep;
  }
  ::close(ev);
  ::close(ep);
  errno = EMFILE;
  return -1;
}

int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist, int nevents,
           const struct timespec* timeout) noexcept {
  queue* q = find_queue(kq);
  if (q == nullptr) {
    errno = EBADF;
    return -1;
  }
  if (nchanges < 0 || nevents < 0) {
    errno = EINVAL;
    return -1;
  }
  if ((nchanges > 0 && changelist == nullptr) || (nevents > 0 && eventlist == nullptr)) {
    errno = EFAULT;
    return -1;
  }
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)) {
    errno = EINVAL;
    return -1;
  }
  int room = nevents;
  int nerrors = 0;
  for (int i = 0; i < nchanges; ++i) {
    struct kevent c = changelist[i];  // a copy: the event list may be the change list
    if (c.filter == 0) continue;
    c.flags = static_cast<unsigned short>(c.flags & ~EV_SYSFLAGS);
    int err;
    if (!take_injected(c, err)) err = apply(*q, c);
    if (err == 0 && (c.flags & EV_RECEIPT) == 0) continue;
    if (room == 0) {
      if (err == 0) return 0;  // FreeBSD stops here too, reporting nothing
      errno = err;
      return -1;
    }
    c.flags = EV_ERROR;
    c.data = err;
    eventlist[nerrors++] = c;
    --room;
  }
  if (nerrors != 0) return nerrors;
  if (nevents == 0) return 0;
  return scan(*q, eventlist, nevents, timeout);
}

void inject_change_error(short filter, unsigned short flags, int error) noexcept {
  injected.filter = filter;
  injected.flags = flags;
  injected.error = error;
  injected.armed.store(true, std::memory_order_release);
}

int live_kqueues() noexcept {
  reclaim(-1);
  int n = 0;
  for (const queue& q : queues)
    if (q.state.load(std::memory_order_acquire) == slot_live) ++n;
  return n;
}

}  // namespace tinyloop_kqemu

// The process's sigaction(), interposed (see "signals" above): a program that links the emulation
// calls this one, and this one calls libc's (or a sanitizer's interceptor, which then wraps the
// trampoline as it would any handler).
extern "C" int sigaction(int signo, const struct sigaction* __restrict act, struct sigaction* __restrict old) noexcept {
  using namespace tinyloop_kqemu;
  if (!catchable(signo) || dispositions[signo].knotes.load(std::memory_order_acquire) == 0)
    return real_sigaction()(signo, act, old);
  disposition& d = dispositions[signo];
  const int cur = d.current.load(std::memory_order_relaxed);
  if (old != nullptr) *old = d.shadow[cur];
  if (act != nullptr) {
    d.shadow[1 - cur] = *act;
    d.current.store(1 - cur, std::memory_order_release);
    install(signo);
  }
  return 0;
}
