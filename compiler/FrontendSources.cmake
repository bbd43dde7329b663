# The front end's sources (with autodiff, simplification and the reference interpreter: all
# free of LLVM), shared by lossc_frontend and the standalone fuzzing build
# (tests/fuzz), which compiles them again with clang and sanitizers.
set(LOSSC_FRONTEND_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/Ast.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Autodiff.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Builtins.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Check.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Diagnostics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Differentiability.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Interp.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Ir.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Json.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Limits.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Parse.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Pipeline.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Sema.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Simplify.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Source.cpp)
