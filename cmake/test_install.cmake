# ctest InstallPackage.ExampleBuildsAndRuns: installs the build into a scratch prefix, builds
# examples/generate against the installed package (find_package(llada2)), and runs it on a tiny
# checkpoint of the tests. Called with -DBUILD_DIR, -DSOURCE_DIR and -DGENERATOR.
set(work "${BUILD_DIR}/install-test")
file(REMOVE_RECURSE "${work}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${work}/prefix")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/generate" -B "${work}/build" -G "${GENERATOR}"
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${work}/prefix")
run(${CMAKE_COMMAND} --build "${work}/build")
run("${work}/build/generate" "${SOURCE_DIR}/tests/data/golden/models/tiny-a-f32" --mask-token-id 319)
if(NOT out MATCHES "^sequence: [0-9]+( [0-9]+)*\n")
  message(FATAL_ERROR "unexpected output of the example program:\n${out}")
endif()
# README's example: a clear error (exit 2, no abort) on a checkpoint without a tokenizer, and an answer
# from the demo model when it is there.
execute_process(COMMAND "${work}/build/readme" "${SOURCE_DIR}/tests/data/golden/models/tiny-a-f32"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "^error: ")
  message(FATAL_ERROR "README's example on a checkpoint without a tokenizer: exit ${rc}\n${out}\n${err}")
endif()
if(EXISTS "${SOURCE_DIR}/models/llada2-demo/config.json")
  run("${work}/build/readme" "${SOURCE_DIR}/models/llada2-demo")
  if(NOT out MATCHES "forwards")
    message(FATAL_ERROR "unexpected output of README's example:\n${out}")
  endif()
endif()
# The program that only generates does not link the HTTP server.
run(nm -C "${work}/build/generate")
if(out MATCHES "httplib")
  message(FATAL_ERROR "examples/generate links the HTTP server")
endif()
message(STATUS "example built against the installed package and ran: ${out}")
