// Prints sizeof the loop for default_config on this target (the README's footprint table; the test
// command prints it for x86-64 and armhf, tests/baremetal/footprint.cmake for Cortex-M3).
#include <cstdio>

#include "loop.hpp"

int main() {
#if defined(__x86_64__)
  const char* target = "x86-64";
#elif defined(__aarch64__)
  const char* target = "aarch64";
#elif defined(__arm__)
  const char* target = "armhf";
#else
  const char* target = "this target";
#endif
  std::printf("sizeof(event_loop<default_port, default_config>) on %s: %zu bytes\n", target,
              sizeof(tinyloop::event_loop<>));
  return 0;
}
