// DSV4_CHECK: boundary checks that throw a dsv4 error with a formatted message.
// Kept apart from error.hpp so that device code can use the error types without fmt.
#pragma once

#include <fmt/format.h>

#include "dsv4/core/error.hpp"

/// Throws `ErrType` with a formatted message when `cond` is false.
#define DSV4_CHECK(cond, ErrType, ...)                      \
  do {                                                      \
    if (!(cond)) throw ErrType(::fmt::format(__VA_ARGS__)); \
  } while (false)
