# ctest driver for the consumer projects: configure, build and run one.
#   cmake -DMODE=find_package|add_subdirectory -DSRC=<blockquant source> -DWORK=<scratch dir> -P run_consumer.cmake
# In find_package mode blockquant is first installed into WORK/prefix.
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${MODE} consumer: ${what} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
if(MODE STREQUAL "find_package")
  run_step("configuring blockquant" ${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/bq -DCMAKE_BUILD_TYPE=Release
           -DBLOCKQUANT_BUILD_TESTS=OFF -DBLOCKQUANT_BUILD_EXAMPLES=OFF -DBLOCKQUANT_CUDA=OFF -DBLOCKQUANT_INSTALL=ON)
  run_step("building blockquant" ${CMAKE_COMMAND} --build ${WORK}/bq -j2)
  run_step("cmake --install" ${CMAKE_COMMAND} --install ${WORK}/bq --prefix ${WORK}/prefix)
  set(extra -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  set(extra -DBLOCKQUANT_SOURCE_DIR=${SRC})
endif()
run_step("configuring" ${CMAKE_COMMAND} -S ${SRC}/tests/consumer/${MODE} -B ${WORK}/build ${extra})
run_step("building" ${CMAKE_COMMAND} --build ${WORK}/build)
run_step("running" ${WORK}/build/consumer)
