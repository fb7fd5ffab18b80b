/*
 * CONV_2D, int8, N:M weights (kernels.h, nm_util.h), over the sparse
 * kernels' window layout (conv2d_csr_s8.c: in place, or from a padded
 * band) in tiles of NN_CONV_TILE pixels.
 *
 * On DSP cores each tile first writes the slot table of its 4 windows
 * (every unit's possible input pairs, the 4 pixels' side by side); every
 * output channel then costs, per unit, one slot extraction, one address,
 * 4 table loads and 4 SMLADs, and one SXTB16 for its 2 weights. Portable
 * cores gather each unit's 2 inputs per pixel.
 */
#include "nm_util.h"

/* The scratch buffer: the band (when windows pad), then the table, word-aligned. */
static int32_t band_bytes(const nn_conv2d_params *params)
{
    return (nn_conv2d_csr_s8_get_buffer_size(params) + 3) & ~3;
}

static int32_t window_inputs(const nn_window *win)
{
    return win->kernel_h * win->kernel_w * win->input.c;
}

int32_t nn_conv2d_nm_s8_get_buffer_size(const nn_conv2d_params *params, const nn_nm_s8 *weights)
{
    const int32_t n = weights->n, units = nn_nm_row_units(window_inputs(&params->window), n);
    const int32_t table_words = units * nn_nm_slots(n) * NN_CONV_TILE;
    const int32_t offset_words = units * (n == 2 ? 1 : 2);
    return band_bytes(params) + (table_words + offset_words) * (int32_t)sizeof(int32_t);
}

/*
 * Whether every group of 4 inputs lies in one kernel row, 4 consecutive
 * bytes: a kernel row is one run of KW * C_IN bytes when dilation_w is 1
 * (or KW is 1), else KW runs of C_IN.
 */
static int groups_fit(const nn_window *win)
{
    const int contiguous = win->dilation_w == 1 || win->kernel_w == 1;
    return (contiguous ? win->kernel_w * win->input.c : win->input.c) % NN_NM_GROUP == 0;
}

/*
 * Where each group of 4 inputs of a window starts, from its corner, in the
 * weights' (ky, kx, c_in) order: runs of consecutive inputs (a kernel row,
 * or a tap's C_IN when dilation_w splits the row), run by run.
 */
static void write_offsets(const nn_window *win, int32_t row_step, int32_t *offset)
{
    const int32_t c = win->input.c;
    const int contiguous = win->dilation_w == 1 || win->kernel_w == 1;
    const int32_t run = contiguous ? win->kernel_w * c : c, runs = contiguous ? 1 : win->kernel_w;
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        for (int32_t r = 0; r < runs; ++r) {
            const int32_t start = ky * row_step + r * win->dilation_w * c;
            for (int32_t at = start; at < start + run; at += NN_NM_GROUP) {
                *offset++ = at;
            }
        }
    }
}

#if NN_DSP
static const int8_t zero_group[NN_NM_GROUP] = {0, 0, 0, 0};

/*
 * The tile's table: for unit u, slot s and pixel p, word (u * S + s) *
 * NN_CONV_TILE + p, for the units that hold inputs. A unit past them
 * (a row's padding) has zero weights: its words were zeroed once.
 */
static void write_table(const int32_t *offset, int32_t groups, int32_t n,
                        const int8_t *const corner[NN_CONV_TILE], int32_t *table)
{
    if (n == 2) {
        for (int32_t g = 0; g < groups; ++g, table += 6 * NN_CONV_TILE) {
            for (int32_t p = 0; p < NN_CONV_TILE; ++p) {
                const int8_t *x = corner[p] + offset[g];
                nn_nm_write_pairs(x, x, 2, table + p, NN_CONV_TILE);
            }
        }
        return;
    }
    int32_t g = 0;
    for (; g + 2 <= groups; g += 2, table += 16 * NN_CONV_TILE) {
        for (int32_t p = 0; p < NN_CONV_TILE; ++p) {
            nn_nm_write_pairs(corner[p] + offset[g], corner[p] + offset[g + 1], 1, table + p, NN_CONV_TILE);
        }
    }
    for (int32_t p = 0; p < NN_CONV_TILE && g < groups; ++p) { /* an odd last group: the second is zeros */
        nn_nm_write_pairs(corner[p] + offset[g], zero_group, 1, table + p, NN_CONV_TILE);
    }
}

/* One unit's products for the 4 pixels: its weight pair wp against the 4 pairs of slot s. */
#define UNIT(wp, base, s)                                                                          \
    do {                                                                                           \
        const int32_t *t_ = (base) + (s) * NN_CONV_TILE;                                           \
        a0 = nn_smlad(t_[0], (wp), a0);                                                            \
        a1 = nn_smlad(t_[1], (wp), a1);                                                            \
        a2 = nn_smlad(t_[2], (wp), a2);                                                            \
        a3 = nn_smlad(t_[3], (wp), a3);                                                            \
    } while (0)

/*
 * One unit in assembly: the slot (already in bits 0-3 of a, shifted left
 * by 4: a tile's 4 pairs are 16 bytes) gives the address of the 4 pairs,
 * read with 2 LDRDs at `offset` past it, each multiplied with the
 * widened weights x.
 */
#define UNIT_ASM(offset)                                                                           \
    "add %[a], %[t], %[a], lsl #4\n\t"                                                            \
    "ldrd %[p], %[q], [%[a], #" offset "]\n\t"                                                    \
    "smlad %[a0], %[p], %[x], %[a0]\n\t"                                                          \
    "smlad %[a1], %[q], %[x], %[a1]\n\t"                                                          \
    "ldrd %[p], %[q], [%[a], #" offset " + 8]\n\t"                                                \
    "smlad %[a2], %[p], %[x], %[a2]\n\t"                                                          \
    "smlad %[a3], %[q], %[x], %[a3]\n\t"

/*
 * Two units a turn in assembly for S slots per unit (`size`: S * 16, the
 * bytes of a unit's table): their slot byte and value word, post-indexed,
 * 2 SXTB16, 4 LDRDs and 8 SMLADs; 23 instructions, where GCC's loop takes
 * 31 (it spills in the 14 allocatable registers this one fills).
 */
#define UNIT_PAIRS_ASM(size)                                                                       \
    __asm__("1:\n\t"                                                                               \
            "ldrb %[b], [%[s]], #1\n\t"                                                           \
            "ldr %[w], [%[v]], #4\n\t"                                                            \
            "and %[a], %[b], #15\n\t"                                                             \
            "sxtb16 %[x], %[w]\n\t"                                                               \
            UNIT_ASM("0")                                                                          \
            "lsr %[a], %[b], #4\n\t"                                                              \
            "sxtb16 %[x], %[w], ror #8\n\t"                                                       \
            UNIT_ASM(#size)                                                                        \
            "add %[t], %[t], #2 * " #size "\n\t"                                                  \
            "cmp %[s], %[end]\n\t"                                                                \
            "bne 1b"                                                                               \
            : [s] "+r"(slots), [v] "+r"(v), [t] "+r"(table), [a0] "+r"(a0), [a1] "+r"(a1),         \
              [a2] "+r"(a2), [a3] "+r"(a3), [b] "=&r"(b_), [w] "=&r"(w_), [x] "=&r"(x_),           \
              [a] "=&r"(a_), [p] "=&r"(p_), [q] "=&r"(q_)                                          \
            : [end] "r"(end)                                                                       \
            : "cc", "memory")

/*
 * One channel's units against the tile's table, S slots per unit (a
 * constant once inlined), 2 a turn: in assembly on Arm cores with the DSP
 * extension, in C with NN_EMULATE_DSP on the host (the same sums).
 */
NN_INLINE void tile_dot(const int32_t *table, const int8_t *v, const uint8_t *slots, int32_t units,
                        const int32_t S, int32_t acc[NN_CONV_TILE])
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#if defined(__ARM_FEATURE_DSP)
    const uint8_t *const end = slots + units / 2;
    int32_t b_, w_, x_, a_, p_, q_; /* UNIT_PAIRS_ASM's scratch registers */
    if (S == 6) {
        UNIT_PAIRS_ASM(96);
    } else {
        UNIT_PAIRS_ASM(256);
    }
#else
    for (int32_t k = units >> 1; k > 0; --k, v += 4, ++slots, table += 2 * S * NN_CONV_TILE) {
        const uint32_t s = *slots;
        const int32_t w = nn_read_s8x4(v);
        UNIT(nn_sxtb16(w), table, s & 15u);
        UNIT(nn_sxtb16_ror8(w), table + S * NN_CONV_TILE, s >> 4);
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Every channel of one tile, S slots per unit. */
NN_INLINE void tile(const nn_nm_s8 *weights, int32_t units, const int32_t S, const int32_t *table,
                    const nn_requant *requant, int32_t out_c, const int32_t *bias, int32_t pixels,
                    int8_t *output)
{
    const int8_t *v = weights->values;
    const uint8_t *slots = weights->slots;
    for (int32_t ch = 0; ch < out_c; ++ch, v += 2 * units, slots += units / 2) {
        int32_t acc[NN_CONV_TILE];
        tile_dot(table, v, slots, units, S, acc);
        nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
    }
}
#else
/* Every channel of one tile, each unit's 2 inputs gathered per pixel; units past the groups are padding. */
static void tile(const nn_nm_s8 *weights, int32_t units, int32_t out_c, const int32_t *offset, int32_t groups,
                 const int8_t *const corner[NN_CONV_TILE], const nn_requant *requant, const int32_t *bias,
                 int32_t pixels, int8_t *output)
{
    const int32_t n = weights->n;
    const int8_t *v = weights->values;
    const uint8_t *slots = weights->slots;
    for (int32_t ch = 0; ch < out_c; ++ch, v += 2 * units, slots += units / 2) {
        int32_t acc[NN_CONV_TILE] = {0, 0, 0, 0};
        for (int32_t u = 0; u < units && nn_nm_first_group(u, n) < groups; ++u) {
            const uint32_t s = (uint32_t)(slots[u / 2] >> (4 * (u & 1))) & 15u;
            const int8_t *pair = nn_nm_unit_values(v, u);
            const int32_t g = nn_nm_first_group(u, n);
            const int32_t second = n == 2 ? g : g + 1; /* past the groups: an odd last group's zero partner */
            for (int32_t p = 0; p < NN_CONV_TILE; ++p) {
                acc[p] += pair[0] * corner[p][offset[g] + nn_nm_first(n, s)];
                if (second < groups) {
                    acc[p] += pair[2] * corner[p][offset[second] + nn_nm_second(n, s)];
                }
            }
        }
        nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
    }
}
#endif

nn_status nn_conv2d_nm_s8(const nn_conv2d_params *params, const int8_t *input, const nn_nm_s8 *weights,
                          const int32_t *bias, int8_t *output, int8_t *buffer)
{
    const nn_window *win = &params->window;
    if (!nn_window_is_valid(win) || buffer == 0 || !nn_nm_is_valid(weights) || !groups_fit(win)) {
        return NN_ERROR_ARGUMENT;
    }
    /* Local copies: an int8 store may alias anything, so they would be read again every channel. */
    const nn_requant requant = params->requant;
    const nn_nm_s8 w = *weights;
    const int32_t out_c = win->output.c, groups = window_inputs(win) / NN_NM_GROUP;
    const int32_t units = nn_nm_row_units(window_inputs(win), w.n), slots = nn_nm_slots(w.n);
    int32_t *const table = (int32_t *)(void *)(buffer + band_bytes(params));
    int32_t *const offset = table + units * slots * NN_CONV_TILE;
    write_offsets(win, nn_sparse_conv_row_step(win), offset);
#if NN_DSP
    const int32_t filled = w.n == 2 ? groups : (groups + 1) / 2; /* units holding inputs; the rest pad the row */
    memset(table + filled * slots * NN_CONV_TILE, 0,
           (size_t)((units - filled) * slots * NN_CONV_TILE) * sizeof(int32_t));
#endif
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, (int8_t)(-requant.input_offset), buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
#if NN_DSP
        write_table(offset, groups, w.n, corner, table);
        if (w.n == 2) {
            tile(&w, units, 6, table, &requant, out_c, bias, pixels, output);
        } else {
            tile(&w, units, 16, table, &requant, out_c, bias, pixels, output);
        }
#else
        tile(&w, units, out_c, offset, groups, corner, &requant, bias, pixels, output);
#endif
    }
    return NN_OK;
}
