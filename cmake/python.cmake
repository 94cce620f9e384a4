# The Python package `llada2` (python/): the pybind11 extension llada2._core, assembled with the
# package's Python files in ${PROJECT_BINARY_DIR}/python/llada2, so that PYTHONPATH=<build>/python
# imports it; python/setup.py packages the same files for pip.

# Debian's pybind11, NumPy and pytest belong to the system interpreter: prefer it over another python3
# earlier on PATH (the module's ABI is that of the interpreter found here).
if(NOT DEFINED Python_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
find_package(pybind11 CONFIG REQUIRED)

set(LLADA2_PYTHON_DIR ${PROJECT_BINARY_DIR}/python/llada2)
# NO_EXTRAS: no link-time optimisation (a serial LTO link of the whole engine) and no stripping.
pybind11_add_module(llada2_python MODULE NO_EXTRAS ${LLADA2_PYTHON_SOURCES})
set_target_properties(llada2_python PROPERTIES OUTPUT_NAME _core LIBRARY_OUTPUT_DIRECTORY ${LLADA2_PYTHON_DIR})
target_include_directories(llada2_python PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(llada2_python PRIVATE llada2_lib)

set(package_files)
foreach(f ${LLADA2_PYTHON_PACKAGE})
  get_filename_component(name ${f} NAME)
  add_custom_command(OUTPUT ${LLADA2_PYTHON_DIR}/${name}
                     COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/${f} ${LLADA2_PYTHON_DIR}/${name}
                     DEPENDS ${PROJECT_SOURCE_DIR}/${f} VERBATIM)
  list(APPEND package_files ${LLADA2_PYTHON_DIR}/${name})
endforeach()
add_custom_target(llada2_python_files ALL DEPENDS ${package_files})
add_dependencies(llada2_python llada2_python_files)

if(LLADA2_TESTS)
  enable_testing()
  add_test(NAME Python.Pytest COMMAND ${Python_EXECUTABLE} -m pytest -q -p no:cacheprovider ${PROJECT_SOURCE_DIR}/python/tests)
  set_tests_properties(Python.Pytest PROPERTIES TIMEOUT 900
    ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;LLADA2_BUILD_DIR=${PROJECT_BINARY_DIR};LLADA2_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endif()
