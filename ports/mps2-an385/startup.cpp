// Reset handler and vector table for mps2-an385 (Cortex-M3, 32 external interrupts).
// Every handler is a weak alias of tinyloop_unexpected_interrupt, so an application or a test
// defines, say, `extern "C" void DUALTIMER_IRQHandler()` to take an interrupt. The board's own
// handlers (TIMER0, TIMER1, UART0, IRQ 31) are in board.cpp.
#include <cstddef>
#include <cstdint>

#include "board.hpp"
#include "semihosting.hpp"

extern "C" {

// Linker script symbols (mps2-an385.ld).
extern std::uint32_t __stack_top;
extern std::uint32_t __data_start, __data_end, __data_load;
extern std::uint32_t __bss_start, __bss_end;
extern void (*__preinit_array_start[])();
extern void (*__preinit_array_end[])();
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();

// The application's main; the asm label names it without naming ::main in C++ (which
// [basic.start.main] forbids calling).
int tinyloop_application_main() __asm__("main");

[[noreturn]] void tinyloop_reset_handler() noexcept;
void tinyloop_unexpected_interrupt() noexcept;

#define TINYLOOP_WEAK_HANDLER(name) \
  void name() noexcept __attribute__((weak, alias("tinyloop_unexpected_interrupt")))
TINYLOOP_WEAK_HANDLER(NMI_Handler);
TINYLOOP_WEAK_HANDLER(HardFault_Handler);
TINYLOOP_WEAK_HANDLER(MemManage_Handler);
TINYLOOP_WEAK_HANDLER(BusFault_Handler);
TINYLOOP_WEAK_HANDLER(UsageFault_Handler);
TINYLOOP_WEAK_HANDLER(SVC_Handler);
TINYLOOP_WEAK_HANDLER(DebugMon_Handler);
TINYLOOP_WEAK_HANDLER(PendSV_Handler);
TINYLOOP_WEAK_HANDLER(SysTick_Handler);
// External interrupts, numbered as in AN385 (and QEMU's hw/arm/mps2.c).
TINYLOOP_WEAK_HANDLER(UART0RX_IRQHandler);     // 0
TINYLOOP_WEAK_HANDLER(UART0TX_IRQHandler);     // 1
TINYLOOP_WEAK_HANDLER(UART1RX_IRQHandler);     // 2
TINYLOOP_WEAK_HANDLER(UART1TX_IRQHandler);     // 3
TINYLOOP_WEAK_HANDLER(UART2RX_IRQHandler);     // 4
TINYLOOP_WEAK_HANDLER(UART2TX_IRQHandler);     // 5
TINYLOOP_WEAK_HANDLER(GPIO0ALL_IRQHandler);    // 6
TINYLOOP_WEAK_HANDLER(GPIO1ALL_IRQHandler);    // 7
TINYLOOP_WEAK_HANDLER(TIMER0_IRQHandler);      // 8
TINYLOOP_WEAK_HANDLER(TIMER1_IRQHandler);      // 9
TINYLOOP_WEAK_HANDLER(DUALTIMER_IRQHandler);   // 10
TINYLOOP_WEAK_HANDLER(SPI_IRQHandler);         // 11
TINYLOOP_WEAK_HANDLER(UARTOVF_IRQHandler);     // 12 (UART 0-2 overruns, ORed)
TINYLOOP_WEAK_HANDLER(ETHERNET_IRQHandler);    // 13
TINYLOOP_WEAK_HANDLER(I2S_IRQHandler);         // 14
TINYLOOP_WEAK_HANDLER(TOUCHSCREEN_IRQHandler); // 15
TINYLOOP_WEAK_HANDLER(GPIO0_0_IRQHandler);     // 16..31: GPIO0 pins 0..15
TINYLOOP_WEAK_HANDLER(GPIO0_1_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_2_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_3_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_4_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_5_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_6_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_7_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_8_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_9_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_10_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_11_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_12_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_13_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_14_IRQHandler);
TINYLOOP_WEAK_HANDLER(GPIO0_15_IRQHandler);    // 31: the board's soft_device
#undef TINYLOOP_WEAK_HANDLER

// The static-destructor registration the compiler emits for globals. Bare-metal programs never
// return to anything that would run those destructors, so registering is a no-op; defining it
// here keeps newlib's atexit machinery (which may allocate) out of the image.
void* __dso_handle = nullptr;
int __aeabi_atexit(void*, void (*)(void*), void*) noexcept { return 0; }
int __cxa_atexit(void (*)(void*), void*, void*) noexcept { return 0; }

// newlib's abort() and exit() end here.
[[noreturn]] void _exit(int code) noexcept { tinyloop::semihosting::exit(code); }

}  // extern "C"

namespace {

using handler = void (*)() noexcept;

struct vector_table {
  void* initial_stack;
  handler core[15];
  handler external[32];
};

}  // namespace

extern "C" __attribute__((section(".isr_vector"), used)) const vector_table tinyloop_vectors = {
    &__stack_top,
    {
        tinyloop_reset_handler,
        NMI_Handler,
        HardFault_Handler,
        MemManage_Handler,
        BusFault_Handler,
        UsageFault_Handler,
        nullptr,
        nullptr,
        nullptr,
        nullptr,
        SVC_Handler,
        DebugMon_Handler,
        nullptr,
        PendSV_Handler,
        SysTick_Handler,
    },
    {
        UART0RX_IRQHandler,  UART0TX_IRQHandler,  UART1RX_IRQHandler,   UART1TX_IRQHandler,
        UART2RX_IRQHandler,  UART2TX_IRQHandler,  GPIO0ALL_IRQHandler,  GPIO1ALL_IRQHandler,
        TIMER0_IRQHandler,   TIMER1_IRQHandler,   DUALTIMER_IRQHandler, SPI_IRQHandler,
        UARTOVF_IRQHandler,  ETHERNET_IRQHandler, I2S_IRQHandler,       TOUCHSCREEN_IRQHandler,
        GPIO0_0_IRQHandler,  GPIO0_1_IRQHandler,  GPIO0_2_IRQHandler,   GPIO0_3_IRQHandler,
        GPIO0_4_IRQHandler,  GPIO0_5_IRQHandler,  GPIO0_6_IRQHandler,   GPIO0_7_IRQHandler,
        GPIO0_8_IRQHandler,  GPIO0_9_IRQHandler,  GPIO0_10_IRQHandler,  GPIO0_11_IRQHandler,
        GPIO0_12_IRQHandler, GPIO0_13_IRQHandler, GPIO0_14_IRQHandler,  GPIO0_15_IRQHandler,
    },
};

extern "C" [[noreturn]] void tinyloop_reset_handler() noexcept {
  // .data is loaded into the code region; copy it to RAM, then zero .bss. volatile: GCC would
  // otherwise turn these loops into memcpy/memset calls, and newlib's may rely on .data.
  volatile std::uint32_t* src = &__data_load;
  for (volatile std::uint32_t* dst = &__data_start; dst < &__data_end;) {
    *dst++ = *src++;
  }
  for (volatile std::uint32_t* dst = &__bss_start; dst < &__bss_end;) {
    *dst++ = 0;
  }
  // The clock runs from here on, so static constructors and the first clock::now() (an
  // event_loop reads it before it opens its port) see real time. The port's open() calls
  // init() again, which does nothing then.
  tinyloop::boards::mps2_an385::init();
  for (auto** f = __preinit_array_start; f < __preinit_array_end; ++f) {
    (*f)();
  }
  for (auto** f = __init_array_start; f < __init_array_end; ++f) {
    (*f)();
  }
  tinyloop::semihosting::exit(tinyloop_application_main());
}

// A fault or an interrupt nobody handles: say which (IPSR: 3 = HardFault, 16 + n = IRQ n) and
// stop the program with exit code 99 rather than spin silently.
extern "C" void tinyloop_unexpected_interrupt() noexcept {
  std::uint32_t ipsr;
  asm volatile("mrs %0, ipsr" : "=r"(ipsr));
  char text[] = "tinyloop: unexpected exception 000\n";
  constexpr std::size_t digits = sizeof("tinyloop: unexpected exception ") - 1;
  text[digits] = static_cast<char>('0' + (ipsr / 100) % 10);
  text[digits + 1] = static_cast<char>('0' + (ipsr / 10) % 10);
  text[digits + 2] = static_cast<char>('0' + ipsr % 10);
  tinyloop::semihosting::write(text);
  tinyloop::semihosting::exit(99);
}
