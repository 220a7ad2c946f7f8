# Warnings for blockquant's own targets (tests, tools, bindings): the headers
# must compile cleanly under these for users who turn them on.
function(blockquant_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
  endif()
endfunction()
