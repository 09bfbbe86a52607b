# Tests owned by the ports work. include()d by tests/CMakeLists.txt after tinyloop_unit_test() is
# defined and TINYLOOP_TEST_KQUEUE is set:
#   include("${CMAKE_CURRENT_SOURCE_DIR}/support/kqueue_emu.cmake")
#
# kqueue_emu   the test-only kevent emulation itself (Linux only: it sits on epoll)
# port_edges   the OS ports' own machinery (poll parking, kqueue pending reports, wake and errno),
#              typed over epoll, poll and kqueue-through-the-emulation
# port_edges with -DTINYLOOP_POLL_PIPE_WAKE, registered as pipe_wake.*: poll_port's pipe wake, which
#              POSIX systems without eventfd use, exercised on Linux too
if(TINYLOOP_TEST_KQUEUE)
  tinyloop_unit_test(kqueue_emu SOURCES "${CMAKE_CURRENT_LIST_DIR}/kqueue_emu_test.cpp"
                                        "${CMAKE_CURRENT_LIST_DIR}/kqueue_emu.cpp")
endif()

if(NOT CMAKE_SYSTEM_NAME STREQUAL "Generic")
  tinyloop_unit_test(port_edges SOURCES "${CMAKE_CURRENT_LIST_DIR}/port_edges_test.cpp" PORTS)

  add_executable(tinyloop_test_port_edges_pipe_wake "${CMAKE_CURRENT_LIST_DIR}/port_edges_test.cpp")
  target_include_directories(tinyloop_test_port_edges_pipe_wake PRIVATE "${CMAKE_CURRENT_LIST_DIR}/..")
  target_link_libraries(tinyloop_test_port_edges_pipe_wake
    PRIVATE tinyloop::tinyloop tinyloop::warnings GTest::gtest_main Threads::Threads)
  target_compile_definitions(tinyloop_test_port_edges_pipe_wake PRIVATE TINYLOOP_POLL_PIPE_WAKE)
  if(TINYLOOP_TEST_KQUEUE)
    target_sources(tinyloop_test_port_edges_pipe_wake PRIVATE "${CMAKE_CURRENT_LIST_DIR}/kqueue_emu.cpp")
    target_compile_definitions(tinyloop_test_port_edges_pipe_wake
      PRIVATE "TINYLOOP_KQUEUE_HEADER=\"support/kqueue_emu.hpp\"")
  endif()
  tinyloop_register_gtest(tinyloop_test_port_edges_pipe_wake pipe_wake.port_edges "unit;port_edges"
                          TEST_PREFIX "pipe_wake.")
endif()
