# Cross compile for 32-bit ARM Linux (ARMv7-A, hard float) with Debian's cross GCC
# (apt-get install g++-arm-linux-gnueabihf qemu-user), and run the tests under qemu-arm.
#
#   cmake --preset armhf            or
#   cmake -S . -B build/armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake
#
# There is no binfmt_misc registration on our machines, so CTest starts every test
# binary through CMAKE_CROSSCOMPILING_EMULATOR; -L points qemu at the target's dynamic
# loader and libraries. GoogleTest for the target is built from /usr/src/googletest
# (see cmake/tinyloop_gtest.cmake): Debian has no cross libgtest package.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(TINYLOOP_TARGET_TRIPLE arm-linux-gnueabihf)
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

find_program(TINYLOOP_QEMU_ARM qemu-arm)
if(NOT TINYLOOP_QEMU_ARM)
  message(FATAL_ERROR "qemu-arm not found: apt-get install qemu-user")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${TINYLOOP_QEMU_ARM};-L;${TINYLOOP_TARGET_ROOT}")
