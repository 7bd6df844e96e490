/*
 * cmd_ckpt.h - `cairn ckpt save` and `cairn ckpt restore` (cmd_ckpt.c),
 * referenced by the ckpt group table in cmd_snap.c.  docs/checkpoints.md.
 */
#ifndef CAIRN_CMD_CKPT_H
#define CAIRN_CMD_CKPT_H

#include "cli.h"

int cmd_ckpt_save(cli_ctx *c, int argc, char **argv);
int cmd_ckpt_restore(cli_ctx *c, int argc, char **argv);
extern const char cmd_ckpt_save_usage[], cmd_ckpt_restore_usage[];
/* Checkpoint NAME is the read-only snapshot "ckpt:NAME". */
#define CKPT_SNAP_PREFIX "ckpt:"
int ckpt_name_check(cli_ctx *c, const char *name); /* usage error (returns CLI_EXIT_USAGE) unless 1-200 bytes of [A-Za-z0-9._+=@-], not starting with '.' */

#endif
