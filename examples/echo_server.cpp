// echo_server: a TCP echo server with the parts a real server needs.
//
//   echo_server PORT [IDLE_MS]
//
// PORT 0 picks an ephemeral port. Once listening, the server prints "port N" on stdout (one line,
// flushed) so a script can connect; everything else goes to stderr.
//
// - Listens on one dual-stack IPv6 socket where the system allows it; otherwise on an IPv6-only
//   and an IPv4 socket with the same port number; on a host without IPv6, on IPv4 alone.
// - Accepts until EAGAIN. When every connection slot is taken it stops accepting (the kernel's
//   backlog holds new peers) and starts again when a connection closes. When accept() fails for
//   lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the pending connection stays queued, so
//   retrying at once would spin: it stops accepting and retries 100 ms later.
// - Reads until EAGAIN and writes back what it read, keeping what a partial write left over. Write
//   interest is on only while output is pending. Past a high-water mark of unsent output it stops
//   reading, so a peer that sends but never reads cannot make the server buffer without bound; it
//   resumes below a low-water mark. Every send uses MSG_NOSIGNAL: a peer that resets the
//   connection cannot kill the process with SIGPIPE.
// - One connection moves at most turn_budget bytes per callback, then yields with a zero-delay
//   timer (which runs in a later iteration), so a fast peer cannot starve the others.
// - A peer that half-closes gets the rest of its echo, then the connection closes. A connection
//   with no traffic for IDLE_MS (default 30000) is closed.
// - SIGINT or SIGTERM closes the listeners and every connection; run() returns and the process
//   exits with status 0. A second signal after that gets the default action.
// - Memory: max_connections slots with fixed buffers, in one object created at startup. Nothing is
//   allocated after that (the loop itself never allocates), so the server's footprint is fixed.
#include "loop.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace {

using namespace std::chrono_literals;
using tinyloop::errc;
using tinyloop::events;

constexpr std::size_t max_connections = 64;
constexpr std::size_t max_listeners = 2;
constexpr std::size_t buffer_bytes = 64 * 1024;  // per connection; a power of two (ring indexing)
constexpr std::size_t high_water = 48 * 1024;    // stop reading at this much unsent output...
constexpr std::size_t low_water = 16 * 1024;     // ...and resume at or below this much
constexpr std::size_t turn_budget = 256 * 1024;  // bytes one connection may move per callback

static_assert((buffer_bytes & (buffer_bytes - 1)) == 0, "the ring buffer indexes with a mask");
static_assert(low_water < high_water && high_water <= buffer_bytes, "water marks must fit the buffer");

struct server_config : tinyloop::default_config {
  static constexpr std::size_t max_sources = max_listeners + max_connections;
  // Per connection an idle timer and a resume timer; one more to retry accepting.
  static constexpr std::size_t max_timers = 2 * max_connections + 1;
};
// epoll on Linux, kqueue on BSD and macOS. The tests also build this file with
// -DECHO_SERVER_PORT=tinyloop::poll_port, which is level-triggered underneath.
#ifndef ECHO_SERVER_PORT
#define ECHO_SERVER_PORT tinyloop::default_port
#endif
using loop_type = tinyloop::event_loop<ECHO_SERVER_PORT, server_config>;

struct connection {
  int fd = -1;
  tinyloop::source_id source;
  events interest = events::none;
  tinyloop::timer_id idle_timer;
  tinyloop::timer_id resume_timer;
  bool resume_armed = false;
  bool reading_paused = false;  // unsent output reached high_water
  bool peer_closed = false;     // read() returned 0: send what is left, then close
  loop_type::time_point last_active;
  // Ring buffer positions, free-running modulo 2^32: bytes received and bytes sent back.
  std::uint32_t received = 0;
  std::uint32_t sent = 0;
  connection* next_free = nullptr;
  unsigned char buffer[buffer_bytes];

  std::size_t pending() const noexcept { return static_cast<std::uint32_t>(received - sent); }

  // The free part of the ring (up to `limit` bytes) as at most two pieces, for readv().
  int free_space(iovec (&iov)[2], std::size_t limit) noexcept {
    return pieces(received, buffer_bytes - pending(), limit, iov);
  }
  // The unsent part of the ring (up to `limit` bytes), for sendmsg().
  int unsent(iovec (&iov)[2], std::size_t limit) noexcept { return pieces(sent, pending(), limit, iov); }

 private:
  int pieces(std::uint32_t from, std::size_t length, std::size_t limit, iovec (&iov)[2]) noexcept {
    if (length > limit) length = limit;
    const std::size_t start = from & (buffer_bytes - 1);
    const std::size_t first = length < buffer_bytes - start ? length : buffer_bytes - start;
    iov[0].iov_base = buffer + start;
    iov[0].iov_len = first;
    iov[1].iov_base = buffer;
    iov[1].iov_len = length - first;
    return iov[1].iov_len != 0 ? 2 : 1;
  }
};

bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }

bool make_nonblocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

class echo_server {
 public:
  echo_server() noexcept {
    for (std::size_t i = max_connections; i-- > 0;) {
      connections_[i].next_free = free_;
      free_ = &connections_[i];
    }
  }
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  bool start(std::uint16_t port, std::chrono::milliseconds idle_timeout) noexcept {
    if (loop_.status() != errc::ok) {
      std::fprintf(stderr, "echo_server: event loop: %s: %s\n", tinyloop::to_string(loop_.status()),
                   std::strerror(loop_.os_errno()));
      return false;
    }
    idle_timeout_ = std::chrono::duration_cast<loop_type::duration>(idle_timeout);
    if (!open_listeners(port)) return false;
    for (int signo : {SIGINT, SIGTERM}) {
      const errc e = loop_.watch_signal(signo, [this](int s) { shut_down(s); });
      if (e != errc::ok) {
        std::fprintf(stderr, "echo_server: watch_signal(%d): %s\n", signo, tinyloop::to_string(e));
        return false;
      }
    }
    return true;
  }

  std::uint16_t port() const noexcept { return port_; }

  int run() noexcept {
    const errc e = loop_.run();
    if (e != errc::ok) {
      std::fprintf(stderr, "echo_server: run: %s: %s\n", tinyloop::to_string(e), std::strerror(loop_.os_errno()));
      return 1;
    }
    std::fprintf(stderr, "echo_server: stopped; %lu connections served, %llu bytes echoed, %lu idle closes\n",
                 accepted_, echoed_, idle_closes_);
    return 0;
  }

 private:
  // ---- listening ---------------------------------------------------------------------------

  bool open_listeners(std::uint16_t port) noexcept {
    int err = 0;
    int fd = open_listener(AF_INET6, port, /*dual_stack=*/true, err);
    if (fd >= 0) return add_listener(fd);
    std::fprintf(stderr, "echo_server: no dual-stack socket (%s); trying IPv6 and IPv4 apart\n", std::strerror(err));
    fd = open_listener(AF_INET6, port, /*dual_stack=*/false, err);
    if (fd >= 0) {
      if (!add_listener(fd)) return false;
      port = port_;  // with port 0, IPv4 takes the number the kernel chose for IPv6
    } else {
      std::fprintf(stderr, "echo_server: no IPv6 listener (%s)\n", std::strerror(err));
    }
    fd = open_listener(AF_INET, port, /*dual_stack=*/false, err);
    if (fd >= 0) return add_listener(fd);
    std::fprintf(stderr, "echo_server: no IPv4 listener (%s)\n", std::strerror(err));
    return listener_count_ != 0;
  }

  static int open_listener(int family, std::uint16_t port, bool dual_stack, int& err) noexcept {
    const int fd = ::socket(family, SOCK_STREAM, 0);
    if (fd < 0) {
      err = errno;
      return -1;
    }
    const int one = 1;
    // Lets a restarted server bind while connections of the previous one sit in TIME_WAIT.
    bool ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    sockaddr_in6 a6{};
    sockaddr_in a4{};
    const sockaddr* address;
    socklen_t length;
    if (family == AF_INET6) {
      const int v6only = dual_stack ? 0 : 1;  // set either way: the system default varies
      ok = ok && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0;
      a6.sin6_family = AF_INET6;
      a6.sin6_addr = in6addr_any;
      a6.sin6_port = htons(port);
      address = reinterpret_cast<const sockaddr*>(&a6);
      length = sizeof a6;
    } else {
      a4.sin_family = AF_INET;
      a4.sin_addr.s_addr = htonl(INADDR_ANY);
      a4.sin_port = htons(port);
      address = reinterpret_cast<const sockaddr*>(&a4);
      length = sizeof a4;
    }
    ok = ok && ::bind(fd, address, length) == 0 && ::listen(fd, SOMAXCONN) == 0 && make_nonblocking(fd);
    if (!ok) {
      err = errno;
      ::close(fd);
      return -1;
    }
    return fd;
  }

  bool add_listener(int fd) noexcept {
    const std::size_t i = listener_count_;
    auto source = loop_.add(fd, events::read, [this, i](events) { accept_from(i); });
    if (!source) {
      std::fprintf(stderr, "echo_server: add(listener): %s\n", tinyloop::to_string(source.error()));
      ::close(fd);
      return false;
    }
    listeners_[i] = fd;
    listener_sources_[i] = source.value();
    ++listener_count_;
    if (port_ == 0) {
      // Large enough for either family, and sin_port and sin6_port sit at the same offset.
      sockaddr_in6 bound{};
      socklen_t length = sizeof bound;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) port_ = ntohs(bound.sin6_port);
    }
    return true;
  }

  // ---- accepting ---------------------------------------------------------------------------

  void accept_from(std::size_t i) noexcept {
    while (!accept_paused_) {
      if (free_ == nullptr) {
        pause_accepting();  // close_connection() resumes
        return;
      }
      const int fd = ::accept(listeners_[i], nullptr, nullptr);
      if (fd >= 0) {
        accept_failing_ = false;
        start_connection(fd);
        continue;
      }
      const int e = errno;
      if (would_block(e)) return;
      // The peer gave up before we accepted, or a signal interrupted us: next one.
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      // Out of descriptors or memory, or something unexpected. The connection stays queued, so
      // accepting again now would fail again (and spin on a level-triggered port): back off.
      if (!accept_failing_)  // once per episode, not every 100 ms
        std::fprintf(stderr, "echo_server: accept: %s; retrying every 100 ms\n", std::strerror(e));
      accept_failing_ = true;
      pause_accepting();
      resume_accepting(100ms);
      return;
    }
  }

  void accept_all() noexcept {
    for (std::size_t i = 0; i < listener_count_ && !accept_paused_; ++i) accept_from(i);
  }

  void pause_accepting() noexcept {
    if (accept_paused_) return;
    accept_paused_ = true;
    for (std::size_t i = 0; i < listener_count_; ++i) (void)loop_.modify(listener_sources_[i], events::none);
  }

  // Connections that queued while we were paused produce no new readiness edge, so a resume also
  // runs one accept pass, from a timer rather than from inside whatever callback resumed us.
  void resume_accepting(loop_type::duration delay) noexcept {
    if (accept_timer_armed_ || shutting_down_) return;
    auto t = loop_.after(delay, [this] {
      accept_timer_armed_ = false;
      accept_paused_ = false;
      for (std::size_t i = 0; i < listener_count_; ++i) (void)loop_.modify(listener_sources_[i], events::read);
      accept_all();
    });
    if (t) {
      accept_timer_ = t.value();
      accept_timer_armed_ = true;
    }
  }

  void start_connection(int fd) noexcept {
    if (!make_nonblocking(fd)) {  // accept() does not pass O_NONBLOCK on everywhere
      ::close(fd);
      return;
    }
    connection& c = *free_;
    connection* cp = &c;
    auto source = loop_.add(fd, events::read, [this, cp](events ev) { on_ready(*cp, ev); });
    if (!source) {
      std::fprintf(stderr, "echo_server: add(connection): %s\n", tinyloop::to_string(source.error()));
      ::close(fd);
      return;
    }
    free_ = c.next_free;
    c.fd = fd;
    c.source = source.value();
    c.interest = events::read;
    c.received = c.sent = 0;
    c.reading_paused = c.peer_closed = c.resume_armed = false;
    c.last_active = loop_.now();
    ++open_;
    ++accepted_;
    if (!arm_idle_timer(c, c.last_active + idle_timeout_)) {
      close_connection(c);
      return;
    }
    // The peer may have sent data before we registered; the contract promises a readiness report
    // only after EAGAIN, so read now instead of waiting for one.
    service(c);
  }

  // ---- one connection ------------------------------------------------------------------------

  void on_ready(connection& c, events ev) noexcept {
    if (any(ev & events::error)) {  // reset or similar: nothing more can be sent or received
      close_connection(c);
      return;
    }
    service(c);
  }

  // Moves bytes both ways until each direction is settled: it would block (so the loop reports it
  // again when it can move), or it is idle on purpose (reading paused, peer done, nothing to
  // send). Stops early when this turn's budget is spent and continues from a zero-delay timer.
  void service(connection& c) noexcept {
    std::size_t budget = turn_budget;
    for (;;) {
      bool write_blocked = false;
      bool read_blocked = false;
      while (c.pending() != 0 && budget != 0) {
        iovec iov[2];
        msghdr message{};
        message.msg_iov = iov;
        message.msg_iovlen = static_cast<decltype(message.msg_iovlen)>(c.unsent(iov, budget));
        const ssize_t n = ::sendmsg(c.fd, &message, MSG_NOSIGNAL);
        if (n > 0) {
          c.sent += static_cast<std::uint32_t>(n);
          budget -= static_cast<std::size_t>(n);
          echoed_ += static_cast<unsigned long long>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else if (n < 0 && would_block(errno)) {
          write_blocked = true;
          break;
        } else {
          close_connection(c);  // EPIPE, ECONNRESET, ...
          return;
        }
      }
      if (c.reading_paused && c.pending() <= low_water) c.reading_paused = false;
      while (!c.reading_paused && !c.peer_closed && budget != 0) {
        if (c.pending() >= high_water) {
          c.reading_paused = true;
          break;
        }
        iovec iov[2];
        const int pieces = c.free_space(iov, budget);
        const ssize_t n = ::readv(c.fd, iov, pieces);
        if (n > 0) {
          c.received += static_cast<std::uint32_t>(n);
          budget -= static_cast<std::size_t>(n);
        } else if (n == 0) {
          c.peer_closed = true;
        } else if (would_block(errno)) {
          read_blocked = true;
          break;
        } else if (errno != EINTR) {
          close_connection(c);
          return;
        }
      }
      if (budget != turn_budget) c.last_active = loop_.now();
      if (c.peer_closed && c.pending() == 0) {
        close_connection(c);
        return;
      }
      const bool read_settled = read_blocked || c.reading_paused || c.peer_closed;
      const bool write_settled = write_blocked || c.pending() == 0;
      if (read_settled && write_settled) break;
      if (budget == 0) {
        arm_resume_timer(c);
        break;
      }
    }
    update_interest(c);
  }

  // Read interest while we want input, write interest only while output waits: on a
  // level-triggered port an unwanted interest would report the fd ready again and again.
  void update_interest(connection& c) noexcept {
    events want = events::none;
    if (!c.reading_paused && !c.peer_closed) want |= events::read;
    if (c.pending() != 0) want |= events::write;
    if (want == c.interest) return;
    const errc e = loop_.modify(c.source, want);
    if (e != errc::ok) {
      std::fprintf(stderr, "echo_server: modify: %s\n", tinyloop::to_string(e));
      close_connection(c);
      return;
    }
    c.interest = want;
  }

  void arm_resume_timer(connection& c) noexcept {
    if (c.resume_armed) return;
    connection* cp = &c;
    auto t = loop_.after(0ms, [this, cp] {
      cp->resume_armed = false;
      service(*cp);
    });
    // Cannot fail: there is a timer slot per connection for this. If it did, the connection would
    // wait for its next readiness report or its idle timeout.
    if (t) {
      c.resume_timer = t.value();
      c.resume_armed = true;
    }
  }

  // The idle timer is not moved on every read: it fires at the old deadline, sees the recent
  // traffic, and sleeps again until last_active + idle_timeout. One timer operation per timeout
  // instead of one per read.
  bool arm_idle_timer(connection& c, loop_type::time_point deadline) noexcept {
    connection* cp = &c;
    auto t = loop_.at(deadline, [this, cp] { on_idle_timer(*cp); });
    if (!t) return false;
    c.idle_timer = t.value();
    return true;
  }

  void on_idle_timer(connection& c) noexcept {
    const loop_type::time_point deadline = c.last_active + idle_timeout_;
    if (loop_.now() >= deadline) {
      ++idle_closes_;
      close_connection(c);
    } else if (!arm_idle_timer(c, deadline)) {
      close_connection(c);
    }
  }

  void close_connection(connection& c) noexcept {
    // remove() first: once it returns no callback of this source runs, even for an event that
    // was already fetched. Cancelling a timer that already fired is a harmless not_found.
    (void)loop_.remove(c.source);
    (void)loop_.cancel(c.idle_timer);
    if (c.resume_armed) (void)loop_.cancel(c.resume_timer);
    ::close(c.fd);
    c.fd = -1;
    c.next_free = free_;
    free_ = &c;
    --open_;
    if (accept_paused_) resume_accepting(loop_type::duration::zero());
  }

  // ---- shutting down ----------------------------------------------------------------------

  void shut_down(int signo) noexcept {
    if (shutting_down_) return;
    shutting_down_ = true;
    std::fprintf(stderr, "echo_server: %s: closing %zu listener(s) and %zu connection(s)\n",
                 signo == SIGINT ? "SIGINT" : "SIGTERM", listener_count_, open_);
    for (std::size_t i = 0; i < listener_count_; ++i) {
      (void)loop_.remove(listener_sources_[i]);
      ::close(listeners_[i]);
    }
    listener_count_ = 0;
    if (accept_timer_armed_) (void)loop_.cancel(accept_timer_);
    for (connection& c : connections_)
      if (c.fd >= 0) close_connection(c);
    // Unwatching restores the default action: a second signal ends the process the usual way.
    (void)loop_.unwatch_signal(SIGINT);
    (void)loop_.unwatch_signal(SIGTERM);
    loop_.stop();
  }

  loop_type loop_;
  loop_type::duration idle_timeout_{};
  std::uint16_t port_ = 0;
  int listeners_[max_listeners] = {};
  tinyloop::source_id listener_sources_[max_listeners];
  std::size_t listener_count_ = 0;
  tinyloop::timer_id accept_timer_;
  bool accept_timer_armed_ = false;
  bool accept_paused_ = false;
  bool accept_failing_ = false;
  bool shutting_down_ = false;
  connection* free_ = nullptr;
  std::size_t open_ = 0;
  unsigned long accepted_ = 0;
  unsigned long idle_closes_ = 0;
  unsigned long long echoed_ = 0;
  connection connections_[max_connections];
};

bool parse_number(const char* text, unsigned long max, unsigned long& out) noexcept {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(text, &end, 10);
  return errno == 0 && *end == '\0' && out <= max;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long port = 0;
  unsigned long idle_ms = 30000;
  if (argc < 2 || argc > 3 || !parse_number(argv[1], 65535, port) ||
      (argc == 3 && (!parse_number(argv[2], 86400000, idle_ms) || idle_ms == 0))) {
    std::fprintf(stderr,
                 "usage: echo_server PORT [IDLE_MS]\n"
                 "  PORT     0-65535; 0 picks a free port. Prints \"port N\" on stdout when listening.\n"
                 "  IDLE_MS  close connections idle this long (1-86400000, default 30000)\n");
    return 2;
  }
  // About 4 MiB of connection buffers: static storage rather than the stack, made once.
  static echo_server server;
  if (!server.start(static_cast<std::uint16_t>(port), std::chrono::milliseconds(idle_ms))) return 1;
  std::printf("port %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  return server.run();
}
