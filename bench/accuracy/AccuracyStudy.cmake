# The accuracy study's engine (npy reader, per-layer runs, sweep, reports), shared by rk-accuracy
# (bench/accuracy) and the accuracy test (tests/accuracy): whichever directory comes first
# defines the target.
if(NOT TARGET rk_accuracy_study)
  set(_rk_acc_dir ${CMAKE_CURRENT_LIST_DIR})
  add_library(rk_accuracy_study STATIC
    ${_rk_acc_dir}/npy.c
    ${_rk_acc_dir}/study.c
    ${_rk_acc_dir}/sweep.c
    ${_rk_acc_dir}/report.c)
  target_include_directories(rk_accuracy_study PUBLIC ${_rk_acc_dir})
  target_link_libraries(rk_accuracy_study PUBLIC rotatek_static)
  if(RK_LIBM)
    target_link_libraries(rk_accuracy_study PUBLIC ${RK_LIBM})
  endif()
  rk_target_warnings(rk_accuracy_study)
endif()
