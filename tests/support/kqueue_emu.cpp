// Test-only kqueue emulation over epoll. What it models and what it does not: kqueue_emu.hpp.
//
// Layout: a fixed array of queues (static storage, so nothing is allocated and tests that count
// allocations see none). A queue is an epoll fd, an eventfd for EVFILT_USER, a small array of user
// knotes, and an open-addressing table fd -> {read filter, write filter} whose entry is registered
// in epoll with data.u64 = fd and the union of the enabled filters' events.
#include "kqueue_emu.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <type_traits>
#include <fcntl.h>
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

enum : int { slot_free = 0, slot_busy = 1, slot_live = 2 };

struct queue {
  std::atomic<int> state;  // free -> busy (claimed by CAS) -> live; live -> busy -> free on reclaim
  std::atomic<int> epfd;
  int evfd;
  std::size_t nfds;
  int ncarry;
  struct kevent carry[max_carry];  // reports that did not fit the caller's list, oldest first
  user_knote users[max_user];
  fd_entry fds[fd_slots];
};

queue queues[max_queues];  // static storage: zero-initialised, every slot free
static_assert(std::is_trivially_default_constructible<queue>::value, "zero-initialised, no start-up code");

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
  for (fd_entry& e : q.fds) e = fd_entry{};
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

int apply(queue& q, const struct kevent& c) noexcept {
  if ((c.flags & EV_DISPATCH) != 0) return EINVAL;
  switch (c.filter) {
    case EVFILT_USER: return apply_user(q, c);
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
    if (poked) k += take_users(q, out + k, nevents - k);
    if (k > 0) return k;
    if (n == 0) return 0;  // the timeout expired (ms covered all of it, rounded up)
    // Only internal wakes (the eventfd without a trigger, a filter disabled since): wait on.
  }
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
    const int err = apply(*q, c);
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

int live_kqueues() noexcept {
  reclaim(-1);
  int n = 0;
  for (const queue& q : queues)
    if (q.state.load(std::memory_order_acquire) == slot_live) ++n;
  return n;
}

}  // namespace tinyloop_kqemu
