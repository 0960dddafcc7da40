// The incremental detokenizer lives with the Tokenizer in tokenizer.h
// (IncrementalDetokenizer); this header only forwards there.
#pragma once

#include "runtime/tokenizer.h"
