# Cortex-M3 bare metal (QEMU mps2-an385).
#   cmake -S . -B build/cortex-m3 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-none-eabi-cortex-m3.cmake
# Test executables run through ports/mps2-an385/qemu-run.sh, which boots the image in
# qemu-system-arm and returns the exit code the program gave through semihosting.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR cortex-m3)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
find_program(TINYLOOP_ARM_SIZE arm-none-eabi-size)
find_program(TINYLOOP_ARM_NM arm-none-eabi-nm)

# The compiler checks cannot link without a linker script and startup code.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# -fno-threadsafe-statics: one core, and the guards would pull __cxa_guard_* in.
set(_tinyloop_cm3_flags
    "-mcpu=cortex-m3 -mthumb -ffreestanding -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_INIT "${_tinyloop_cm3_flags}")
set(CMAKE_CXX_FLAGS_INIT
    "${_tinyloop_cm3_flags} -fno-exceptions -fno-rtti -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "${_tinyloop_cm3_flags}")
# The board library brings its own startup code and linker script (ports/mps2-an385).
# newlib-nano gives memcpy/memset; nothing here may pull malloc in (tests/baremetal checks it).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostartfiles --specs=nano.specs -Wl,--gc-sections")

get_filename_component(_tinyloop_qemu_run
  "${CMAKE_CURRENT_LIST_DIR}/../ports/mps2-an385/qemu-run.sh" ABSOLUTE)
set(CMAKE_CROSSCOMPILING_EMULATOR "${_tinyloop_qemu_run}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
