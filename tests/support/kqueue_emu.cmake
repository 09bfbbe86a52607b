# The test-only kevent emulation's own tests. include()d by tests/CMakeLists.txt after its
# tinyloop_unit_test() function is defined and TINYLOOP_TEST_KQUEUE is set (Linux only: the
# emulation sits on epoll). The suites typed over ports pick the emulation up themselves
# (tinyloop_unit_test ... PORTS adds kqueue_emu.cpp and TINYLOOP_KQUEUE_HEADER).
if(TINYLOOP_TEST_KQUEUE)
  tinyloop_unit_test(kqueue_emu SOURCES "${CMAKE_CURRENT_LIST_DIR}/kqueue_emu_test.cpp"
                                        "${CMAKE_CURRENT_LIST_DIR}/kqueue_emu.cpp")
endif()
