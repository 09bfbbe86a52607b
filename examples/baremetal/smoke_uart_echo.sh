#!/bin/sh
# Smoke test of uart_echo (CTest examples.baremetal.uart_echo): feeds text and Ctrl-D to UART0
# through QEMU's stdio and checks that the text comes back and that the program exits with 0.
# usage: smoke_uart_echo.sh QEMU_RUN IMAGE
set -u
run=$1
image=$2
input='hello, tinyloop'
output=$(printf '%s\004' "$input" | "$run" "$image" 2>&1)
rc=$?
printf '%s\n' "$output"
case $output in
  *"$input"*) ;;
  *) echo "smoke_uart_echo: the input was not echoed" >&2; exit 1 ;;
esac
case $output in
  *bye*) ;;
  *) echo "smoke_uart_echo: no goodbye line after Ctrl-D" >&2; exit 1 ;;
esac
if [ "$rc" -ne 0 ]; then
  echo "smoke_uart_echo: exit code $rc" >&2
  exit 1
fi
echo "smoke_uart_echo: echo and exit ok"
