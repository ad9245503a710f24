# Checks that a source file fails to compile with a given message, and compiles once the one mistake it
# demonstrates is removed (-DMPAIO_COMPILE_FAIL_CONTROL), so that a broken include path cannot pass for
# the expected failure.
#
#   cmake -DCXX=<compiler> -DSOURCE=<file.cpp> -DINCLUDES=<dir|dir|...> -DDEFINITIONS=<DEF|DEF=1|...>
#         [-DIMPLICIT=<dir|...>] -DEXPECT=<text the diagnostics must contain>
#         [-DUNEXPECTED=<text|text|...>] -P expect_compile_failure.cmake
#
# UNEXPECTED lists texts the diagnostics must not contain: the follow-up errors that the one mistake must
# not cause (a message that is untrue once the first one is shown).
#
# IMPLICIT lists the compiler's own include directories (see compiler_args.cmake).
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/compiler_args.cmake)

foreach(var CXX SOURCE EXPECT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "expect_compile_failure.cmake: ${var} is not set")
  endif()
endforeach()

mpaio_compile_check_args(args)

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
string(REPLACE "|" ";" unexpected_list "${UNEXPECTED}")
foreach(text IN LISTS unexpected_list)
  if(NOT text STREQUAL "")
    string(FIND "${output}" "${text}" position)
    if(NOT position EQUAL -1)
      message(FATAL_ERROR "${SOURCE} failed to compile with \"${EXPECT}\", but also with \"${text}\", which the "
                          "first error must not bring:\n${output}")
    endif()
  endif()
endforeach()
message(STATUS "${SOURCE} fails to compile as expected: \"${EXPECT}\"")
