#include "floor.hpp"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "harness.hpp"

namespace bench::floor {

loop::loop(std::size_t max_timers) : timers_(max_timers) {
  heap_.reserve(max_timers);
  for (std::size_t i = 0; i < max_timers; ++i) timers_[i].next_free = static_cast<std::uint32_t>(i + 1);
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  check(ep_ >= 0 && efd_ >= 0, "floor: epoll_create1/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake channel
  check(epoll_ctl(ep_, EPOLL_CTL_ADD, efd_, &ev) == 0, "floor: epoll_ctl(eventfd)");
  now_ = clock_ns();
}

loop::~loop() {
  close(efd_);
  close(ep_);
}

std::uint64_t loop::clock_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void loop::add(io_watch& w, std::uint32_t epoll_events) {
  epoll_event ev{};
  ev.events = epoll_events;
  ev.data.ptr = &w;
  check(epoll_ctl(ep_, EPOLL_CTL_ADD, w.fd, &ev) == 0, "floor: epoll_ctl(ADD)");
}

void loop::del(io_watch& w) { epoll_ctl(ep_, EPOLL_CTL_DEL, w.fd, nullptr); }

void loop::sift_up(std::size_t pos) {
  std::uint32_t slot = heap_[pos];
  while (pos > 0) {
    std::size_t parent = (pos - 1) / 2;
    if (!before(slot, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, slot);
}

void loop::sift_down(std::size_t pos) {
  std::uint32_t slot = heap_[pos];
  std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], slot)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, slot);
}

void loop::remove_at(std::size_t pos) {
  std::uint32_t last = heap_.back();
  heap_.pop_back();
  if (pos < heap_.size()) {
    place(pos, last);
    sift_down(pos);
    sift_up(timers_[last].heap_pos);
  }
}

std::uint32_t loop::arm(std::uint64_t delay_ns, timer_fn fn, void* ctx) {
  std::uint32_t slot = free_;
  check(slot < timers_.size(), "floor: timers full");
  free_ = timers_[slot].next_free;
  timer& t = timers_[slot];
  t.deadline = now_ + delay_ns;
  t.seq = seq_++;
  t.fn = fn;
  t.ctx = ctx;
  heap_.push_back(slot);
  sift_up(heap_.size() - 1);
  return slot;
}

void loop::cancel(std::uint32_t slot) {
  remove_at(timers_[slot].heap_pos);
  timers_[slot].next_free = free_;
  free_ = slot;
}

void loop::wake() {
  std::uint64_t one = 1;
  ssize_t r = write(efd_, &one, sizeof one);
  (void)r;
}

void loop::run_once(bool block) {
  now_ = clock_ns();
  std::uint64_t armed_before = seq_;
  bool ran = false;
  while (!heap_.empty()) {
    std::uint32_t top = heap_[0];
    timer& t = timers_[top];
    if (t.deadline > now_ || t.seq >= armed_before) break;
    timer_fn fn = t.fn;
    void* ctx = t.ctx;
    cancel(top);
    fn(ctx);
    ran = true;
  }
  int timeout = -1;
  if (ran || !block) {
    timeout = 0;
  } else if (!heap_.empty()) {
    std::uint64_t d = timers_[heap_[0]].deadline;
    std::uint64_t wait_ns = d > now_ ? d - now_ : 0;
    timeout = static_cast<int>((wait_ns + 999999) / 1000000);  // round up: never wake before the deadline
  }
  int n = epoll_wait(ep_, events_, 64, timeout);
  for (int i = 0; i < n; ++i) {
    auto* w = static_cast<io_watch*>(events_[i].data.ptr);
    if (w == nullptr) {
      std::uint64_t v;
      ssize_t r = read(efd_, &v, sizeof v);
      (void)r;
    } else {
      w->fn(w->ctx, events_[i].events);
    }
  }
}

}  // namespace bench::floor
