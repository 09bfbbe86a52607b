#!/bin/sh
# Boots a Cortex-M3 image on QEMU's mps2-an385 and exits with the code the program gave
# through semihosting (SYS_EXIT_EXTENDED). UART0 is this process's stdin/stdout; semihosting
# text goes to stderr.  Used as CMAKE_CROSSCOMPILING_EMULATOR by
# toolchains/arm-none-eabi-cortex-m3.cmake, and by hand:
#   ports/mps2-an385/qemu-run.sh build/cortex-m3/examples/baremetal/uart_echo
# TINYLOOP_QEMU_TIMEOUT (seconds, default 120): a hung image is killed and gives 124.
# Extra arguments after the image are ignored (CTest may pass some).
if [ $# -lt 1 ]; then
  echo "usage: $0 IMAGE.elf" >&2
  exit 2
fi
image=$1
exec timeout --kill-after=5 "${TINYLOOP_QEMU_TIMEOUT:-120}" \
  qemu-system-arm -M mps2-an385 -cpu cortex-m3 \
    -display none -monitor none -serial stdio \
    -semihosting-config enable=on,target=native \
    -kernel "$image"
