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
