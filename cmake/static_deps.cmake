# COHOST_STATIC_DEPS: link Abseil, GoogleTest and OpenBLAS (with libgfortran
# and libquadmath) from their static archives. bench/gpu/prepare_carry.sh
# builds this way, so that the test and benchmark binaries it sends to a bare
# GPU machine need only libc, libstdc++ and the CUDA runtime there (it checks
# with ldd). Debian's CMake packages import the shared objects: each imported
# location is pointed at the archive beside it.

# After the find_package calls, in the directory that made the targets.
function(cohost_prefer_static_archives)
  get_directory_property(imported IMPORTED_TARGETS)
  foreach(t IN LISTS imported)
    if(NOT t MATCHES "^(absl|GTest)::")  # GTest: Debian ships archives already
      continue()
    endif()
    get_target_property(type ${t} TYPE)
    if(NOT type MATCHES "^(SHARED|UNKNOWN)_LIBRARY$")
      continue()
    endif()
    foreach(prop IMPORTED_LOCATION IMPORTED_LOCATION_NONE IMPORTED_LOCATION_NOCONFIG IMPORTED_LOCATION_RELEASE
                 IMPORTED_LOCATION_RELWITHDEBINFO IMPORTED_LOCATION_DEBUG)
      get_target_property(loc ${t} ${prop})
      if(loc MATCHES "\\.so(\\.[0-9.]+)?$")
        string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${loc}")
        if(NOT EXISTS "${archive}")
          message(FATAL_ERROR "COHOST_STATIC_DEPS: ${t} has no archive beside ${loc}")
        endif()
        set_property(TARGET ${t} PROPERTY ${prop} "${archive}")
      endif()
    endforeach()
  endforeach()
  # libopenblas.a's Fortran parts.
  foreach(lib libgfortran.a libquadmath.a)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=${lib}
                    OUTPUT_VARIABLE path OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT EXISTS "${path}")
      message(FATAL_ERROR "COHOST_STATIC_DEPS: the compiler has no ${lib}")
    endif()
    list(APPEND BLAS_LIBRARIES "${path}")
  endforeach()
  list(APPEND BLAS_LIBRARIES m Threads::Threads)
  set(BLAS_LIBRARIES "${BLAS_LIBRARIES}" PARENT_SCOPE)
  message(STATUS "cohost: static Abseil, GoogleTest and BLAS (${BLAS_LIBRARIES})")
endfunction()
