# Defines GoogleTest targets for tinyloop's tests, the same names on every build:
#   GTest::gtest  GTest::gtest_main  GTest::gmock  GTest::gmock_main
# Native builds use the installed package (Debian: libgtest-dev, libgmock-dev).
# Cross builds (and native builds without the package, or with
# -DTINYLOOP_GTEST_FROM_SOURCE=ON) compile GoogleTest for the target from its sources
# (Debian: googletest, in /usr/src/googletest), because Debian ships no cross libgtest.
# The sources are added EXCLUDE_FROM_ALL: only what a test links gets built.
#
# Usage (tests/CMakeLists.txt):  include(${PROJECT_SOURCE_DIR}/cmake/tinyloop_gtest.cmake)
#                                target_link_libraries(t PRIVATE GTest::gtest_main)
#                                include(GoogleTest)   # gtest_discover_tests / gtest_add_tests
include_guard(GLOBAL)

option(TINYLOOP_GTEST_FROM_SOURCE "Build GoogleTest from source even when an installed one exists" OFF)
set(TINYLOOP_GTEST_SOURCE_DIR "/usr/src/googletest"
    CACHE PATH "GoogleTest sources used when cross compiling (Debian package googletest)")

if(NOT CMAKE_CROSSCOMPILING AND NOT TINYLOOP_GTEST_FROM_SOURCE)
  find_package(GTest QUIET)
endif()

if(TARGET GTest::gtest AND TARGET GTest::gtest_main)
  # Debian's GTestConfig.cmake also defines GTest::gmock and GTest::gmock_main.
  set(TINYLOOP_GTEST_ORIGIN "installed package")
else()
  if(NOT EXISTS "${TINYLOOP_GTEST_SOURCE_DIR}/CMakeLists.txt")
    message(FATAL_ERROR
      "tinyloop: no GoogleTest for this target: ${TINYLOOP_GTEST_SOURCE_DIR} has no sources "
      "(Debian: apt-get install googletest) and no installed GTest package was found "
      "(Debian: apt-get install libgtest-dev libgmock-dev).")
  endif()
  # googletest's project() enables C too: the Linux toolchain files set CMAKE_C_COMPILER.
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK ON CACHE BOOL "" FORCE)
  set(gtest_force_shared_crt ON CACHE BOOL "" FORCE)
  add_subdirectory("${TINYLOOP_GTEST_SOURCE_DIR}" "${CMAKE_BINARY_DIR}/_deps/googletest-build"
                   EXCLUDE_FROM_ALL)
  foreach(_tinyloop_gt IN ITEMS gtest gtest_main gmock gmock_main)
    if(TARGET ${_tinyloop_gt} AND NOT TARGET GTest::${_tinyloop_gt})
      add_library(GTest::${_tinyloop_gt} ALIAS ${_tinyloop_gt})
    endif()
  endforeach()
  set(TINYLOOP_GTEST_ORIGIN "built from ${TINYLOOP_GTEST_SOURCE_DIR}")
endif()
message(STATUS "tinyloop: GoogleTest ${TINYLOOP_GTEST_ORIGIN}")
