# Test helpers: every C test is a cmocka executable registered with CTest.
#
# On the mingw preset CMAKE_CROSSCOMPILING_EMULATOR (cmake/wine-run.sh) runs each test
# executable under Wine in the build tree's private WINEPREFIX, so `ctest` works unchanged.
find_package(cmocka CONFIG REQUIRED)
if(NOT TARGET apc_cmocka)
  add_library(apc_cmocka INTERFACE)
  if(TARGET cmocka::cmocka)
    target_link_libraries(apc_cmocka INTERFACE cmocka::cmocka)
  elseif(TARGET cmocka-static)
    target_link_libraries(apc_cmocka INTERFACE cmocka-static)
  else()
    target_include_directories(apc_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR})
    target_link_libraries(apc_cmocka INTERFACE ${CMOCKA_LIBRARIES})
  endif()
endif()

# apc_add_test(NAME SOURCES... [LIBS ...] [LABELS ...] [TIMEOUT s])
function(apc_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} apc_cmocka)
  apc_test_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
