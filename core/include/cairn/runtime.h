/*
 * cairn/runtime.h - the runtime every layer uses (library cairn_runtime):
 * errors, logging, the local I/O engine, codecs and object stores.
 * meta/ and segments/ may include this header and nothing from the volume API.
 */
#ifndef CAIRN_RUNTIME_H
#define CAIRN_RUNTIME_H

#include "cairn/err.h"
#include "cairn/log.h"
#include "cairn/uring.h"
#include "cairn/codec.h"
#include "cairn/objstore.h"

#define CAIRN_VERSION "0.1.0"

#endif
