# cmake -DBUILD_DIR=<build/host> [-DLABEL=unit] [-DEXCLUDE=<regex>] [-DTIMEOUT=300] -P scripts/valgrind_units.cmake
#
# Runs every unit-test program of a native, non-sanitizer build under
# `valgrind --error-exitcode=1`: a GoogleTest program once with all its cases (valgrind's
# start-up cost makes one process per discovered test far too slow), any other test
# program with its test's own command line.
# The executables are taken from CTest's own test list (tests with label LABEL whose
# command is a program inside BUILD_DIR), so anything the tests register is covered.
# Tests labelled `no_valgrind` (for example a test that replaces malloc) are left out,
# as are executables matching EXCLUDE.
# Ends with a CTest-style line "N% tests passed, F tests failed out of T" (one "test" per
# program run) so scripts/test.sh counts it like the other suites; exits non-zero on failure.
cmake_minimum_required(VERSION 3.19)

if(NOT BUILD_DIR)
  message(FATAL_ERROR "valgrind_units.cmake: -DBUILD_DIR=... is required")
endif()
if(NOT LABEL)
  set(LABEL unit)
endif()
if(NOT TIMEOUT)
  set(TIMEOUT 600)  # seconds per program; a hang under valgrind fails instead of stalling CI
endif()
find_program(VALGRIND valgrind REQUIRED)
get_filename_component(BUILD_DIR "${BUILD_DIR}" ABSOLUTE)
get_filename_component(_cmake_bin_dir "${CMAKE_COMMAND}" DIRECTORY)
find_program(CTEST ctest HINTS "${_cmake_bin_dir}" REQUIRED)

string(TIMESTAMP _list_t0 "%s")
execute_process(COMMAND "${CTEST}" --show-only=json-v1 -L "${LABEL}"
                WORKING_DIRECTORY "${BUILD_DIR}"
                OUTPUT_VARIABLE _json RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "ctest --show-only failed in ${BUILD_DIR}: ${_err}")
endif()

string(JSON _count LENGTH "${_json}" tests)
set(_exes)
set(_skip)
set(_run_ids)
if(_count GREATER 0)
  math(EXPR _last "${_count} - 1")
  foreach(i RANGE 0 ${_last})
    # One parse of the whole list per test, then only the test's own object: every GET re-parses
    # its input, and ~800 tests x a dozen GETs on the 600 KB list took minutes before any program ran.
    string(JSON _t GET "${_json}" tests ${i})
    string(JSON _exe ERROR_VARIABLE _no_cmd GET "${_t}" command 0)
    if(_no_cmd OR NOT _exe)
      continue()
    endif()
    string(FIND "${_exe}" "${BUILD_DIR}/" _pos)
    if(NOT _pos EQUAL 0)
      continue()  # a compiler, cmake or script, not a test program of this build
    endif()
    # Properties: LABELS and WORKING_DIRECTORY.
    set(_labels)
    set(_wd "${BUILD_DIR}")
    string(JSON _nprops ERROR_VARIABLE _no_props LENGTH "${_t}" properties)
    if(NOT _no_props AND _nprops GREATER 0)
      math(EXPR _plast "${_nprops} - 1")
      foreach(p RANGE 0 ${_plast})
        string(JSON _pname GET "${_t}" properties ${p} name)
        if(_pname STREQUAL "LABELS")
          string(JSON _nl LENGTH "${_t}" properties ${p} value)
          math(EXPR _llast "${_nl} - 1")
          foreach(l RANGE 0 ${_llast})
            string(JSON _label GET "${_t}" properties ${p} value ${l})
            list(APPEND _labels "${_label}")
          endforeach()
        elseif(_pname STREQUAL "WORKING_DIRECTORY")
          string(JSON _wd GET "${_t}" properties ${p} value)
        endif()
      endforeach()
    endif()
    if("no_valgrind" IN_LIST _labels OR (EXCLUDE AND _exe MATCHES "${EXCLUDE}"))
      list(APPEND _skip "${_exe}")
      continue()
    endif()
    string(JSON _args GET "${_t}" command)
    if(_args MATCHES "--gtest_")
      # GoogleTest program (one CTest test per case): run all its cases in one process.
      if(NOT "${_exe}" IN_LIST _exes)
        list(APPEND _exes "${_exe}")
        list(APPEND _run_ids ${i})
        set(_run_exe_${i} "${_exe}")
        # Every case, the cross-thread ones included: the tests wait on events rather than spinning (a
        # spinning thread under valgrind, which runs one thread at a time, starved the thread it waited
        # for: minutes per test), so the slowest program takes well under a minute.
        set(_run_args_${i} --gtest_brief=1)
        set(_run_wd_${i} "${_wd}")
      endif()
    else()
      # Any other program: run the test's own command line.
      list(APPEND _exes "${_exe}")
      list(APPEND _run_ids ${i})
      set(_run_exe_${i} "${_exe}")
      set(_run_args_${i})
      string(JSON _nargs LENGTH "${_t}" command)
      if(_nargs GREATER 1)
        math(EXPR _alast "${_nargs} - 1")
        foreach(a RANGE 1 ${_alast})
          string(JSON _arg GET "${_t}" command ${a})
          list(APPEND _run_args_${i} "${_arg}")
        endforeach()
      endif()
      set(_run_wd_${i} "${_wd}")
    endif()
  endforeach()
endif()

string(TIMESTAMP _list_t1 "%s")
math(EXPR _list_dt "${_list_t1} - ${_list_t0}")
list(LENGTH _exes _nexes)
message(STATUS "valgrind: ${_nexes} programs from ${_count} tests (listing took ${_list_dt} s)")

list(REMOVE_DUPLICATES _skip)
foreach(_exe IN LISTS _skip)
  if(NOT "${_exe}" IN_LIST _exes)
    message(STATUS "valgrind: not run (no_valgrind label or EXCLUDE): ${_exe}")
  endif()
endforeach()

set(_passed 0)
set(_failed 0)
set(_failures)
foreach(_id IN LISTS _run_ids)
  set(_exe "${_run_exe_${_id}}")
  string(TIMESTAMP _t0 "%s")
  execute_process(
    COMMAND "${VALGRIND}" --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
            --track-origins=yes --quiet "${_exe}" ${_run_args_${_id}}
    WORKING_DIRECTORY "${_run_wd_${_id}}"
    TIMEOUT ${TIMEOUT}
    RESULT_VARIABLE _rc)
  string(TIMESTAMP _t1 "%s")
  math(EXPR _dt "${_t1} - ${_t0}")
  string(REPLACE ";" " " _shown "${_exe};${_run_args_${_id}}")
  if(_rc EQUAL 0)
    math(EXPR _passed "${_passed} + 1")
    message(STATUS "valgrind: passed  ${_shown} (${_dt} s)")
  else()
    math(EXPR _failed "${_failed} + 1")
    list(APPEND _failures "${_shown}")
    message(STATUS "valgrind: FAILED  ${_shown} (exit ${_rc}, ${_dt} s)")
  endif()
endforeach()

math(EXPR _total "${_passed} + ${_failed}")
if(_total EQUAL 0)
  message(STATUS "valgrind: no unit-test executables found in ${BUILD_DIR} (label ${LABEL})")
  set(_pct 100)
else()
  math(EXPR _pct "100 * ${_passed} / ${_total}")
endif()
message(STATUS "")
message(STATUS "${_pct}% tests passed, ${_failed} tests failed out of ${_total}")
if(_failed GREATER 0)
  foreach(_shown IN LISTS _failures)
    message(STATUS "  valgrind failed: ${_shown}")
  endforeach()
  message(FATAL_ERROR "valgrind found errors")
endif()
