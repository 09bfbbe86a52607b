// The CMSDK APB dual timer's first counter (0x40002000, IRQ 10), which the board leaves to the
// application: the tests use it as "some hardware interrupt" that fires while the loop runs.
// A test defines `extern "C" void DUALTIMER_IRQHandler() noexcept` and calls clear() in it.
#pragma once

#include <cstdint>

namespace tl_test::dualtimer {

inline volatile std::uint32_t& reg(std::uintptr_t offset) noexcept {
  return *reinterpret_cast<volatile std::uint32_t*>(0x40002000u + offset);
}
constexpr std::uintptr_t load = 0x00, control = 0x08, intclr = 0x0c;
constexpr std::uint32_t control_oneshot = 1u << 0, control_32bit = 1u << 1,
                        control_irq_enable = 1u << 5, control_periodic = 1u << 6,
                        control_enable = 1u << 7;
constexpr std::uint32_t ticks_per_ms = 25'000;  // PCLK 25 MHz, no prescaler
constexpr unsigned irq = 10;

inline void enable_irq() noexcept {
  *reinterpret_cast<volatile std::uint32_t*>(0xE000E100u) = 1u << irq;  // NVIC ISER0
}
inline void stop() noexcept { reg(control) = 0; }
inline void clear() noexcept { reg(intclr) = 1; }
inline void start_periodic(std::uint32_t ticks) noexcept {
  stop();
  clear();
  reg(load) = ticks;
  reg(control) = control_enable | control_periodic | control_irq_enable | control_32bit;
  enable_irq();
}
inline void start_oneshot(std::uint32_t ticks) noexcept {
  stop();
  clear();
  reg(load) = ticks;
  reg(control) = control_enable | control_oneshot | control_irq_enable | control_32bit;
  enable_irq();
}

}  // namespace tl_test::dualtimer
