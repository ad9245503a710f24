# Standalone Asio (Debian's libasio-dev) ships no CMake package: wrap its headers in a target.
if(NOT TARGET mpaio_asio)
  find_path(MPAIO_ASIO_INCLUDE_DIR asio.hpp REQUIRED)
  add_library(mpaio_asio INTERFACE)
  target_compile_definitions(mpaio_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
  if(NOT MPAIO_ASIO_INCLUDE_DIR STREQUAL "/usr/include")
    target_include_directories(mpaio_asio INTERFACE ${MPAIO_ASIO_INCLUDE_DIR})
  endif()
endif()
