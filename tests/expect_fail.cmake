# Runs `PROG inspect FILE` and checks the failure contract of the CLI:
# exit code 1, nothing on stdout, exactly one stderr line that starts with
# "sparq: " and names FILE.
#   cmake -DPROG=path/to/sparq -DFILE=path -P expect_fail.cmake
execute_process(COMMAND ${PROG} inspect ${FILE} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "exit code ${rc}, expected 1\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT out STREQUAL "")
  message(FATAL_ERROR "stdout should be empty:\n${out}")
endif()
string(REGEX MATCHALL "\n" newlines "${err}")
list(LENGTH newlines count)
if(NOT count EQUAL 1 OR NOT err MATCHES "\n$")
  message(FATAL_ERROR "stderr is not exactly one line:\n${err}")
endif()
string(FIND "${err}" "sparq: " at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "stderr does not start with 'sparq: ':\n${err}")
endif()
string(FIND "${err}" "${FILE}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "stderr does not name ${FILE}:\n${err}")
endif()
