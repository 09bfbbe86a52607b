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
// Signals are not taken through EVFILT_SIGNAL: the loop installs its own handler on every hosted
// port (a knote alone does not stop the default action from killing the process), and the handler
// wakes this port like any other producer.
struct kqueue_port {
  using clock = std::chrono::steady_clock;
  static constexpr bool has_fds = true;
  static constexpr bool has_signals = true;
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
        for (int i = 0; i < n; ++i) {
          const struct kevent& k = fetched_[i];
          if (k.filter == static_cast<decltype(k.filter)>(EVFILT_USER)) {
            woken = true;  // EV_CLEAR: retrieving it consumed the trigger
            continue;
          }
          const auto index = static_cast<std::uint32_t>(from_udata(k.udata));
          if (index >= capacity) continue;
          registration& r = table_[index];
          if (r.fd < 0 || static_cast<std::uintptr_t>(r.fd) != k.ident) continue;  // not ours (any more)
          note(r, index, translate(k, r.interest), touched);
        }
        if (pending_ != 0) {
          for (std::uint32_t index = 0; index < capacity && touched < Config::events_per_wait; ++index) {
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
        if (touched != 0 || woken || n == 0 || deadline == clock::time_point::min()) return errc::ok;
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
    struct kevent fetched_[Config::events_per_wait];
    std::uint32_t touched_[Config::events_per_wait];
  };
};
#endif  // TINYLOOP_HAS_KQUEUE
