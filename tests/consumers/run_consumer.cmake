# cmake -DMODE=<mode> -DTINYLOOP_ROOT=... -DAPP_DIR=... -DWORK_DIR=... -DGENERATOR=...
#       [-DMAKE_PROGRAM=...] [-DCXX_COMPILER=...] -P run_consumer.cmake
# Builds and runs tests/consumers/app against tinyloop obtained one way (MODE):
#   add_subdirectory          app does add_subdirectory(<tree>)
#   fetchcontent_source_dir   FetchContent_Declare(tinyloop SOURCE_DIR <tree>)
#   fetchcontent_url          FetchContent_Declare(tinyloop URL file://<archive of the tree>)
#   find_package              cmake --install the tree into a scratch prefix, then find_package
cmake_minimum_required(VERSION 3.19)

foreach(_var MODE TINYLOOP_ROOT APP_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_common_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND _common_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND _common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

function(run_step what)
  message(STATUS "consumer/${MODE}: ${what}")
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "consumer/${MODE}: ${what} failed (${_rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_app_args "-DTINYLOOP_CONSUMER_MODE=${MODE}")

if(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent_source_dir")
  list(APPEND _app_args "-DTINYLOOP_ROOT=${TINYLOOP_ROOT}")

elseif(MODE STREQUAL "fetchcontent_url")
  # What a release archive holds: the header, the build files, the package template.
  set(_stage "${WORK_DIR}/stage/tinyloop-src")
  file(MAKE_DIRECTORY "${_stage}")
  foreach(_item loop.hpp CMakeLists.txt cmake)
    if(EXISTS "${TINYLOOP_ROOT}/${_item}")
      file(COPY "${TINYLOOP_ROOT}/${_item}" DESTINATION "${_stage}")
    endif()
  endforeach()
  set(_archive "${WORK_DIR}/tinyloop-src.tar.gz")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E tar czf "${_archive}" tinyloop-src
                  WORKING_DIRECTORY "${WORK_DIR}/stage" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "consumer/${MODE}: could not make ${_archive}")
  endif()
  list(APPEND _app_args "-DTINYLOOP_URL=file://${_archive}")

elseif(MODE STREQUAL "find_package")
  set(_prefix "${WORK_DIR}/prefix")
  run_step("configure tinyloop"
    "${CMAKE_COMMAND}" -S "${TINYLOOP_ROOT}" -B "${WORK_DIR}/tinyloop-build" ${_common_args}
    -DTINYLOOP_BUILD_TESTS=OFF -DTINYLOOP_BUILD_EXAMPLES=OFF -DTINYLOOP_BUILD_BENCH=OFF
    -DTINYLOOP_BUILD_FUZZ=OFF "-DCMAKE_INSTALL_PREFIX=${_prefix}")
  run_step("build tinyloop" "${CMAKE_COMMAND}" --build "${WORK_DIR}/tinyloop-build")
  run_step("install tinyloop" "${CMAKE_COMMAND}" --install "${WORK_DIR}/tinyloop-build")
  foreach(_installed include/loop.hpp share/cmake/tinyloop/tinyloopConfig.cmake
                     share/cmake/tinyloop/tinyloopConfigVersion.cmake
                     share/cmake/tinyloop/tinyloopTargets.cmake)
    if(NOT EXISTS "${_prefix}/${_installed}")
      message(FATAL_ERROR "consumer/${MODE}: install did not produce ${_prefix}/${_installed}")
    endif()
  endforeach()
  list(APPEND _app_args "-DCMAKE_PREFIX_PATH=${_prefix}" "-DTINYLOOP_PREFIX=${_prefix}")

else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

run_step("configure consumer"
  "${CMAKE_COMMAND}" -S "${APP_DIR}" -B "${WORK_DIR}/app-build" ${_common_args} ${_app_args})
run_step("build consumer" "${CMAKE_COMMAND}" --build "${WORK_DIR}/app-build")
run_step("run consumer" "${WORK_DIR}/app-build/tinyloop_consumer")
