# Compiles a worker-only translation unit (worker_only.cpp) and fails when it does not compile, naming the
# include chain that brought in a header it must not see (Asio, fmt, spdlog, nlohmann-json).
#
#   cmake -DCXX=<compiler> -DSOURCE=<file.cpp> -DINCLUDES=<dir|...> -DDEFINITIONS=<DEF|...> [-DIMPLICIT=<dir|...>]
#         -P check_worker_headers.cmake
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/../compile_fail/compiler_args.cmake)

foreach(var CXX SOURCE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_worker_headers.cmake: ${var} is not set")
  endif()
endforeach()

mpaio_compile_check_args(args)
# -H prints each header as it is opened, one dot per level of nesting.
execute_process(COMMAND ${CXX} ${args} -H ${SOURCE}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(STATUS "${SOURCE} compiles without Asio, fmt, spdlog and nlohmann-json")
  return()
endif()

# The chain of headers down to the first forbidden one: for each depth, the last header opened at it.
string(REPLACE "\n" ";" lines "${output}")
set(chain "")
foreach(line IN LISTS lines)
  if(line MATCHES "^(\\.+) (.*)$")
    string(LENGTH "${CMAKE_MATCH_1}" depth)
    set(at_${depth} "${CMAKE_MATCH_2}")
    if(CMAKE_MATCH_2 MATCHES "/(asio|fmt|spdlog|nlohmann)/")
      foreach(level RANGE 1 ${depth})
        string(APPEND chain "\n  ${at_${level}}")
      endforeach()
      break()
    endif()
  endif()
endforeach()
string(REGEX MATCHALL "[^\n]*error:[^\n]*" errors "${output}")
list(JOIN errors "\n" errors)
if(NOT chain STREQUAL "")
  message(FATAL_ERROR "${SOURCE} includes a header a worker-only file must not need, through:${chain}\n${errors}")
endif()
message(FATAL_ERROR "${SOURCE} does not compile:\n${errors}")
