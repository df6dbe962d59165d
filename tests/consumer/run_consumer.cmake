# Installs adx into a temporary prefix, then configures, builds and runs the
# consumer project against it with find_package(adx).
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${ADX_BUILD_DIR} --prefix ${prefix})
# adx/adx.hpp is generated in the build tree; the install must carry it beside the other headers.
foreach(header adx/adx.hpp adx/base.hpp adx/detectors/patchcore/patchcore.hpp)
  if(NOT EXISTS ${prefix}/include/${header})
    message(FATAL_ERROR "the install lacks include/${header}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
