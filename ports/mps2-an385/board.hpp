// Board support for ARM's MPS2 board with the AN385 FPGA image (Cortex-M3), as QEMU models it
// (`qemu-system-arm -M mps2-an385`). Use it as the Board of tinyloop's bare-metal port:
//
//   #include "board.hpp"
//   tinyloop::event_loop<tinyloop::boards::mps2_an385_port> loop;
//
// Hardware it takes (and nothing else; everything else on the board is the application's):
//   TIMER0 (0x40000000, IRQ 8)  free-running down-counter at 25 MHz, extended to 64 bits: the clock.
//   TIMER1 (0x40001000, IRQ 9)  one-shot deadline interrupt that ends a wait().
//   UART0  (0x40004000, IRQ 0 rx / 1 tx)  device channel `uart0` (QEMU: the -serial backend).
//   IRQ 31 (a GPIO pin line, unused by QEMU) software-pended: device channel `soft_device`.
// SysTick is not used: QEMU loses SysTick interrupts when the host is loaded; the CMSDK timers
// are driven by QEMU's virtual clock and keep time. The dual timer (IRQ 10) stays free.
#pragma once

#include <chrono>
#include <cstdint>
#include <ratio>

#include "loop.hpp"

namespace tinyloop::boards {

struct mps2_an385 {
  // TIMER0 ticks (40 ns), 64-bit: wraps after 11 000 years.
  struct clock {
    using rep = std::int64_t;
    using period = std::ratio<1, 25'000'000>;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<clock, duration>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept;  // any context, interrupts masked or not
  };

  // Device channels, the "fds" of event_loop::add().
  static constexpr int uart0 = 0;        // read: a byte waits in RX; write: TX can take a byte;
                                         // error: an RX overrun happened (reported once)
  static constexpr int soft_device = 1;  // readiness set by soft_device_raise() from an interrupt

  // Starts TIMER0, UART0 (115200 8N1) and the interrupts. Idempotent.
  static void init() noexcept;

  // Sleeps with WFI until an interrupt or `deadline` (TIMER1 one-shot). Returns at once if
  // wake() was called since the previous wait() returned, if deadline == time_point::min() or
  // if the deadline has passed. The wake flag is checked with interrupts masked (PRIMASK) and
  // WFI still wakes on an interrupt that became pending while masked, so a wake() between the
  // check and the WFI is not lost.
  static void wait(clock::time_point deadline) noexcept;

  // Interrupt-safe: makes the wait() in progress, or the next one, return.
  static void wake() noexcept;

  // Level readiness of a device channel (events::none for an unknown channel).
  static events poll(int device) noexcept;

  // UART0 byte I/O, never blocking: false when RX is empty / TX is full.
  static bool uart_try_read(char& c) noexcept;
  static bool uart_try_write(char c) noexcept;
  // Blocking write of a NUL-terminated string (spins while TX is full).
  static void uart_write(const char* s) noexcept;

  // The software device, for tests and as a model of a driver: raise() pends IRQ 31, whose
  // handler ORs `ev` into the channel's readiness and calls wake(), as a real device's
  // interrupt handler would. clear() is the driver "consuming" the readiness.
  static void soft_device_raise(events ev) noexcept;
  static void soft_device_clear(events ev) noexcept;
  static std::uint32_t soft_device_interrupts() noexcept;  // how many times its handler ran
};

using mps2_an385_port = baremetal_port<mps2_an385>;

}  // namespace tinyloop::boards
