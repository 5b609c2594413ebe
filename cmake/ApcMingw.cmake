# Cross build for Windows with mingw-w64 on Linux; tests run under Wine.
#
# 1. The Windows builds of cJSON, SQLite and cmocka come from cmake/deps-mingw.sh, which
#    builds them from Debian source packages into APC_MINGW_DEPS_PREFIX (cached: a second
#    configure finds the stamp and fetches nothing).
# 2. Every test executable runs through the generated wine-run.sh (the crosscompiling
#    emulator) in a private WINEPREFIX inside this build tree; the wine_prefix fixture sets it
#    up before the first test and stops the wineserver after the last one.
if(NOT APC_MINGW_DEPS_PREFIX)
  message(FATAL_ERROR "APC_MINGW_DEPS_PREFIX is not set: configure with the mingw preset")
endif()
execute_process(COMMAND "${CMAKE_CURRENT_LIST_DIR}/deps-mingw.sh" "${APC_MINGW_DEPS_PREFIX}"
                RESULT_VARIABLE _apc_deps_rc)
if(NOT _apc_deps_rc EQUAL 0)
  message(FATAL_ERROR "cmake/deps-mingw.sh failed (${_apc_deps_rc})")
endif()

# Windows 10+, wide APIs, and the C99-conforming printf family (%zu, %lld) of mingw-w64.
add_compile_definitions(_WIN32_WINNT=0x0A00 WINVER=0x0A00 UNICODE _UNICODE WIN32_LEAN_AND_MEAN
                        __USE_MINGW_ANSI_STDIO=1)

set(APC_WINEPREFIX "${CMAKE_BINARY_DIR}/wineprefix")
set(APC_WINE_TEMPLATE "${APC_MINGW_DEPS_PREFIX}/../wine-template")
configure_file("${CMAKE_CURRENT_LIST_DIR}/wine-run.sh.in" "${CMAKE_BINARY_DIR}/wine-run.sh"
               FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                WORLD_READ WORLD_EXECUTE @ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR "${CMAKE_BINARY_DIR}/wine-run.sh")
