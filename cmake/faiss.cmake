# faiss (Debian's libfaiss-dev) is a static library compiled by gcc against libgomp, and its
# CMake package names OpenMP::OpenMP_CXX without creating it. LibTorch uses libgomp too, so that
# runtime is linked whatever the compiler: one OpenMP thread pool in the process (with clang,
# FindOpenMP would bring libomp as a second one).
if(NOT TARGET OpenMP::OpenMP_CXX)
  find_library(ADX_GOMP_LIBRARY NAMES gomp libgomp.so.1 REQUIRED)
  add_library(OpenMP::OpenMP_CXX INTERFACE IMPORTED)
  set_target_properties(OpenMP::OpenMP_CXX PROPERTIES INTERFACE_LINK_LIBRARIES "${ADX_GOMP_LIBRARY}")
endif()
find_package(faiss REQUIRED)
