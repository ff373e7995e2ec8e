// Umbrella header of the header-only core (no backends).
#pragma once

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/presets.hpp"
#include "dsv4/core/state_memory.hpp"
