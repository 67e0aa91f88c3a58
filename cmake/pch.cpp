// The object that carries the precompiled LibTorch header every target reuses (CMakeLists.txt).
