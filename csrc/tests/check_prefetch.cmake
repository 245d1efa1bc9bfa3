# Guard (ctest prefetch_kept): every ISA object file must still contain the
# step tiles' L2 prefetches (prefetcht1, from __builtin_prefetch(p, 0, 2) in
# kernels/gemm.h). GCC 12 deleted them all once, silently, when they sat in a
# helper it judged free of side effects (see prefetch_at_k); the results stay
# the same, only the speed goes, so no other test would notice.
#   cmake -DOBJDUMP=<objdump> -DOBJECTS=<a;b;...> -P check_prefetch.cmake
set(checked 0)
foreach(obj IN LISTS OBJECTS)
  get_filename_component(name "${obj}" NAME)
  if(NOT name MATCHES "^isa_([a-z0-9]+)\\.")
    continue()
  endif()
  execute_process(COMMAND "${OBJDUMP}" -d --no-show-raw-insn "${obj}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "objdump failed on ${obj}")
  endif()
  string(REGEX MATCHALL "prefetcht1" hits "${out}")
  list(LENGTH hits count)
  if(count EQUAL 0)
    message(SEND_ERROR "${name}: no prefetcht1 left: the panel prefetches were compiled away")
  endif()
  message(STATUS "${name}: ${count} prefetcht1")
  math(EXPR checked "${checked} + 1")
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no ISA object file among OBJECTS")
endif()
