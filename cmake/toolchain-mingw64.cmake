# Cross toolchain: Debian's mingw-w64 (x86_64-w64-mingw32, win32 thread model) targeting
# Windows 10 and later. Used by the `mingw` preset.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(APC_MINGW_TRIPLET x86_64-w64-mingw32)

set(CMAKE_C_COMPILER ${APC_MINGW_TRIPLET}-gcc)
set(CMAKE_RC_COMPILER ${APC_MINGW_TRIPLET}-windres)
set(CMAKE_AR ${APC_MINGW_TRIPLET}-gcc-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${APC_MINGW_TRIPLET}-gcc-ranlib CACHE FILEPATH "")

# Look for libraries and headers only in the target's sysroot and in our own dependency
# prefix (cmake/deps-mingw.sh puts cJSON, SQLite and cmocka there); programs on the host.
set(CMAKE_FIND_ROOT_PATH /usr/${APC_MINGW_TRIPLET} ${APC_MINGW_DEPS_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Link the MinGW runtime statically: nothing like libgcc_s or libwinpthread to ship or find.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc")
