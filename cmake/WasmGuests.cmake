# Builds the C guests in guests/ into .wasm modules with clang-14 and Debian's wasi-libc.
#
# tandem_add_guest(NAME SOURCES src.c... [REACTOR])
#   Produces ${CMAKE_BINARY_DIR}/guests/NAME.wasm and a target guest_NAME; all guests hang off the
#   target `guests`. REACTOR links with -mexec-model=reactor (the module exports _initialize).

find_program(TANDEM_WASM_CC NAMES clang-14 clang REQUIRED)
set(TANDEM_WASM_SYSROOT "/usr" CACHE PATH "Sysroot holding wasi-libc (Debian: /usr)")
set(TANDEM_GUEST_DIR "${CMAKE_BINARY_DIR}/guests")
file(MAKE_DIRECTORY "${TANDEM_GUEST_DIR}")
add_custom_target(guests ALL)

function(tandem_add_guest name)
  cmake_parse_arguments(GUEST "REACTOR" "" "SOURCES;FLAGS" ${ARGN})
  set(output "${TANDEM_GUEST_DIR}/${name}.wasm")
  set(sources "")
  foreach(src IN LISTS GUEST_SOURCES)
    list(APPEND sources "${CMAKE_CURRENT_SOURCE_DIR}/${src}")
  endforeach()
  set(model_flags "")
  if(GUEST_REACTOR)
    set(model_flags -mexec-model=reactor)
  endif()
  # Every header beside the sources: a change to any of them rebuilds the guest.
  file(GLOB guest_headers CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*.h")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND "${TANDEM_WASM_CC}" --target=wasm32-wasi "--sysroot=${TANDEM_WASM_SYSROOT}" -O2
            -Wall -Wextra -Werror ${model_flags} ${GUEST_FLAGS}
            -I "${CMAKE_CURRENT_SOURCE_DIR}" -o "${output}" ${sources}
    DEPENDS ${sources} ${guest_headers}
    COMMENT "Building WASM guest ${name}"
    VERBATIM)
  add_custom_target(guest_${name} DEPENDS "${output}")
  add_dependencies(guests guest_${name})
endfunction()

# tandem_add_wat_guest(NAME FILE.wat): hand-written test modules, assembled with wabt's wat2wasm.
find_program(TANDEM_WAT2WASM NAMES wat2wasm REQUIRED)
function(tandem_add_wat_guest name wat)
  set(output "${TANDEM_GUEST_DIR}/${name}.wasm")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND "${TANDEM_WAT2WASM}" -o "${output}" "${CMAKE_CURRENT_SOURCE_DIR}/${wat}"
    DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/${wat}"
    COMMENT "Assembling WASM test module ${name}"
    VERBATIM)
  add_custom_target(guest_${name} DEPENDS "${output}")
  add_dependencies(guests guest_${name})
endfunction()
