// The smallest useful libev program: one timer, run until it fires.
#include <ev.h>

#include <cstdio>

int main() {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  if (loop == nullptr) return 1;
  ev_timer t;
  ev_timer_init(&t, [](struct ev_loop*, ev_timer*, int) { std::puts("fired"); }, 0.001, 0.);
  ev_timer_start(loop, &t);
  ev_run(loop, 0);
  ev_loop_destroy(loop);
  return 0;
}
