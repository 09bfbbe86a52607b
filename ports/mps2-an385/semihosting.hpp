// ARM semihosting calls (BKPT 0xAB on M-profile): text to the debugger/QEMU console and the
// program's exit code. Under QEMU they need `-semihosting-config enable=on,target=native`;
// on a board without a debugger attached, BKPT faults (HardFault), so production code should
// not call these.
#pragma once

#include <cstdint>

namespace tinyloop::semihosting {

enum class op : std::uint32_t {
  write0 = 0x04,         // r1: NUL-terminated string
  exit = 0x18,           // r1: reason (32-bit ARM: no exit code)
  exit_extended = 0x20,  // r1: {reason, exit code}
};

inline std::uint32_t call(op operation, const void* arg) noexcept {
  std::uint32_t result;
  // r0/r1 are named in the asm, not bound through register variables, so the compiler cannot
  // move them between the moves and the BKPT. "memory": the host reads (and may write) *arg.
  asm volatile(
      "mov r0, %1\n\t"
      "mov r1, %2\n\t"
      "bkpt 0xab\n\t"
      "mov %0, r0"
      : "=r"(result)
      : "r"(static_cast<std::uint32_t>(operation)), "r"(arg)
      : "r0", "r1", "memory");
  return result;
}

inline void write(const char* text) noexcept { call(op::write0, text); }

// Ends the program; QEMU exits with `code` (low 8 bits on a POSIX host).
[[noreturn]] inline void exit(int code) noexcept {
  constexpr std::uint32_t application_exit = 0x20026;  // ADP_Stopped_ApplicationExit
  const std::uint32_t block[2] = {application_exit, static_cast<std::uint32_t>(code)};
  call(op::exit_extended, block);
  // A host without SYS_EXIT_EXTENDED: exit without a code, then never return.
  call(op::exit, reinterpret_cast<const void*>(static_cast<std::uintptr_t>(application_exit)));
  for (;;) {
    asm volatile("wfi");
  }
}

}  // namespace tinyloop::semihosting
