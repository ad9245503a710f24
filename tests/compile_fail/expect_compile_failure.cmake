# Checks that a source file fails to compile with a given message, and compiles once the one mistake it
# demonstrates is removed (-DMPAIO_COMPILE_FAIL_CONTROL), so that a broken include path cannot pass for
# the expected failure.
#
#   cmake -DCXX=<compiler> -DSOURCE=<file.cpp> -DINCLUDES=<dir|dir|...> -DDEFINITIONS=<DEF|DEF=1|...>
#         [-DIMPLICIT=<dir|...>] -DEXPECT=<text the diagnostics must contain> -P expect_compile_failure.cmake
#
# IMPLICIT lists the compiler's own include directories: they are left out of the -I flags (an explicit
# -I/usr/include would reorder the system headers).
cmake_minimum_required(VERSION 3.25)

foreach(var CXX SOURCE EXPECT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "expect_compile_failure.cmake: ${var} is not set")
  endif()
endforeach()

set(args -std=c++20 -fsyntax-only)
string(REPLACE "|" ";" include_list "${INCLUDES}")
string(REPLACE "|" ";" implicit_list "${IMPLICIT}")
list(REMOVE_DUPLICATES include_list)
foreach(dir IN LISTS include_list)
  if(NOT dir STREQUAL "" AND NOT dir IN_LIST implicit_list)
    list(APPEND args "-I${dir}")
  endif()
endforeach()
string(REPLACE "|" ";" definition_list "${DEFINITIONS}")
foreach(definition IN LISTS definition_list)
  if(NOT definition STREQUAL "")
    list(APPEND args "-D${definition}")
  endif()
endforeach()

execute_process(COMMAND ${CXX} ${args} -DMPAIO_COMPILE_FAIL_CONTROL ${SOURCE}
                RESULT_VARIABLE control_result OUTPUT_VARIABLE control_output ERROR_VARIABLE control_output)
if(NOT control_result EQUAL 0)
  message(FATAL_ERROR "the control build of ${SOURCE} (-DMPAIO_COMPILE_FAIL_CONTROL) must compile, but failed:\n"
                      "${CXX} ${args}\n${control_output}")
endif()

execute_process(COMMAND ${CXX} ${args} ${SOURCE}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but must not")
endif()
string(FIND "${output}" "${EXPECT}" position)
if(position EQUAL -1)
  message(FATAL_ERROR "${SOURCE} failed to compile, but without the message \"${EXPECT}\":\n${output}")
endif()
message(STATUS "${SOURCE} fails to compile as expected: \"${EXPECT}\"")
