# The arguments of a compile check: C++20, -fsyntax-only, and the mpaio target's include directories and
# definitions, given "|"-separated in INCLUDES and DEFINITIONS. IMPLICIT lists the compiler's own include
# directories: they are left out of the -I flags (an explicit -I/usr/include would reorder the system
# headers).
function(mpaio_compile_check_args out)
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
  set(${out} ${args} PARENT_SCOPE)
endfunction()
