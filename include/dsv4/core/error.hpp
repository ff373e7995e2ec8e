// Error types thrown at API boundaries (files, configs, shapes, tokens). Kernels never throw.
// STYLE.md §2.12: a message says what, where, what was expected, what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace dsv4 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Bytes do not match their declared format (safetensors, GGUF, quant blocks).
class FormatError : public Error {
 public:
  using Error::Error;
};
/// A configuration is inconsistent or names an unsupported value.
class ConfigError : public Error {
 public:
  using Error::Error;
};
/// A caller passed tensors or sizes of the wrong shape.
class ShapeError : public Error {
 public:
  using Error::Error;
};
/// An input value is out of range (token id, context length, ...).
class InputError : public Error {
 public:
  using Error::Error;
};

}  // namespace dsv4
