// echo_client: drives echo_server through real sockets, the way its test must.
//
//   echo_client [--bytes N] [--timeout SECONDS] [--idle-ms MS] -- SERVER_COMMAND...
//
// Starts `SERVER_COMMAND... 0 MS` (the command may begin with an emulator, such as
// `qemu-arm -L /usr/arm-linux-gnueabihf`), reads "port N" from its stdout, and then, all at once:
//   - "stream" connections over 127.0.0.1 and ::1 send N pseudo-random bytes (default 16 MiB)
//     while reading the echo, and check every byte;
//   - "stall" connections over 127.0.0.1 and ::1, with small socket buffers, send until send()
//     would block without reading anything, then read until every byte sent is back, again and
//     again. The server must stop reading at its high-water mark, keep its partial writes, and
//     resume reading after the drain with no new readiness edge to prompt it;
//   - an "idle" connection sends 16 bytes, gets them back, and must then be closed by the server's
//     idle timeout.
// The data connections half-close when all is sent and require EOF right after the last byte.
// Then SIGTERM must make the server exit with status 0. ::1 is skipped, with a message, on a host
// without IPv6. Every wait is bounded by --timeout (default 120 s): a hung server fails the test
// (and is killed) rather than hanging it. Exit status 0 when everything checked out, 1 otherwise.
//
// The client uses poll(2) directly rather than tinyloop, so a bug in the loop cannot hide itself
// by being on both ends.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

constexpr std::size_t chunk_bytes = 64 * 1024;
constexpr int stall_buffer_bytes = 32 * 1024;  // requested SO_SNDBUF/SO_RCVBUF of stall connections
constexpr std::uint64_t idle_bytes = 16;
constexpr std::size_t max_peers = 5;

steady::time_point g_deadline;
pid_t g_server = -1;

[[noreturn]] void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));

void fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("echo_client: FAIL: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  if (g_server > 0) {
    ::kill(g_server, SIGKILL);
    ::waitpid(g_server, nullptr, 0);
  }
  std::exit(1);
}

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

double seconds_since(steady::time_point t) { return std::chrono::duration<double>(steady::now() - t).count(); }

// poll() that gives up at the global deadline.
void wait_for(pollfd* fds, nfds_t count, const char* what) {
  for (;;) {
    const auto left = g_deadline - steady::now();
    if (left <= steady::duration::zero()) fail("timed out waiting for %s", what);
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    const int r = ::poll(fds, count, static_cast<int>(ms < 1000 ? ms : 1000));
    if (r > 0) return;
    if (r < 0 && errno != EINTR) fail("poll: %s", std::strerror(errno));
  }
}

// The payload: byte i of a stream is byte (i % 8) of mix(seed + (i / 8) * golden), so any range
// can be produced on its own, by the sender and again by the checker.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

void pattern(std::uint64_t seed, std::uint64_t position, unsigned char* out, std::size_t n) {
  while (n != 0) {
    const std::uint64_t word = mix(seed + (position >> 3) * 0x9e3779b97f4a7c15u);
    for (unsigned k = position & 7; k < 8 && n != 0; ++k, --n, ++position)
      *out++ = static_cast<unsigned char>(word >> (8 * k));
  }
}

// ---- the server process ------------------------------------------------------------------------

int g_server_stdout = -1;

void start_server(char** command, int count, unsigned long idle_ms) {
  static char port_arg[] = "0";
  static char idle_arg[24];
  std::snprintf(idle_arg, sizeof idle_arg, "%lu", idle_ms);
  std::vector<char*> argv(command, command + count);
  argv.push_back(port_arg);
  argv.push_back(idle_arg);
  argv.push_back(nullptr);

  int out[2];
  if (::pipe(out) != 0) fail("pipe: %s", std::strerror(errno));
  ::fcntl(out[0], F_SETFD, FD_CLOEXEC);
  std::fflush(nullptr);
  g_server = ::fork();
  if (g_server < 0) fail("fork: %s", std::strerror(errno));
  if (g_server == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[1]);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "echo_client: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out[1]);
  g_server_stdout = out[0];
  std::printf("started:");
  for (char* a : argv)
    if (a != nullptr) std::printf(" %s", a);
  std::printf("\n");
}

// Reads the server's first stdout line, "port N".
unsigned read_port() {
  char line[128];
  std::size_t used = 0;
  for (;;) {
    pollfd p{g_server_stdout, POLLIN, 0};
    wait_for(&p, 1, "the server's port");
    const ssize_t n = ::read(g_server_stdout, line + used, sizeof line - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("the server exited before it printed its port");
    used += static_cast<std::size_t>(n);
    line[used] = '\0';
    if (std::strchr(line, '\n') != nullptr) break;
    if (used == sizeof line - 1) fail("unexpected server output: %s", line);
  }
  unsigned port = 0;
  if (std::sscanf(line, "port %u", &port) != 1 || port == 0 || port > 65535)
    fail("unexpected server output: %s", line);
  return port;
}

// SIGTERM, then the server must exit by itself with status 0. Its stdout reaching EOF is the
// event that says it exited (nothing else holds the pipe), so no polling of waitpid is needed.
void stop_server() {
  int status = 0;
  if (::waitpid(g_server, &status, WNOHANG) != 0) fail("the server died during the test (status %#x)", status);
  const auto sent_at = steady::now();
  if (::kill(g_server, SIGTERM) != 0) fail("kill: %s", std::strerror(errno));
  for (;;) {
    pollfd p{g_server_stdout, POLLIN, 0};
    wait_for(&p, 1, "the server to exit after SIGTERM");
    char discard[256];
    const ssize_t n = ::read(g_server_stdout, discard, sizeof discard);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) fail("read: %s", std::strerror(errno));
  }
  if (::waitpid(g_server, &status, 0) != g_server) fail("waitpid: %s", std::strerror(errno));
  g_server = -1;
  if (WIFSIGNALED(status)) fail("the server was killed by signal %d after SIGTERM", WTERMSIG(status));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("the server exited with status %d after SIGTERM", WEXITSTATUS(status));
  std::printf("SIGTERM: server exited with status 0 after %.0f ms\n", 1000 * seconds_since(sent_at));
}

// ---- connections ---------------------------------------------------------------------------------

enum class kind { stream, stall, idle };

struct peer {
  char name[40] = {};
  kind mode = kind::stream;
  int fd = -1;
  std::uint64_t seed = 0;
  std::uint64_t total = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  bool draining = false;  // stall: no sending until all that was sent is back
  bool shut = false;      // shutdown(SHUT_WR) done
  bool eof = false;
  unsigned stalls = 0;    // stall: times send() would block
  steady::time_point last_send_at;  // just before the latest send() call
  steady::time_point eof_at;
  std::size_t staged_offset = 0;
  std::size_t staged_length = 0;
  unsigned char staged[chunk_bytes];
};

peer g_peers[max_peers];
std::size_t g_peer_count = 0;

bool ipv6_loopback(char* why, std::size_t size) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) {
    std::snprintf(why, size, "socket(AF_INET6): %s", std::strerror(errno));
    return false;
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
  if (!ok) std::snprintf(why, size, "bind(::1): %s", std::strerror(errno));
  ::close(fd);
  return ok;
}

void connect_peer(peer& p, int family, unsigned port) {
  p.fd = ::socket(family, SOCK_STREAM, 0);
  if (p.fd < 0) fail("%s: socket: %s", p.name, std::strerror(errno));
  const int flags = ::fcntl(p.fd, F_GETFL);
  if (flags < 0 || ::fcntl(p.fd, F_SETFL, flags | O_NONBLOCK) != 0) fail("%s: fcntl: %s", p.name, std::strerror(errno));
  if (p.mode == kind::stall) {
    // Small buffers (set before connect, so the window is small from the start): each stall fills
    // the path quickly, and there are many of them.
    const int size = stall_buffer_bytes;
    ::setsockopt(p.fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  sockaddr_in a4{};
  sockaddr_in6 a6{};
  int r;
  if (family == AF_INET) {
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4.sin_port = htons(static_cast<std::uint16_t>(port));
    r = ::connect(p.fd, reinterpret_cast<const sockaddr*>(&a4), sizeof a4);
  } else {
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_loopback;
    a6.sin6_port = htons(static_cast<std::uint16_t>(port));
    r = ::connect(p.fd, reinterpret_cast<const sockaddr*>(&a6), sizeof a6);
  }
  if (r != 0) {
    if (errno != EINPROGRESS) fail("%s: connect: %s", p.name, std::strerror(errno));
    pollfd w{p.fd, POLLOUT, 0};
    wait_for(&w, 1, p.name);
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) fail("%s: connect: %s", p.name, std::strerror(error));
  }
}

peer& add_peer(const char* family_name, kind mode, std::uint64_t total) {
  peer& p = g_peers[g_peer_count++];
  const char* mode_name = mode == kind::stream ? "stream" : mode == kind::stall ? "stall" : "idle";
  std::snprintf(p.name, sizeof p.name, "%s %s", family_name, mode_name);
  p.mode = mode;
  p.total = total;
  p.seed = 0x7e57ull * g_peer_count;
  return p;
}

short interest(const peer& p) {
  switch (p.mode) {
    case kind::stall:
      return (p.draining || p.sent == p.total) ? POLLIN : POLLOUT;
    case kind::stream:
    case kind::idle:
      break;
  }
  return static_cast<short>(POLLIN | (p.sent < p.total ? POLLOUT : 0));
}

void send_some(peer& p) {
  while (p.sent < p.total) {
    if (p.staged_offset == p.staged_length) {
      const std::uint64_t left = p.total - p.sent;
      p.staged_length = left < chunk_bytes ? static_cast<std::size_t>(left) : chunk_bytes;
      p.staged_offset = 0;
      pattern(p.seed, p.sent, p.staged, p.staged_length);
    }
    p.last_send_at = steady::now();
    const ssize_t n = ::send(p.fd, p.staged + p.staged_offset, p.staged_length - p.staged_offset, MSG_NOSIGNAL);
    if (n > 0) {
      p.staged_offset += static_cast<std::size_t>(n);
      p.sent += static_cast<std::uint64_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && would_block(errno)) {
      if (p.mode == kind::stall) {
        ++p.stalls;
        p.draining = true;
      }
      return;
    } else {
      fail("%s: send after %llu bytes: %s", p.name, static_cast<unsigned long long>(p.sent), std::strerror(errno));
    }
  }
  if (p.mode != kind::idle && !p.shut) {
    if (::shutdown(p.fd, SHUT_WR) != 0) fail("%s: shutdown: %s", p.name, std::strerror(errno));
    p.shut = true;
  }
}

void receive_some(peer& p) {
  static unsigned char data[chunk_bytes];
  static unsigned char expected[chunk_bytes];
  for (;;) {
    const ssize_t n = ::recv(p.fd, data, sizeof data, 0);
    if (n > 0) {
      const auto got = static_cast<std::size_t>(n);
      if (p.received + got > p.sent)
        fail("%s: %llu bytes came back but only %llu were sent", p.name,
             static_cast<unsigned long long>(p.received + got), static_cast<unsigned long long>(p.sent));
      pattern(p.seed, p.received, expected, got);
      if (std::memcmp(data, expected, got) != 0) {
        std::size_t k = 0;
        while (data[k] == expected[k]) ++k;
        fail("%s: byte %llu came back as 0x%02x, 0x%02x was sent", p.name,
             static_cast<unsigned long long>(p.received + k), data[k], expected[k]);
      }
      p.received += got;
      if (p.draining && p.received == p.sent) {
        p.draining = false;
        return;
      }
    } else if (n == 0) {
      if (p.received != p.total)
        fail("%s: the server closed the connection after echoing %llu of %llu bytes", p.name,
             static_cast<unsigned long long>(p.received), static_cast<unsigned long long>(p.total));
      p.eof = true;
      p.eof_at = steady::now();
      ::close(p.fd);
      p.fd = -1;
      return;
    } else if (errno == EINTR) {
      continue;
    } else if (would_block(errno)) {
      return;
    } else {
      fail("%s: recv after %llu bytes: %s", p.name, static_cast<unsigned long long>(p.received),
           std::strerror(errno));
    }
  }
}

void run_peers() {
  for (;;) {
    pollfd fds[max_peers];
    peer* owners[max_peers];
    nfds_t count = 0;
    for (std::size_t i = 0; i < g_peer_count; ++i) {
      if (g_peers[i].eof) continue;
      fds[count] = pollfd{g_peers[i].fd, interest(g_peers[i]), 0};
      owners[count++] = &g_peers[i];
    }
    if (count == 0) return;
    wait_for(fds, count, "echo traffic (see the byte counts above the failure)");
    for (nfds_t k = 0; k < count; ++k) {
      peer& p = *owners[k];
      if (fds[k].revents & POLLOUT) send_some(p);
      if (fds[k].revents & (POLLIN | POLLERR | POLLHUP)) receive_some(p);
    }
  }
}

bool parse_number(const char* text, unsigned long long max, unsigned long long& out) {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(text, &end, 10);
  return errno == 0 && *end == '\0' && out <= max && out != 0;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: echo_client [--bytes N] [--timeout SECONDS] [--idle-ms MS] -- SERVER_COMMAND...\n"
               "  runs SERVER_COMMAND... 0 MS, which must print \"port N\" on stdout\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long long bytes = 16ull << 20;
  unsigned long long timeout_s = 120;
  unsigned long long idle_ms = 2000;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; i += 2) {
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    bool ok = false;
    if (std::strcmp(argv[i], "--bytes") == 0) ok = parse_number(value, 1ull << 40, bytes);
    else if (std::strcmp(argv[i], "--timeout") == 0) ok = parse_number(value, 86400, timeout_s);
    else if (std::strcmp(argv[i], "--idle-ms") == 0) ok = parse_number(value, 86400000, idle_ms);
    if (!ok) usage();
  }
  if (i + 1 >= argc) usage();
  g_deadline = steady::now() + std::chrono::seconds(timeout_s);

  start_server(argv + i + 1, argc - i - 1, static_cast<unsigned long>(idle_ms));
  const unsigned port = read_port();
  std::printf("server listening on port %u; %llu bytes per data connection, idle timeout %llu ms\n", port, bytes,
              idle_ms);

  char why[160] = {};
  const bool ipv6 = ipv6_loopback(why, sizeof why);
  connect_peer(add_peer("127.0.0.1", kind::stream, bytes), AF_INET, port);
  connect_peer(add_peer("127.0.0.1", kind::stall, bytes), AF_INET, port);
  if (ipv6) {
    connect_peer(add_peer("::1", kind::stream, bytes), AF_INET6, port);
    connect_peer(add_peer("::1", kind::stall, bytes), AF_INET6, port);
  } else {
    std::printf("skip ::1: no IPv6 loopback on this host (%s)\n", why);
  }
  peer& idle = add_peer("127.0.0.1", kind::idle, idle_bytes);
  connect_peer(idle, AF_INET, port);

  int sndbuf = 0;
  int rcvbuf = 0;
  socklen_t length = sizeof sndbuf;
  ::getsockopt(g_peers[0].fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &length);
  length = sizeof rcvbuf;
  ::getsockopt(g_peers[0].fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &length);
  std::printf("client socket buffers at connect: SO_SNDBUF %d, SO_RCVBUF %d (stall connections asked for %d)\n",
              sndbuf, rcvbuf, stall_buffer_bytes);

  const auto start = steady::now();
  run_peers();

  steady::time_point data_done = start;
  unsigned long long data_bytes = 0;
  for (std::size_t k = 0; k < g_peer_count; ++k) {
    const peer& p = g_peers[k];
    if (p.mode == kind::idle) continue;
    data_bytes += p.received;
    if (p.eof_at > data_done) data_done = p.eof_at;
    std::printf("%-16s %llu bytes sent, echoed and checked, then EOF", p.name, static_cast<unsigned long long>(p.received));
    if (p.mode == kind::stall) std::printf("; send() blocked %u times with the client not reading", p.stalls);
    std::printf("\n");
    // The stall connection's point is to fill every buffer on the path; if it never did, the
    // test proved less than it claims.
    if (p.mode == kind::stall && p.stalls == 0) fail("%s: never filled the socket buffers; raise --bytes", p.name);
  }
  const double seconds = std::chrono::duration<double>(data_done - start).count();
  std::printf("echoed %llu bytes over %zu connections in %.3f s: %.1f MiB/s each way\n", data_bytes,
              g_peer_count - 1, seconds, seconds > 0 ? data_bytes / seconds / (1 << 20) : 0.0);
  // The server times activity with its loop time, which is read once per loop iteration, so it
  // may date our bytes a little before we sent them; the idle close can therefore come slightly
  // less than idle_ms after our send. Half the timeout is the bound that cannot flake and still
  // tells "closed by the idle timer" from "closed as soon as it went quiet".
  const auto idle_for = std::chrono::duration_cast<std::chrono::milliseconds>(idle.eof_at - idle.last_send_at);
  std::printf("%-16s closed by the server %lld ms after it sent its %llu bytes (idle timeout %llu ms)\n", idle.name,
              static_cast<long long>(idle_for.count()), static_cast<unsigned long long>(idle_bytes), idle_ms);
  if (idle_for.count() < static_cast<long long>(idle_ms / 2))
    fail("%s: closed long before the idle timeout", idle.name);

  stop_server();
  std::printf("ok\n");
  return 0;
}
