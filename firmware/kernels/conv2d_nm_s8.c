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

static const int8_t zero_group[NN_NM_GROUP] = {0, 0, 0, 0};

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
    const int32_t n = weights->n;
    return band_bytes(params) + nn_nm_row_units(window_inputs(&params->window), n) * nn_nm_slots(n) *
                                    NN_CONV_TILE * (int32_t)sizeof(int32_t);
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

/* Where group g of a window starts, from its corner; -1 past the window (a padding unit's). */
static int32_t group_offset(const nn_window *win, int32_t row_step, int32_t g)
{
    const int32_t c = win->input.c, row_inputs = win->kernel_w * c, at = NN_NM_GROUP * g;
    if (at >= win->kernel_h * row_inputs) {
        return -1;
    }
    const int32_t ky = at / row_inputs, in_row = at % row_inputs;
    if (win->dilation_w == 1 || win->kernel_w == 1) {
        return ky * row_step + in_row;
    }
    return ky * row_step + (in_row / c) * win->dilation_w * c + in_row % c;
}

static inline const int8_t *group_at(const int8_t *corner, int32_t offset)
{
    return offset < 0 ? zero_group : corner + offset;
}

#if NN_DSP
/* The tile's table: for unit u, slot s and pixel p, word (u * S + s) * NN_CONV_TILE + p. */
static void write_table(const nn_window *win, int32_t row_step, const int8_t *const corner[NN_CONV_TILE],
                        int32_t units, int32_t n, int32_t *table)
{
    const int32_t slots = nn_nm_slots(n);
    for (int32_t u = 0; u < units; ++u, table += slots * NN_CONV_TILE) {
        const int32_t g = nn_nm_first_group(u, n);
        const int32_t first = group_offset(win, row_step, g);
        const int32_t second = n == 2 ? first : group_offset(win, row_step, g + 1);
        for (int32_t p = 0; p < NN_CONV_TILE; ++p) {
            nn_nm_write_pairs(group_at(corner[p], first), group_at(corner[p], second), n, table + p,
                              NN_CONV_TILE);
        }
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

/* One channel's units against the tile's table, S slots per unit (a constant once inlined), 2 a turn. */
NN_INLINE void tile_dot(const int32_t *table, const int8_t *v, const uint8_t *slots, int32_t units,
                        const int32_t S, int32_t acc[NN_CONV_TILE])
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t k = units >> 1; k > 0; --k, v += 4, ++slots, table += 2 * S * NN_CONV_TILE) {
        const uint32_t s = *slots;
        const int32_t w = nn_read_s8x4(v);
        UNIT(nn_sxtb16(w), table, s & 15u);
        UNIT(nn_sxtb16_ror8(w), table + S * NN_CONV_TILE, s >> 4);
    }
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
/* Every channel of one tile, each unit's 2 inputs gathered per pixel. */
static void tile(const nn_window *win, int32_t row_step, const nn_nm_s8 *weights, int32_t units,
                 const int8_t *const corner[NN_CONV_TILE], const nn_requant *requant, const int32_t *bias,
                 int32_t pixels, int8_t *output)
{
    const int32_t n = weights->n, out_c = win->output.c;
    const int8_t *v = weights->values;
    const uint8_t *slots = weights->slots;
    for (int32_t ch = 0; ch < out_c; ++ch, v += 2 * units, slots += units / 2) {
        int32_t acc[NN_CONV_TILE] = {0, 0, 0, 0};
        for (int32_t u = 0; u < units; ++u) {
            const uint32_t s = (uint32_t)(slots[u / 2] >> (4 * (u & 1))) & 15u;
            const int8_t *pair = nn_nm_unit_values(v, u);
            const int32_t g = nn_nm_first_group(u, n);
            const int32_t first = group_offset(win, row_step, g);
            const int32_t second = n == 2 ? first : group_offset(win, row_step, g + 1);
            for (int32_t p = 0; p < NN_CONV_TILE; ++p) {
                acc[p] += pair[0] * group_at(corner[p], first)[nn_nm_first(n, s)] +
                          pair[2] * group_at(corner[p], second)[nn_nm_second(n, s)];
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
    if (!nn_sparse_conv_is_valid(win, buffer) || !nn_nm_is_valid(weights) || !groups_fit(win) ||
        (NN_DSP && buffer == 0)) {
        return NN_ERROR_ARGUMENT;
    }
    /* Local copies: an int8 store may alias anything, so they would be read again every channel. */
    const nn_requant requant = params->requant;
    const nn_nm_s8 w = *weights;
    const int32_t out_c = win->output.c, row_step = nn_sparse_conv_row_step(win);
    const int32_t units = nn_nm_row_units(window_inputs(win), w.n);
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, (int8_t)(-requant.input_offset), buffer);
    const int8_t *corner[NN_CONV_TILE];
#if NN_DSP
    int32_t *table = (int32_t *)(void *)(buffer + band_bytes(params));
#endif
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
#if NN_DSP
        write_table(win, row_step, corner, units, w.n, table);
        if (w.n == 2) {
            tile(&w, units, 6, table, &requant, out_c, bias, pixels, output);
        } else {
            tile(&w, units, 16, table, &requant, out_c, bias, pixels, output);
        }
#else
        tile(win, row_step, &w, units, corner, &requant, bias, pixels, output);
#endif
    }
    return NN_OK;
}
