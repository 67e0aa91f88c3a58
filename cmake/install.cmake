# defines: the install (`cmake --install BUILD --prefix DIR`, docs/building.md): the programs in
#          bin/, the layers' shared libraries and the CUDA plugin in lib/, the configurations,
#          Slurm scripts and their launch scripts in share/dae_dist/, the docs in share/doc/dae_dist/.
# Included after every target exists. The install tree may move (the programs find their
# libraries and the plugin through $ORIGIN; the sbatch scripts then need DAE_HOME) and needs no
# LD_LIBRARY_PATH: LibTorch and the other libraries outside the system's directories are named by
# absolute RPATH entries, so the LibTorch it was built against must stay where it is.
include(GNUInstallDirs)

set(DAE_PROGRAMS dae_dist dae_prepare dae_denoise dae_export)
set(DAE_LIBRARIES dae_core dae_io dae_data dae_model dae_distributed dae_train dae_eval)
if(TARGET dae_onnx)
  list(APPEND DAE_LIBRARIES dae_onnx)
endif()

# The directories, outside the system's own, of the libraries the installed files link: LibTorch,
# and MPI, HDF5... where they come from an HPC module or a prefix of one's own (the build tree
# gets these from CMake's build RPATH; an installed file gets none unless named).
set(DAE_EXTERNAL_LIB_DIRS "${TORCH_INSTALL_PREFIX}/lib")
foreach(library IN LISTS MPI_CXX_LIBRARIES HDF5_C_LIBRARIES HDF5_LIBRARIES Boost_LIBRARIES
                         PNG_LIBRARIES ZLIB_LIBRARIES MATHGL_LIBRARY Protobuf_LIBRARIES)
  if(TARGET "${library}")
    get_target_property(type "${library}" TYPE)
    if(type STREQUAL "INTERFACE_LIBRARY")
      continue()
    endif()
    get_target_property(library "${library}" LOCATION)  # an imported target: its file
  endif()
  if(IS_ABSOLUTE "${library}")
    get_filename_component(dir "${library}" DIRECTORY)
    list(APPEND DAE_EXTERNAL_LIB_DIRS "${dir}")
  endif()
endforeach()
list(TRANSFORM DAE_EXTERNAL_LIB_DIRS REPLACE "/+$" "")
set(dae_lib_dirs)
foreach(dir IN LISTS DAE_EXTERNAL_LIB_DIRS)
  get_filename_component(dir "${dir}" ABSOLUTE)  # LibTorch's prefix holds "..": normalised
  if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES
     AND NOT dir IN_LIST CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES)
    list(APPEND dae_lib_dirs "${dir}")
  endif()
endforeach()
list(REMOVE_DUPLICATES dae_lib_dirs)
set(DAE_EXTERNAL_LIB_DIRS ${dae_lib_dirs})

# Programs: their libraries in ../lib (whatever CMAKE_INSTALL_LIBDIR says, relative to bin/).
file(RELATIVE_PATH dae_bin_to_lib "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
set_target_properties(${DAE_PROGRAMS} PROPERTIES
                      INSTALL_RPATH "$ORIGIN/${dae_bin_to_lib};${DAE_EXTERNAL_LIB_DIRS}")
# Libraries: each other in their own directory.
set_target_properties(${DAE_LIBRARIES} PROPERTIES INSTALL_RPATH "$ORIGIN;${DAE_EXTERNAL_LIB_DIRS}")
install(TARGETS ${DAE_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${DAE_LIBRARIES} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# The CUDA plugin: dae_distributed dlopens it from its own directory (src/dist/cuda_plugin.cpp),
# so it goes beside the libraries. Its RPATH adds NCCL's directory (the wheel's nvidia/nccl/lib);
# libtorch_cuda.so finds the rest of the wheel's CUDA libraries through its own RPATH.
if(TARGET dae_cuda)
  set(dae_cuda_rpath "$ORIGIN;${DAE_EXTERNAL_LIB_DIRS}")
  if(DAE_NCCL_FOUND)
    get_filename_component(dae_nccl_dir "${NCCL_LIBRARY}" DIRECTORY)
    get_filename_component(dae_nccl_dir "${dae_nccl_dir}" ABSOLUTE)
    list(APPEND dae_cuda_rpath "${dae_nccl_dir}")
  endif()
  set_target_properties(dae_cuda PROPERTIES INSTALL_RPATH "${dae_cuda_rpath}")
  install(TARGETS dae_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()

# share/dae_dist/: configs/, the training scripts of slurm/ and the launch scripts they source
# (launch/job_control.sh, common.sh) or that run jobs without Slurm (resume_loop.sh). Left out:
# the scripts that build, test or fetch into a repository (launch/dev/, main_job.sh,
# get_data.sh, compare_configs.sh) and slurm/test_mpi.sbatch, which runs the build tree's ctest.
set(DAE_INSTALL_SHARE "${CMAKE_INSTALL_DATADIR}/dae_dist")
install(DIRECTORY "${CMAKE_SOURCE_DIR}/configs" DESTINATION "${DAE_INSTALL_SHARE}")
install(PROGRAMS launch/resume_loop.sh DESTINATION "${DAE_INSTALL_SHARE}/launch")
install(FILES launch/common.sh launch/job_control.sh DESTINATION "${DAE_INSTALL_SHARE}/launch")
# Where an installed copy of the scripts finds the programs (launch/common.sh sources it there):
# relative to share/dae_dist, so the install tree can move.
file(RELATIVE_PATH dae_share_to_bin "${CMAKE_INSTALL_FULL_DATADIR}/dae_dist"
     "${CMAKE_INSTALL_FULL_BINDIR}")
file(CONFIGURE OUTPUT "${CMAKE_BINARY_DIR}/install_layout.sh" @ONLY CONTENT [[
# Written by cmake/install.cmake into an install's share/dae_dist/launch/ and sourced by
# common.sh there: the installed programs, for the scripts that a repository points at build/.
DAE_BUILD=${DAE_BUILD:-$(cd "$DAE_ROOT/@dae_share_to_bin@" && pwd)}
]])
install(FILES "${CMAKE_BINARY_DIR}/install_layout.sh" DESTINATION "${DAE_INSTALL_SHARE}/launch")
# The sbatch scripts source launch/job_control.sh from ${DAE_HOME:-.} (the repository root they
# are submitted from); an installed copy defaults to its own share/dae_dist instead, written in at
# install time: Slurm runs a copy of the batch script, so it cannot find itself.
file(GLOB DAE_SBATCH_SCRIPTS "${CMAKE_SOURCE_DIR}/slurm/train_*.sbatch")
install(CODE "set(dae_sbatch_scripts \"${DAE_SBATCH_SCRIPTS}\")
              set(dae_share \"${DAE_INSTALL_SHARE}\")")
install(CODE [[
  foreach(script IN LISTS dae_sbatch_scripts)
    get_filename_component(name "${script}" NAME)
    file(READ "${script}" text)
    string(FIND "${text}" "\${DAE_HOME:-.}/launch/job_control.sh" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${script}: no \${DAE_HOME:-.}/launch/job_control.sh to point at the install")
    endif()
    string(REPLACE "\${DAE_HOME:-.}" "\${DAE_HOME:-${CMAKE_INSTALL_PREFIX}/${dae_share}}" text
           "${text}")
    set(out "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${dae_share}/slurm/${name}")
    message(STATUS "Installing: ${out}")
    file(WRITE "${out}" "${text}")
    file(CHMOD "${out}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
         GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${out}")
  endforeach()]])

# share/doc/dae_dist/: the README and docs/ beside it, so that the README's links into docs/ hold.
install(FILES README.md DESTINATION "${CMAKE_INSTALL_DOCDIR}")
install(DIRECTORY docs DESTINATION "${CMAKE_INSTALL_DOCDIR}")
