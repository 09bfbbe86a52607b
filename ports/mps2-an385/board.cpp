// mps2-an385 board support: clock, wait/wake, UART0 and soft-device channels, and their
// interrupt handlers. Register layouts: ARM CMSDK (DDI0479) APB timer and APB UART, and the
// ARMv7-M NVIC; interrupt numbers: AN385 (as QEMU's hw/arm/mps2.c wires them).
#include "board.hpp"

#include <atomic>

namespace tinyloop::boards {
namespace {

// ---- registers ------------------------------------------------------------------------
inline volatile std::uint32_t& reg(std::uintptr_t address) noexcept {
  return *reinterpret_cast<volatile std::uint32_t*>(address);
}

namespace timer {  // CMSDK APB timer: counts VALUE down to 0, interrupts, reloads from RELOAD
constexpr std::uintptr_t timer0 = 0x40000000, timer1 = 0x40001000;
constexpr std::uintptr_t ctrl = 0x00, value = 0x04, reload = 0x08, intstatus = 0x0c;
constexpr std::uint32_t ctrl_enable = 1u << 0, ctrl_irq_enable = 1u << 3;
}  // namespace timer

namespace uart {  // CMSDK APB UART
constexpr std::uintptr_t uart0 = 0x40004000;
constexpr std::uintptr_t data = 0x00, state = 0x04, ctrl = 0x08, intstatus = 0x0c, bauddiv = 0x10;
constexpr std::uint32_t state_tx_full = 1u << 0, state_rx_full = 1u << 1;
constexpr std::uint32_t state_rx_overrun = 1u << 3;
constexpr std::uint32_t ctrl_tx_enable = 1u << 0, ctrl_rx_enable = 1u << 1;
constexpr std::uint32_t ctrl_tx_irq_enable = 1u << 2, ctrl_rx_irq_enable = 1u << 3;
constexpr std::uint32_t int_tx = 1u << 0, int_rx = 1u << 1;
constexpr std::uint32_t baud_divisor = 25'000'000 / 115'200;  // PCLK / baud, >= 16
}  // namespace uart

namespace nvic {
constexpr std::uintptr_t iser = 0xE000E100, icpr = 0xE000E280, ispr = 0xE000E200;
constexpr unsigned irq_uart0_rx = 0, irq_uart0_tx = 1, irq_timer0 = 8, irq_timer1 = 9;
constexpr unsigned irq_soft_device = 31;
inline void enable(unsigned irq) noexcept { reg(iser) = 1u << irq; }
inline void set_pending(unsigned irq) noexcept { reg(ispr) = 1u << irq; }
inline void clear_pending(unsigned irq) noexcept { reg(icpr) = 1u << irq; }
}  // namespace nvic

// PRIMASK save/mask/restore. "memory" clobbers keep the compiler from moving accesses to
// shared state out of the masked region.
inline std::uint32_t mask_interrupts() noexcept {
  std::uint32_t primask;
  asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  return primask;
}
inline void restore_interrupts(std::uint32_t primask) noexcept {
  asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

// ---- state shared with the interrupt handlers ------------------------------------------
// One core: interrupt handlers and the main program interleave but never run in parallel, so
// every std::atomic below needs only atomicity against an interrupt (they are lock-free on
// ARMv7-M) and the ordering each comment gives.

// Completed TIMER0 periods (2^32 ticks each). Written only by TIMER0_IRQHandler; now() reads
// it with interrupts masked.
volatile std::uint32_t timer0_wraps = 0;

// wake() since the last wait() returned. Release/acquire: a handler's writes before wake()
// (for example soft_device_ready) are visible once wait() has seen the flag.
std::atomic<bool> wake_requested{false};

std::atomic<std::uint8_t> soft_device_ready{0};    // events bits
std::atomic<std::uint8_t> soft_device_pending{0};  // bits raise() asked the handler to set
std::atomic<std::uint32_t> soft_device_count{0};

bool initialized = false;

}  // namespace

// ---- clock ----------------------------------------------------------------------------
mps2_an385::clock::time_point mps2_an385::clock::now() noexcept {
  const std::uint32_t primask = mask_interrupts();
  std::uint32_t wraps = timer0_wraps;
  std::uint32_t value = reg(timer::timer0 + timer::value);
  if (reg(timer::timer0 + timer::intstatus) & 1u) {
    // The counter reached 0 but the handler has not counted that period yet (interrupts are
    // masked, or it is about to run). The counter sits at 0 for one tick before reloading:
    // wait for the reload (at most 40 ns) so `value` belongs to the new period.
    do {
      value = reg(timer::timer0 + timer::value);
    } while (value == 0);
    ++wraps;
  }
  restore_interrupts(primask);
  const std::uint64_t ticks = (std::uint64_t{wraps} << 32) | (0xFFFF'FFFFu - value);
  return time_point(duration(static_cast<rep>(ticks)));
}

// ---- init -----------------------------------------------------------------------------
void mps2_an385::init() noexcept {
  if (initialized) {
    return;
  }
  initialized = true;

  // TIMER0 free-running over the full 32 bits; its interrupt counts the periods.
  reg(timer::timer0 + timer::ctrl) = 0;
  reg(timer::timer0 + timer::intstatus) = 1;
  reg(timer::timer0 + timer::reload) = 0xFFFF'FFFFu;  // also loads VALUE
  reg(timer::timer0 + timer::ctrl) = timer::ctrl_enable | timer::ctrl_irq_enable;

  // TIMER1 stopped until wait() arms it.
  reg(timer::timer1 + timer::ctrl) = 0;
  reg(timer::timer1 + timer::intstatus) = 1;

  reg(uart::uart0 + uart::bauddiv) = uart::baud_divisor;
  reg(uart::uart0 + uart::ctrl) = uart::ctrl_tx_enable | uart::ctrl_rx_enable |
                                  uart::ctrl_rx_irq_enable | uart::ctrl_tx_irq_enable;

  nvic::enable(nvic::irq_timer0);
  nvic::enable(nvic::irq_timer1);
  nvic::enable(nvic::irq_uart0_rx);
  nvic::enable(nvic::irq_uart0_tx);
  nvic::enable(nvic::irq_soft_device);
  asm volatile("cpsie i" ::: "memory");
}

// ---- wait / wake ----------------------------------------------------------------------
void mps2_an385::wait(clock::time_point deadline) noexcept {
  if (deadline != clock::time_point::min()) {
    const std::uint32_t primask = mask_interrupts();
    // Interrupts are masked from here to the WFI: a wake() from a handler either ran before
    // this load (we see the flag) or is pending and makes WFI return at once.
    if (!wake_requested.load(std::memory_order_acquire)) {
      const clock::time_point now = clock::now();
      if (deadline > now) {
        const bool timed = deadline != clock::time_point::max();
        if (timed) {
          // The timer interrupts `reload` ticks after it is loaded, and `now` was read before
          // that, so it never fires before the deadline. Deadlines past one 32-bit period
          // (172 s) wake early; the loop then simply waits again.
          const auto ticks = static_cast<std::uint64_t>((deadline - now).count());
          const std::uint32_t reload =
              ticks > 0xFFFF'FFFFu ? 0xFFFF'FFFFu : static_cast<std::uint32_t>(ticks);
          reg(timer::timer1 + timer::reload) = reload;
          reg(timer::timer1 + timer::ctrl) = timer::ctrl_enable | timer::ctrl_irq_enable;
        }
        asm volatile("dsb\n\twfi" ::: "memory");
        if (timed) {
          // Disarm so a deadline that did not end this sleep cannot end a later one.
          reg(timer::timer1 + timer::ctrl) = 0;
          reg(timer::timer1 + timer::intstatus) = 1;
          nvic::clear_pending(nvic::irq_timer1);
        }
      }
    }
    // Pending handlers run here, before wait() returns, so what they made ready is seen by
    // the loop's next device poll.
    restore_interrupts(primask);
  }
  // Consume the wakes that this wait() answers: those issued before it returns. A wake() from
  // a handler after this point makes the next wait() return at once (a spurious iteration,
  // never a lost one).
  wake_requested.store(false, std::memory_order_relaxed);
}

void mps2_an385::wake() noexcept {
  // Release: pairs with the acquire load in wait(). No SEV needed: a handler that calls this
  // has already ended any WFI, and the main program never calls it while wait() sleeps.
  wake_requested.store(true, std::memory_order_release);
}

// ---- device channels ------------------------------------------------------------------
events mps2_an385::poll(int device) noexcept {
  switch (device) {
    case uart0: {
      const std::uint32_t state = reg(uart::uart0 + uart::state);
      events ready = events::none;
      if (state & uart::state_rx_full) {
        ready |= events::read;
      }
      if (!(state & uart::state_tx_full)) {
        ready |= events::write;
      }
      if (state & uart::state_rx_overrun) {
        reg(uart::uart0 + uart::state) = uart::state_rx_overrun;  // W1C: report it once
        ready |= events::error;
      }
      return ready;
    }
    case soft_device:
      return static_cast<events>(soft_device_ready.load(std::memory_order_acquire));
    default:
      return events::none;
  }
}

bool mps2_an385::uart_try_read(char& c) noexcept {
  if (!(reg(uart::uart0 + uart::state) & uart::state_rx_full)) {
    return false;
  }
  c = static_cast<char>(reg(uart::uart0 + uart::data) & 0xFFu);
  return true;
}

bool mps2_an385::uart_try_write(char c) noexcept {
  if (reg(uart::uart0 + uart::state) & uart::state_tx_full) {
    return false;
  }
  reg(uart::uart0 + uart::data) = static_cast<unsigned char>(c);
  return true;
}

void mps2_an385::uart_write(const char* s) noexcept {
  for (; *s != '\0'; ++s) {
    while (!uart_try_write(*s)) {
    }
  }
}

void mps2_an385::soft_device_raise(events ev) noexcept {
  soft_device_pending.fetch_or(static_cast<std::uint8_t>(ev), std::memory_order_relaxed);
  nvic::set_pending(nvic::irq_soft_device);
}

void mps2_an385::soft_device_clear(events ev) noexcept {
  soft_device_ready.fetch_and(static_cast<std::uint8_t>(~static_cast<std::uint8_t>(ev)),
                              std::memory_order_relaxed);
}

std::uint32_t mps2_an385::soft_device_interrupts() noexcept {
  return soft_device_count.load(std::memory_order_relaxed);
}

}  // namespace tinyloop::boards

// ---- interrupt handlers (override the weak ones in startup.cpp) -------------------------
extern "C" void TIMER0_IRQHandler() noexcept {
  using namespace tinyloop::boards;
  reg(timer::timer0 + timer::intstatus) = 1;
  // now() counts a period as ended only once VALUE has reloaded; do the same here.
  while (reg(timer::timer0 + timer::value) == 0) {
  }
  timer0_wraps = timer0_wraps + 1;
}

extern "C" void TIMER1_IRQHandler() noexcept {
  using namespace tinyloop::boards;
  // Only ends the WFI; wait() disarms the timer. Stop it here too in case the interrupt came
  // in after wait() had disarmed it.
  reg(timer::timer1 + timer::ctrl) = 0;
  reg(timer::timer1 + timer::intstatus) = 1;
}

extern "C" void UART0RX_IRQHandler() noexcept {
  using namespace tinyloop::boards;
  reg(uart::uart0 + uart::intstatus) = uart::int_rx;  // W1C; the byte stays in DATA
  mps2_an385::wake();
}

extern "C" void UART0TX_IRQHandler() noexcept {
  using namespace tinyloop::boards;
  reg(uart::uart0 + uart::intstatus) = uart::int_tx;
  mps2_an385::wake();
}

extern "C" void GPIO0_15_IRQHandler() noexcept {
  using namespace tinyloop::boards;
  const std::uint8_t raised = soft_device_pending.exchange(0, std::memory_order_relaxed);
  soft_device_ready.fetch_or(raised, std::memory_order_release);
  soft_device_count.fetch_add(1, std::memory_order_relaxed);
  mps2_an385::wake();
}
