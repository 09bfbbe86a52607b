// Code-size baseline: the same flags and libraries, no event loop.
#include <cstdio>

int main() {
  std::puts("fired");
  return 0;
}
