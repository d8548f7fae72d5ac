# Shared compile settings for RotateK targets.
function(rk_target_warnings target)
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wno-unused-parameter>)
  endif()
endfunction()

# Embed a text file (kernel source) as a C string: generates ${out_c} defining
# `const char ${symbol}[]`. Used for shaders/*.cl and SPIR-V blobs alike (binary-safe).
function(rk_embed_file input out_c symbol)
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${input} -DOUT=${out_c} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/RotateKEmbed.cmake
    DEPENDS ${input} ${PROJECT_SOURCE_DIR}/cmake/RotateKEmbed.cmake
    COMMENT "Embedding ${input}")
endfunction()

# A backend's toolchain is missing: fail when the backend was required (RK_<NAME>=ON), else say
# why it is skipped. The caller returns() right after.
function(rk_backend_unavailable name reason)
  string(TOUPPER ${name} upper)
  if(RK_${upper} STREQUAL "ON")
    message(FATAL_ERROR "RotateK: ${name} backend requested (RK_${upper}=ON) but ${reason}")
  endif()
  message(STATUS "RotateK: ${name} backend skipped: ${reason}")
endfunction()
