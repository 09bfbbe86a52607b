# Cross compile for 64-bit ARM Linux (AArch64) with Debian's cross GCC
# (apt-get install g++-aarch64-linux-gnu qemu-user), and run the tests under qemu-aarch64.
#
#   cmake --preset aarch64          or
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#
# There is no binfmt_misc registration on our machines, so CTest starts every test
# binary through CMAKE_CROSSCOMPILING_EMULATOR; -L points qemu at the target's dynamic
# loader and libraries. GoogleTest for the target is built from /usr/src/googletest
# (see cmake/tinyloop_gtest.cmake): Debian has no cross libgtest package.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TINYLOOP_TARGET_TRIPLE aarch64-linux-gnu)
set(TINYLOOP_TARGET_ROOT /usr/${TINYLOOP_TARGET_TRIPLE})

set(CMAKE_C_COMPILER   ${TINYLOOP_TARGET_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${TINYLOOP_TARGET_TRIPLE}-g++)

# Look for the target's headers, libraries and packages only in the target root;
# programs (qemu, python, ...) come from the host.
set(CMAKE_FIND_ROOT_PATH ${TINYLOOP_TARGET_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(TINYLOOP_QEMU_AARCH64 qemu-aarch64)
if(NOT TINYLOOP_QEMU_AARCH64)
  message(FATAL_ERROR "qemu-aarch64 not found: apt-get install qemu-user")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${TINYLOOP_QEMU_AARCH64};-L;${TINYLOOP_TARGET_ROOT}")
