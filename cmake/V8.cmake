# V8 from Debian's libnode108 / libnode-dev, as an imported target `v8::v8`.
#
# Debian ships no CMake package for it. scripts/setup.sh installs the packages system-wide when apt
# allows, or unpacks them into third_party/libnode when the machine's nodejs conflicts with them.
# Debian's V8 is built without pointer compression and sandbox: the embedder must define neither
# V8_COMPRESS_POINTERS nor V8_31BIT_SMIS_ON_64BIT_ARCH.

set(TANDEM_V8_PREFIX "${CMAKE_SOURCE_DIR}/third_party/libnode" CACHE PATH
    "Folder where scripts/setup.sh unpacks libnode108 and libnode-dev")

find_path(V8_INCLUDE_DIR v8.h
  PATHS "${TANDEM_V8_PREFIX}/usr/include/node" /usr/include/node
  NO_DEFAULT_PATH)
find_library(V8_LIBRARY NAMES libnode.so.108 node
  PATHS "${TANDEM_V8_PREFIX}/usr/lib/x86_64-linux-gnu" /usr/lib/x86_64-linux-gnu
  NO_DEFAULT_PATH)

if(NOT V8_INCLUDE_DIR OR NOT V8_LIBRARY)
  message(FATAL_ERROR "V8 (libnode108 + libnode-dev) not found: run scripts/setup.sh first")
endif()
message(STATUS "V8: ${V8_LIBRARY} (headers ${V8_INCLUDE_DIR})")

add_library(v8::v8 SHARED IMPORTED GLOBAL)
set_target_properties(v8::v8 PROPERTIES
  IMPORTED_LOCATION "${V8_LIBRARY}"
  IMPORTED_NO_SONAME OFF
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${V8_INCLUDE_DIR}"
  INTERFACE_INCLUDE_DIRECTORIES "${V8_INCLUDE_DIR}")
get_filename_component(V8_LIBRARY_DIR "${V8_LIBRARY}" DIRECTORY)
# Binaries in the build tree find a project-local libnode through their rpath. Installed ones carry
# none: they load Debian's libnode108, which the package depends on (packaging/).
set(CMAKE_BUILD_RPATH "${V8_LIBRARY_DIR}")
