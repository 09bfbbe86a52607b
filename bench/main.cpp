// tinyloop_bench: every operation for tinyloop, libuv, libev and the hand-written epoll floor, back to back.
//
//   tinyloop_bench [--quick] [google benchmark flags]      wall clock (Google Benchmark)
//   tinyloop_bench --count[=REGEX] [--count_scale=F]       fixed iteration counts for callgrind; prints
//                                                          "count <name> <iterations> <items_per_op>" lines
//   tinyloop_bench --list                                  case names
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

void register_floor();
void register_libuv();
void register_libev();
#ifdef BENCH_HAVE_TINYLOOP
void register_tinyloop();
#endif

namespace {
std::vector<case_info>& cases() {
  static std::vector<case_info> all;
  return all;
}
bool quick = false;

const char* const op_order[] = {"CreateDestroy", "WakeLatency",  "WakePingPong",  "TimerSingle",
                                "Timer1000",     "TimerChurn",   "PipeAddDel",    "IdleIter",
                                "PingPongUnix",  "PingPongTcp",  "PostBatch", "PostThroughput", "TimerScaling", "TimerScalingMid",
                                "FdScaling"};
const char* const lib_order[] = {"floor",    "floor-poll", "tinyloop", "tinyloop-poll",
                                 "libev",    "libev-poll", "libuv"};

template <std::size_t N>
std::size_t rank(const char* const (&order)[N], const std::string& s) {
  for (std::size_t i = 0; i < N; ++i)
    if (s == order[i]) return i;
  return N;
}
}  // namespace

void add_case(case_info info) { cases().push_back(std::move(info)); }
bool quick_mode() { return quick; }

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "tinyloop_bench: fixture failed: %s (errno %d: %s)\n", what, errno, std::strerror(errno));
  std::abort();
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

bool fds_available(long n) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  return rl.rlim_cur == RLIM_INFINITY || static_cast<rlim_t>(n) + 64 <= rl.rlim_cur;  // 64: the loops' own
}

int make_eventfd() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  check(fd >= 0, "eventfd");
  return fd;
}

void make_socketpair(int fds[2]) {
  check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
}

void make_pipe(int fds[2]) { check(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2"); }

void make_tcp_pair(int fds[2]) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(listener >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  check(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
  check(listen(listener, 1) == 0, "listen");
  socklen_t len = sizeof addr;
  check(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(client >= 0, "socket");
  check(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
  int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  check(server >= 0, "accept4");
  close(listener);
  int one = 1;
  for (int fd : {client, server}) {
    check(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY");
    check(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
  }
  fds[0] = client;
  fds[1] = server;
}

void close_fd(int fd) {
  if (fd >= 0) close(fd);
}

void write_byte(int fd) {
  // eventfd needs 8 bytes; sockets and pipes take the first byte of the same buffer.
  std::uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  check(r > 0, "write");
}

void drain(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  bool count = false;
  bool list = false;
  std::string count_filter = ".*";
  double count_scale = 1.0;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--list") {
      list = true;
    } else if (a == "--count") {
      count = true;
    } else if (a.rfind("--count=", 0) == 0) {
      count = true;
      count_filter = a.substr(8);
    } else if (a.rfind("--count_scale=", 0) == 0) {
      count_scale = std::atof(a.c_str() + 14);
    } else {
      rest.push_back(argv[i]);
    }
  }
  raise_fd_limit();
  register_floor();
#ifdef BENCH_HAVE_TINYLOOP
  register_tinyloop();
#endif
  register_libev();
  register_libuv();
  std::stable_sort(cases().begin(), cases().end(), [](const case_info& a, const case_info& b) {
    std::size_t ra = rank(op_order, a.op), rb = rank(op_order, b.op);
    if (ra != rb) return ra < rb;
    if (a.arg != b.arg) return a.arg < b.arg;
    return rank(lib_order, a.lib) < rank(lib_order, b.lib);
  });

  if (list) {
    for (const case_info& c : cases()) std::printf("%s%s\n", c.name().c_str(), c.count_iters ? "" : " (wall clock only)");
    return 0;
  }
  if (count) {
    std::regex re(count_filter);
    for (const case_info& c : cases()) {
      std::string name = c.name();
      if (c.count_iters == 0 || !std::regex_search(name, re)) continue;
      std::size_t iters = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(c.count_iters) * count_scale));
      std::printf("count %s %zu %g\n", name.c_str(), iters, c.items_per_op);
      std::fflush(stdout);
      c.run_count(c.arg, iters, name.c_str());
    }
    return 0;
  }

  static std::vector<std::string> names;  // RegisterBenchmark keeps the pointer
  names.reserve(cases().size());
  for (const case_info& c : cases()) {
    names.push_back(c.name());
    auto fn = c.run_wall;
    long arg = c.arg;
    // Real time is the headline; CPU time is the whole process's (every thread of the case), which on a
    // shared machine is the stable measure of the work done per operation.
    benchmark::RegisterBenchmark(names.back().c_str(), [fn, arg](benchmark::State& st) { fn(st, arg); })
        ->UseRealTime()
        ->MeasureProcessCPUTime();
  }
  int bargc = static_cast<int>(rest.size());
  benchmark::Initialize(&bargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, rest.data())) return 1;
  benchmark::AddCustomContext("quick", quick ? "1" : "0");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
