#pragma once
/// @file mpaio.hpp
/// Umbrella header: everything a user of mpaio needs.

#include "mpaio/array_meta.hpp"
#include "mpaio/array_view.hpp"
#include "mpaio/data_iterator.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/error.hpp"
#include "mpaio/fixed_string.hpp"
#include "mpaio/range.hpp"
#include "mpaio/shared_array.hpp"
#include "mpaio/shared_memory.hpp"
