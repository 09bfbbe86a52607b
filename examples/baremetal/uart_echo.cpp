// UART echo with a heartbeat, on tinyloop's bare-metal port (QEMU mps2-an385, Cortex-M3).
// Echoes what is typed on UART0 (QEMU's stdio), prints "tick N" every second, and exits on
// Ctrl-D. Output goes through a small ring buffer and write readiness, so the loop never
// blocks on the UART.
//
//   cmake --preset cortex-m3 && cmake --build --preset cortex-m3 --target baremetal_uart_echo
//   ports/mps2-an385/qemu-run.sh build/cortex-m3/examples/baremetal/baremetal_uart_echo
#include <chrono>
#include <cstddef>

#include "board.hpp"

using board = tinyloop::boards::mps2_an385;
using loop_type = tinyloop::event_loop<tinyloop::boards::mps2_an385_port>;
using tinyloop::errc;
using tinyloop::events;

namespace {

constexpr char end_of_transmission = 0x04;  // Ctrl-D

// Bytes waiting for UART0's transmitter. When full, further output is dropped (a heartbeat
// line or an echoed byte is not worth blocking the loop for).
class tx_buffer {
 public:
  void push(char c) noexcept {
    if (size_ == sizeof bytes_) return;
    bytes_[(head_ + size_++) % sizeof bytes_] = c;
  }
  void push(const char* text) noexcept {
    for (; *text != '\0'; ++text) push(*text);
  }
  // Moves bytes into the UART while it accepts them.
  void drain() noexcept {
    while (size_ != 0 && board::uart_try_write(bytes_[head_])) {
      head_ = (head_ + 1) % sizeof bytes_;
      --size_;
    }
  }
  bool empty() const noexcept { return size_ == 0; }

 private:
  char bytes_[256] = {};
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

struct echo_app {
  loop_type loop;
  tinyloop::source_id uart;
  tx_buffer out;
  unsigned ticks = 0;

  void on_uart(events ev) noexcept {
    if (tinyloop::any(ev & events::read)) {
      char c;
      while (board::uart_try_read(c)) {
        if (c == end_of_transmission) {
          out.push("\r\nbye\r\n");
          loop.stop();
          return;
        }
        if (c == '\r') {
          out.push("\r\n");  // terminals send CR for Enter
        } else {
          out.push(c);
        }
      }
    }
    flush();
  }

  void heartbeat() noexcept {
    char digits[12] = {};
    char* first = digits + sizeof digits - 1;  // written right to left, NUL-terminated
    unsigned n = ++ticks;
    do {
      *--first = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n != 0);
    out.push("\r\n[tick ");
    out.push(first);
    out.push("]\r\n");
    flush();
  }

  // Write interest only while there is something to write: the UART is almost always writable,
  // and the bare-metal port reports readiness level-triggered.
  void flush() noexcept {
    out.drain();
    (void)loop.modify(uart, out.empty() ? events::read : events::read | events::write);
  }
};

echo_app app;  // static storage: the loop and its fixed-capacity tables live in .bss

}  // namespace

int main() {
  if (app.loop.status() != errc::ok) return 1;
  const auto uart = app.loop.add(board::uart0, events::read, [](events ev) { app.on_uart(ev); });
  const auto heartbeat = app.loop.every(std::chrono::seconds(1), [] { app.heartbeat(); });
  if (!uart || !heartbeat) return 2;
  app.uart = uart.value();
  app.out.push("tinyloop uart echo: type something, Ctrl-D quits\r\n");
  app.flush();
  if (app.loop.run() != errc::ok) return 3;
  while (!app.out.empty()) app.out.drain();  // the goodbye line
  return 0;
}
