# CMake toolchain file for Roam: builds for wasm32-wasi with roam cc / roam c++.
#   cmake -DCMAKE_TOOLCHAIN_FILE=<roam>/cmake/roam.cmake -B build && cmake --build build
# Then `roam build build/PROGRAM -o PROGRAM.roam.wasm` makes a program migratable.
get_filename_component(ROAM_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# A Unix without shared libraries (Platform/WASI.cmake beside this file); cross-compiling.
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
set(CMAKE_SYSTEM_NAME WASI)
set(CMAKE_SYSTEM_PROCESSOR wasm32)
set(CMAKE_C_COMPILER "${ROAM_ROOT}/bin/roam-cc")
set(CMAKE_CXX_COMPILER "${ROAM_ROOT}/bin/roam-c++")
find_program(CMAKE_AR NAMES llvm-ar llvm-ar-14 REQUIRED)
find_program(CMAKE_RANLIB NAMES llvm-ranlib llvm-ranlib-14 REQUIRED)

# WebAssembly has no shared libraries: add_library(SHARED) builds a static one (CMake says so).
set(BUILD_SHARED_LIBS OFF CACHE BOOL "WebAssembly has no shared libraries")

# Programs built here run under `roam run` (try_run, tests, code generators).
set(CMAKE_CROSSCOMPILING_EMULATOR "node;${ROAM_ROOT}/dist/src/cli/main.js;run")

# Headers and libraries come from the WASI sysroot only, never from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/lib/wasm32-wasi /usr/include/wasm32-wasi)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
