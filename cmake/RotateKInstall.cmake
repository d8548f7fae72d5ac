# Install rules, the CMake package (find_package(RotateK)) and the pkg-config file.
include(CMakePackageConfigHelpers)

# The CMake package exports the shared library (its backend dependencies stay private to it);
# the static archive is installed for pkg-config users (`pkg-config --static` lists its deps).
install(TARGETS rotatek EXPORT RotateKTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS rotatek_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/rotatek.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT RotateKTargets NAMESPACE RotateK:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RotateK)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/RotateKConfig.cmake.in
  ${PROJECT_BINARY_DIR}/RotateKConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RotateK)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/RotateKConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/RotateKConfig.cmake ${PROJECT_BINARY_DIR}/RotateKConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RotateK)

# Static consumers need the core's and backends' libraries.
set(RK_PC_LIBS_PRIVATE "-llapacke -llapack -lblas -lm -lpthread ${RK_PC_BACKEND_LIBS}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/rotatek.pc.in ${PROJECT_BINARY_DIR}/rotatek.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/rotatek.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
