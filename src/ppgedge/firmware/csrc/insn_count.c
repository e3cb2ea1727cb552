/* insn_count.c: a QEMU TCG plugin that counts executed guest instructions (ppgedge).
 *
 * Debian's QEMU 7.2 ships no qemu-plugin.h, so the few declarations used are written here from
 * the documented plugin API (docs/devel/tcg-plugins.rst, API version 1): opaque handles,
 * qemu_plugin_install, the translation-block callback, inline counters and the atexit hook.
 * Every translated block adds its instruction count to one 64-bit counter when it executes;
 * when the instruction at the address given by "mark=0x..." executes, the counter's value is
 * appended to a list. At exit the total and the list are written to "out=PATH", one decimal
 * number per line ("total N", then "mark N" lines). The guest calls that marked function at
 * operator and phase boundaries, so differences of marks are instructions per operator. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

static uint64_t g_count;
static uint64_t g_mark_addr = UINT64_MAX;
static uint64_t *g_marks;
static size_t g_n_marks, g_cap_marks;
static char g_out[4096];

static void on_mark(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (g_n_marks == g_cap_marks) {
        size_t cap = g_cap_marks ? 2 * g_cap_marks : 4096;
        uint64_t *grown = realloc(g_marks, cap * sizeof *grown);
        if (grown == NULL) {
            return;
        }
        g_marks = grown;
        g_cap_marks = cap;
    }
    g_marks[g_n_marks++] = g_count;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &g_count, n);
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (qemu_plugin_insn_vaddr(insn) == g_mark_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    FILE *f;
    size_t i;
    (void)id;
    (void)userdata;
    if (g_out[0] == '\0' || (f = fopen(g_out, "w")) == NULL) {
        return;
    }
    fprintf(f, "total %" PRIu64 "\n", g_count);
    for (i = 0; i < g_n_marks; i++) {
        fprintf(f, "mark %" PRIu64 "\n", g_marks[i]);
    }
    fclose(f);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            g_mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1; /* Thumb bit off */
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(g_out, sizeof g_out, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
