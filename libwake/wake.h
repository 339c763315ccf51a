/* libwake: the frame codecs, VM table, configuration and policies odrs is built on. */
#ifndef WAKE_H
#define WAKE_H
#include <wake/frame.h>
#include <wake/vmtable.h>
#include <wake/config.h>
#include <wake/policy.h>
#include <wake/ctl.h>
#include <wake/flows.h>
#define WK_VERSION "0.1.0"
#endif
