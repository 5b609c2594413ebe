# Warning flags shared by every first-party target.
#
# apc_strict_warnings(target) turns on the full set, -Wconversion included: the core parses
# untrusted input and converts between widths all the time, so silent truncation is a bug
# class worth the noise. Tests use apc_test_warnings(), which drops -Wconversion because
# cmocka's assertion macros widen everything to uintmax_t.
function(apc_test_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
    if(APC_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                                             -Wpointer-arith -Wformat=2)
    if(APC_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

function(apc_strict_warnings target)
  apc_test_warnings(${target})
  if(NOT MSVC)
    target_compile_options(${target} PRIVATE -Wconversion -Wmissing-prototypes
                                             -Wvla -Wcast-qual)
  endif()
endfunction()
