# bench_smoke: runs `apcbench smoke` and `apcbench_core smoke` (every benchmark with a few
# samples, under Wine through the build's emulator) and checks that they exit with 0 and that
# every line they print is a well-formed result line: the metrics the report needs are there,
# every value is a finite number, and each distribution is ordered (p50 <= p99 <= max). It
# asserts nothing about speed: timings on a shared machine are not pass/fail material.
#
# cmake -DEMULATOR=<wine-run.sh or ""> -DBENCH=<apcbench.exe> -DBENCH_CORE=<apcbench_core.exe>
#       -P smoke.cmake
set(required
    "dispatch engine.p50" "dispatch queueuserapc.p50" "dispatch iocp.p50"
    "dispatch threadpool.p50" "dispatch setevent.p50" "dispatch engine_vs_apc.p50_ratio"
    "throughput raw_apc.rate" "throughput engine_history_disk.rate" "throughput engine_vs_raw_disk"
    "timer engine_late.p99" "timer raw_timer_late.p99" "idle process_cpu_ms"
    "pipe raw_echo.rate" "pipe submit.rate" "pipe submit_vs_raw" "proc raw.rate" "proc engine.rate"
    "proc engine_vs_raw" "history per_record.rate" "history group.rate"
    "history group_vs_per_record" "scale jobs1k.load_ms" "scale jobs1k.heap_per_job_beyond_strings"
    "scale jobs2k.next_ns_per_job")

set(all_out "")
foreach(prog IN ITEMS "${BENCH}" "${BENCH_CORE}")
  execute_process(COMMAND ${EMULATOR} "${prog}" smoke RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err TIMEOUT 50)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${prog} smoke exited with ${rc}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  string(APPEND all_out "${out}")
endforeach()

set(num "-?[0-9]+\\.[0-9][0-9][0-9]")
string(REPLACE "\r" "" all_out "${all_out}")
string(REPLACE ";" "," all_out "${all_out}") # a CMake list separator, not data
string(REPLACE "\n" ";" lines "${all_out}")
set(nresults 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  if(line MATCHES "^RESULT ([a-z]+) ([A-Za-z0-9_.]+) (${num}) ([A-Za-z/_-]+)$")
    set("v_${CMAKE_MATCH_1} ${CMAKE_MATCH_2}" "${CMAKE_MATCH_3}")
    math(EXPR nresults "${nresults} + 1")
  elseif(line MATCHES "^DIST [a-z]+ [A-Za-z0-9_.]+ [0-9]+( ${num})+$")
    string(REGEX MATCHALL " ${num}" pcts "${line}")
    list(LENGTH pcts npct)
    if(NOT npct EQUAL 101)
      message(FATAL_ERROR "DIST line without 101 percentiles: ${line}")
    endif()
  elseif(NOT line MATCHES "^INFO [a-z]+ .+$")
    message(FATAL_ERROR "malformed output line: '${line}'")
  endif()
endforeach()

foreach(key IN LISTS required)
  if(NOT DEFINED "v_${key}")
    message(FATAL_ERROR "missing result: ${key}\noutput:\n${all_out}")
  endif()
endforeach()

# Every distribution printed as .p50/.p99/.max must be ordered.
foreach(line IN LISTS lines)
  if(line MATCHES "^RESULT ([a-z]+) ([A-Za-z0-9_.]+)\\.p50 ")
    set(b "${CMAKE_MATCH_1}")
    set(p "${CMAKE_MATCH_2}")
    foreach(pair IN ITEMS "p50;p99" "p99;max")
      list(GET pair 0 lo)
      list(GET pair 1 hi)
      set(a "${v_${b} ${p}.${lo}}")
      set(c "${v_${b} ${p}.${hi}}")
      if(a GREATER c)
        message(FATAL_ERROR "${b} ${p}: ${lo} ${a} > ${hi} ${c}")
      endif()
    endforeach()
  endif()
endforeach()
message(STATUS "bench smoke: ${nresults} well-formed results")
