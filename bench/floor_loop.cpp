#include "floor.hpp"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "harness.hpp"

namespace bench::floor {

loop::loop(std::size_t max_timers) : timers_(max_timers), heap_(max_timers) {
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

void loop::sift_up(std::size_t pos, entry e) {
  while (pos > 0) {
    std::size_t parent = (pos - 1) / 4;
    if (!before(e, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, e);
}

void loop::sift_down(std::size_t pos, entry e) {
  for (;;) {
    std::size_t first = 4 * pos + 1;
    if (first >= size_) break;
    std::size_t last = first + 4 < size_ ? first + 4 : size_;
    std::size_t best = first;
    for (std::size_t c = first + 1; c < last; ++c)
      if (before(heap_[c], heap_[best])) best = c;
    if (!before(heap_[best], e)) break;
    place(pos, heap_[best]);
    pos = best;
  }
  place(pos, e);
}

void loop::remove_at(std::size_t pos) {
  entry last = heap_[--size_];
  if (pos == size_) return;
  if (pos > 0 && before(last, heap_[(pos - 1) / 4]))
    sift_up(pos, last);
  else
    sift_down(pos, last);
}

std::uint32_t loop::arm(std::uint64_t delay_ns, timer_fn fn, void* ctx) {
  std::uint32_t slot = free_;
  check(slot < timers_.size(), "floor: timers full");
  free_ = timers_[slot].next_free;
  timers_[slot].fn = fn;
  timers_[slot].ctx = ctx;
  sift_up(size_++, {now_ + delay_ns, seq_++, slot});
  return slot;
}

void loop::cancel(std::uint32_t slot) {
  remove_at(timers_[slot].heap_pos);
  release(slot);
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
  while (size_ != 0) {
    const entry top = heap_[0];
    if (top.deadline > now_ || top.seq >= armed_before) break;
    remove_at(0);
    release(top.slot);
    timers_[top.slot].fn(timers_[top.slot].ctx);  // the slot is only reused by a later arm()
    ran = true;
  }
  int timeout = -1;
  if (ran || !block) {
    timeout = 0;
  } else if (size_ != 0) {
    std::uint64_t d = heap_[0].deadline;
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
