# Test helpers: every C test is a cmocka executable registered with CTest.
#
# On the mingw preset CMAKE_CROSSCOMPILING_EMULATOR (cmake/wine-run.sh) runs each test
# executable under Wine in the build tree's private WINEPREFIX, so `ctest` works unchanged.
find_package(cmocka CONFIG REQUIRED)
if(NOT TARGET apc_cmocka)
  add_library(apc_cmocka INTERFACE)
  # cmocka 1.1.5 built for mingw (cmake/deps-mingw.sh) installs a static library whose
  # package config does not name it; link it so test executables need no cmocka.dll.
  find_library(APC_CMOCKA_STATIC NAMES cmocka-static)
  if(WIN32 AND APC_CMOCKA_STATIC)
    target_include_directories(apc_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR})
    target_link_libraries(apc_cmocka INTERFACE ${APC_CMOCKA_STATIC})
  elseif(TARGET cmocka::cmocka)
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
  if(APC_VALGRIND)
    find_program(APC_VALGRIND_EXE valgrind REQUIRED)
    add_test(NAME ${name}
             COMMAND ${APC_VALGRIND_EXE} --error-exitcode=99 --leak-check=full
                     --errors-for-leak-kinds=definite,indirect --track-origins=yes
                     $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
  if(CMAKE_CROSSCOMPILING_EMULATOR)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED wine_prefix)
  endif()
endfunction()

# Under Wine, one prefix and one persistent wineserver serve the whole test run.
if(CMAKE_CROSSCOMPILING_EMULATOR AND NOT TEST wine_prefix_setup)
  add_test(NAME wine_prefix_setup
           COMMAND "${PROJECT_SOURCE_DIR}/cmake/wine-prefix.sh" setup "${APC_WINEPREFIX}"
                   "${APC_WINE_TEMPLATE}")
  add_test(NAME wine_prefix_teardown
           COMMAND "${PROJECT_SOURCE_DIR}/cmake/wine-prefix.sh" teardown "${APC_WINEPREFIX}")
  set_tests_properties(wine_prefix_setup PROPERTIES FIXTURES_SETUP wine_prefix TIMEOUT 300
                                                    LABELS wine)
  set_tests_properties(wine_prefix_teardown PROPERTIES FIXTURES_CLEANUP wine_prefix TIMEOUT 60
                                                       LABELS wine)
endif()
