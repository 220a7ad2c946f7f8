// Running library code with the GIL released, shared by the binding units.
#ifndef BLOCKQUANT_PYTHON_WITHOUT_GIL_H_
#define BLOCKQUANT_PYTHON_WITHOUT_GIL_H_

#include <pybind11/pybind11.h>

#include <string>

#include "blockquant/error.h"

// Runs f with the GIL released; blockquant::Error is rethrown as the Python
// class for its code once the GIL is back.
template <typename F>
inline void RunWithoutGil(F&& f) {
  bool failed = false;
  blockquant::ErrorCode code{};
  std::string message;
  {
    pybind11::gil_scoped_release release;
    try {
      f();
    } catch (const blockquant::Error& e) {
      failed = true;
      code = e.code();
      message = e.message();
    }
  }
  if (failed) throw blockquant::Error(code, message);
}

#endif  // BLOCKQUANT_PYTHON_WITHOUT_GIL_H_
