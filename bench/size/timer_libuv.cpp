// The smallest useful libuv program: one timer, run until it fires.
#include <uv.h>

#include <cstdio>

int main() {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, [](uv_timer_t*) { std::puts("fired"); }, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop);
}
