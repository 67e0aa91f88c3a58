# defines: DAE_SANITIZE (AddressSanitizer + UndefinedBehaviorSanitizer for every target) and
#          DAE_FUZZ (libFuzzer targets in fuzz/, clang only)
# Included before any target is created, so dae_core, the programs and the tests all get the flags.

option(DAE_SANITIZE "Build everything with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(DAE_FUZZ "Build the libFuzzer targets of fuzz/ (clang; implies DAE_SANITIZE)" OFF)

if(DAE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DAE_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  set(DAE_SANITIZE ON CACHE BOOL "" FORCE)
endif()

if(DAE_SANITIZE)
  # UB is an error, not a warning that scrolls by: the first report ends the process.
  add_compile_options(-fsanitize=address,undefined
                      -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
  message(STATUS "Sanitizers: AddressSanitizer + UndefinedBehaviorSanitizer")

  # How the tests of this build run (tests/ and fuzz/ set it on every ctest test):
  # - fast_unwind_on_malloc=0: Open MPI and its plugins have no frame pointers, so fast unwinding
  #   cuts allocation stacks after one frame; the full stacks are what lets lsan.supp match only
  #   allocations made under MPI_Init/MPI_Finalize/Open MPI's progress thread (and prove it).
  # - LeakSanitizer on, with only those suppressions (tests/hardening/lsan.supp, each with proof).
  # - UBSan prints the stack and, as compiled, stops at the first report.
  set(DAE_SANITIZER_ENVIRONMENT
      "ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=1"
      "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/hardening/lsan.supp:print_suppressions=0"
      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

if(DAE_FUZZ)
  # Coverage instrumentation for everything (what guides libFuzzer); only the fuzz targets link
  # libFuzzer's main, so the unit tests of the same build stay ordinary programs.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
