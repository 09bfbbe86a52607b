// A user's program: a timer, a post and a worker-pool job on the default port.
// Exit code 0 only if all three ran.
#include "loop.hpp"

#include <chrono>
#include <cstdio>

int main() {
  tinyloop::event_loop<> loop;
  if (loop.status() != tinyloop::errc::ok) {
    std::printf("event_loop failed: %s\n", tinyloop::to_string(loop.status()));
    return 1;
  }
  int ran = 0;
  if (!loop.after(std::chrono::milliseconds(1), [&ran] { ran += 1; })) return 2;
  if (loop.post([&ran] { ran += 10; }) != tinyloop::errc::ok) return 3;
  {
    tinyloop::worker_pool<tinyloop::event_loop<>> pool(loop);
    if (pool.status() != tinyloop::errc::ok) return 4;
    auto job = pool.submit([] {}, [&ran](tinyloop::errc status) {
      if (status == tinyloop::errc::ok) ran += 100;
    });
    if (!job) return 5;
    if (loop.run() != tinyloop::errc::ok) return 6;
  }
  std::printf("tinyloop consumer: ran=%d (want 111)\n", ran);
  return ran == 111 ? 0 : 7;
}
