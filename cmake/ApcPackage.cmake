# ApcPackage.cmake - the Windows ZIP: `cmake --build --preset mingw --target package`.
#
# Everything installer/install.cmd needs lies at the ROOT of the ZIP (no top-level folder), so
# an operator unpacks it anywhere and runs install.cmd from there; install.cmd copies from its
# own folder (%~dp0):
#   apcsvc.exe  apcctl.exe  apcsvc.json  apcsvc.schema.json  install.cmd  uninstall.cmd  README.md
# apcsvc.exe and apcctl.exe come from their own install(TARGETS ... DESTINATION .) rules.
# Both are linked statically against cJSON and SQLite (cmake/deps-mingw.sh), so no DLL ships.
#
# Included once by the top-level CMakeLists.txt, after the add_subdirectory() calls:
#   include(ApcPackage)
if(NOT WIN32)
  return()
endif()

install(FILES
        "${PROJECT_SOURCE_DIR}/config/apcsvc.json"
        "${PROJECT_SOURCE_DIR}/config/apcsvc.schema.json"
        "${PROJECT_SOURCE_DIR}/installer/install.cmd"
        "${PROJECT_SOURCE_DIR}/installer/uninstall.cmd"
        DESTINATION .)
if(EXISTS "${PROJECT_SOURCE_DIR}/README.md")
  install(FILES "${PROJECT_SOURCE_DIR}/README.md" DESTINATION .)
else()
  message(WARNING "README.md is missing: the package will ship without it")
endif()

set(CPACK_GENERATOR ZIP)
set(CPACK_PACKAGE_NAME ApcSched)
set(CPACK_PACKAGE_VENDOR ApcSched)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_FILE_NAME "ApcSched-${PROJECT_VERSION}-win64")
set(CPACK_INCLUDE_TOPLEVEL_DIRECTORY OFF)
# Only the product: the test executables have no install() rules, and no component split.
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)
# Debug information stays in the build tree; the ZIP gets stripped executables.
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY "${CMAKE_BINARY_DIR}")
include(CPack)
