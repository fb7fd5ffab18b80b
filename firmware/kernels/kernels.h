/*
 * int8 kernels called by the generated model.c.
 *
 * Every op has a kernel for dense weights (`nn_<op>_s8`) and may have
 * siblings that store the weights differently (`nn_<op>_csr_s8`, ...),
 * taking the same parameter struct; all are bit-exact with TensorFlow Lite
 * Micro's reference kernels.
 *
 * Reference and optimized kernels: firmware/kernels/<op>_s8.c is the
 * optimized kernel (DSP-extension paths behind NN_DSP, tiles, tables).
 * Where it is more than the plain loop, firmware/kernels/reference/<op>_s8.c
 * is its reference twin, with the same symbols: a readable loop over the
 * output written from TFLM's reference kernel, the general requantization
 * (nn_requantize_reference), a clamp; the oracle. The build chooses:
 * NN_REFERENCE_KERNELS defined in the build flags (e.g.
 * PLATFORMIO_BUILD_FLAGS=-DNN_REFERENCE_KERNELS; firmware/kernel_sources.py)
 * swaps every twin in. FULLY_CONNECTED's CSR kernel has a twin too; the
 * other sparse kernels, and those that are the plain loop already (SOFTMAX,
 * pooling, MEAN, PAD, CONCATENATION; LOGISTIC, whose table past 256
 * elements holds its per-byte function's 256 results), have one file, in
 * both builds. One test suite runs against each build (docs/kernels.md,
 * "Reference and optimized kernels").
 *
 * Conventions:
 * - Activation tensors are int8 in NHWC layout with batch 1: element
 *   (y, x, c) of an nn_hwc shape lives at ((y * w) + x) * c_count + c.
 * - Weights are int8, symmetric (zero point 0). Kernels accumulate
 *   weight * input over raw int8 inputs and add a folded bias, int32 in
 *   the scale input_scale * weight_scale of its output channel:
 *     bias[ch] = tflite_bias[ch] + input_offset * (sum of ch's weights)
 *   (the compiler folds it), which equals TFLM's sum of weight * (input +
 *   input_offset) + tflite_bias when every tap reads the input. A tap in
 *   the padding around an image reads the input zero point
 *   (-input_offset), so its terms cancel, as TFLM's skipped taps do.
 * - Kernels return NN_OK, or NN_ERROR_ARGUMENT (before writing anything)
 *   when the parameters describe an impossible geometry.
 *
 * Writing over the input: the compiler may place an op's output so that it
 * starts below an input that dies with the op and overlaps it
 * (harness/compiler/overlap.py computes how far). That is safe as long as
 * every variant of these kernels keeps the reference kernels' order:
 * - CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D write output
 *   pixels in raster order, and once they write any byte of output pixel
 *   q + 1 they read no input that only the windows of pixels 0..q cover
 *   (processing a few pixels at a time, or a band of rows, is fine);
 * - ADD, MUL (for an input of the output's shape) and LOGISTIC compute
 *   output element i from input element i, not from later ones.
 * A variant that needs another order must say so to the compiler.
 */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stdint.h>

typedef enum {
    NN_OK = 0,
    NN_ERROR_ARGUMENT = 1
} nn_status;

/* One image of an [1, h, w, c] tensor. */
typedef struct {
    int32_t h, w, c;
} nn_hwc;

/*
 * Bringing an int32 accumulator back to int8, per output channel:
 *   out = clamp(requantize(acc + bias[ch], multiplier[ch], shift[ch])
 *               + output_offset, act_min, act_max)
 * where acc sums weight * input and bias is folded (see above).
 */
typedef struct {
    int32_t input_offset;      /* minus the input zero point: [-127, 128]; padding reads -input_offset */
    int32_t output_offset;     /* the output zero point: [-128, 127] */
    int32_t act_min, act_max;  /* fused activation range, within [-128, 127] */
    const int32_t *multiplier; /* Q31 in [2^30, 2^31), or 0; one per output channel */
    const int8_t *shift;       /* power of two: > 0 left, < 0 right; one per output channel */
} nn_requant;

/*
 * A sliding window over an NHWC image (convolutions and pooling). Output
 * pixel (oy, ox) reads input rows oy * stride_h - pad_top + ky * dilation_h
 * for ky in [0, kernel_h), and likewise for columns; reads outside the
 * image are padding.
 */
typedef struct {
    nn_hwc input, output;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;     /* >= 1 */
    int32_t dilation_h, dilation_w; /* >= 1 */
    int32_t pad_top, pad_left;      /* >= 0 */
} nn_window;

/*
 * Weights in compressed sparse row form: row r's nonzero values are
 * values[row_start[r] .. row_start[r + 1]), and index[k] says where value
 * k's input sits, relative to the start of the row's input (a column for
 * FULLY_CONNECTED, an offset into the padded input window for CONV_2D).
 * Exactly one of index_u8 / index_u16 and one of row_start_u16 /
 * row_start_u32 is non-NULL: the compiler picks the narrowest that fits.
 */
typedef struct {
    const int8_t *values;
    const uint8_t *index_u8;
    const uint16_t *index_u16;
    const uint16_t *row_start_u16; /* rows + 1 entries */
    const uint32_t *row_start_u32;
} nn_csr_s8;

/*
 * 4-bit relative indices (as dCSR): rows are output channels, or for
 * CONV_2D (output channel, kernel row) pairs in that order. A row's entry
 * k sits delta[k] inputs after entry k - 1 (entry 0: delta[0] - 1 after the
 * row's first input), 1 <= delta <= 15; longer gaps hold filler entries
 * of value 0. Deltas pack two per byte, low nibble first, all rows in one
 * stream (a row may start in the high nibble). Exactly one of count_u8 /
 * count_u16 (entries per row) is non-NULL.
 */
typedef struct {
    const int8_t *values;  /* one per entry, row after row */
    const uint8_t *deltas;
    const uint8_t *count_u8;
    const uint16_t *count_u16;
} nn_delta4_s8;

/*
 * One bit per input: rows as nn_delta4_s8's, each row_bits long (FULLY_
 * CONNECTED: input_depth; CONV_2D: the ((KW - 1) * dilation_w + 1) * C_IN
 * bytes one kernel row spans) and padded with zeros to whole 32-bit words;
 * a word's most significant bit is its first input. values holds the
 * nonzeros in the same order.
 */
typedef struct {
    const int8_t *values;
    const uint32_t *mask;
} nn_bitmask_s8;

/*
 * Blocks of 4 consecutive inputs, in CSR form over blocks: values holds 4
 * per block, index[b] where block b's first input sits (as nn_csr_s8's
 * index), row_start counts blocks. The compiler keeps every block inside
 * the inputs a row reads; a row shorter than 4 inputs has blocks at 0.
 */
typedef nn_csr_s8 nn_block4_s8;

/*
 * N:M weights: at most n nonzeros in every group of m = 4 consecutive
 * inputs (input channels), n = 1 or 2 (harness/compiler/encode_nm.py).
 * Rows are cut into units holding 2 stored weights and a 4-bit slot
 * naming the 2 inputs they multiply: n = 2, a unit is one group and the
 * slot one of its 6 pairs of positions (0,1) (0,2) (0,3) (1,2) (1,3)
 * (2,3); n = 1, a unit is two groups (8 inputs) and the slot p + 4q, the
 * kept position p of the first and q of the second. A row has an even
 * number of units (ceil(inputs / unit inputs), rounded up; past the last
 * input, weights are 0); units u and u + 1 store values a_u, a_u+1, b_u,
 * b_u+1 in one word (b multiplies the pair's second input) and their
 * slots in one byte, u in the low nibble.
 */
typedef struct {
    const int8_t *values;
    const uint8_t *slots;
    int32_t n, m;
} nn_nm_s8;

/* ---- FULLY_CONNECTED ------------------------------------------------------
 * input [batches, input_depth], weights [output_depth, input_depth],
 * bias [output_depth], output [batches, output_depth].
 */
typedef struct {
    int32_t batches, input_depth, output_depth;
    nn_requant requant;
    /*
     * NULL, or per output channel 3 words the compiler computed from requant
     * (requantize.h, nn_requantize_fold; quant.fold_requantization): the
     * multiplier; the start's high word, with the output offset folded
     * where it folds; e - 1 (shift = -e) in bits 0-7 and, in bits 8-31,
     * the offset to add after the shift where it does not (0 elsewhere).
     * offset_after_shift is 1 when some channel's offset does not fold.
     * The compiler gives them to the dense kernel for up to 64 inputs
     * (lower.py, FOLDED_MAX_DEPTH) when every channel has shift <= -2 (or
     * multiplier 0); the kernel then does no per-channel work at run time.
     * Other kernels ignore them.
     */
    const int32_t *folded;
    int32_t offset_after_shift;
} nn_fully_connected_params;

nn_status nn_fully_connected_s8(const nn_fully_connected_params *params, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, int8_t *output);

/* weights: output_depth rows; index = input column. */
nn_status nn_fully_connected_csr_s8(const nn_fully_connected_params *params, const int8_t *input,
                                    const nn_csr_s8 *weights, const int32_t *bias, int8_t *output);
nn_status nn_fully_connected_delta4_s8(const nn_fully_connected_params *params, const int8_t *input,
                                       const nn_delta4_s8 *weights, const int32_t *bias, int8_t *output);
nn_status nn_fully_connected_bitmask_s8(const nn_fully_connected_params *params, const int8_t *input,
                                        const nn_bitmask_s8 *weights, const int32_t *bias, int8_t *output);
nn_status nn_fully_connected_block4_s8(const nn_fully_connected_params *params, const int8_t *input,
                                       const nn_block4_s8 *weights, const int32_t *bias, int8_t *output);

/*
 * input_depth a multiple of 4. On DSP cores the kernel first writes, per
 * batch row, every unit's input pairs (one packed halfword pair per slot)
 * into `buffer` (4-byte aligned, nn_fully_connected_nm_s8_get_buffer_size()
 * bytes); the portable loops ignore it.
 */
int32_t nn_fully_connected_nm_s8_get_buffer_size(const nn_fully_connected_params *params,
                                                 const nn_nm_s8 *weights);
nn_status nn_fully_connected_nm_s8(const nn_fully_connected_params *params, const int8_t *input,
                                   const nn_nm_s8 *weights, const int32_t *bias, int8_t *output,
                                   int8_t *buffer);

/* ---- CONV_2D ---------------------------------------------------------------
 * input [1, H, W, C_IN], weights [C_OUT, KH, KW, C_IN], bias [C_OUT],
 * output [1, OH, OW, C_OUT].
 */
typedef struct {
    nn_window window;
    nn_requant requant;
} nn_conv2d_params;

/*
 * On cores with the DSP extension, windows of any size (S = KH * KW * C_IN
 * values) are widened two output pixels at a time into int16 columns:
 * 16 * ceil(S / 4) bytes, plus 4 * ceil(S / 4) when C_IN is not a multiple
 * of 4 (the window gathered bytewise). Windows of up to 256 values keep
 * them on the stack (about 1.3 KiB; the buffer size is 0 and `buffer` may be
 * NULL); larger ones need `buffer` (4-byte aligned),
 * nn_conv2d_s8_get_buffer_size() bytes, or take the portable loops when it
 * is NULL. The size does not depend on the core, so the compiler plans it
 * for every target; the portable loops (no DSP extension) ignore the buffer
 * (docs/kernels.md, "Dense kernels"), and so does the reference kernel, whose
 * nn_conv2d_s8_get_buffer_size() is 0.
 */
int32_t nn_conv2d_s8_get_buffer_size(const nn_conv2d_params *params);
nn_status nn_conv2d_s8(const nn_conv2d_params *params, const int8_t *input, const int8_t *weights,
                       const int32_t *bias, int8_t *output, int8_t *buffer);

/*
 * The sparse kernels read each window at offsets stored with its weights:
 *   index[k] = ky * row_step + kx * dilation_w * C_IN + c_in
 * (csr, block4; delta4 and bitmask rows are kernel rows, their positions
 * kx * dilation_w * C_IN + c_in). When every window lies inside the image
 * they read the input in place and row_step = dilation_h * W * C_IN; the
 * buffer size is then 0. Otherwise, for each output row, they first copy
 * the kernel_h input rows that row reads into a band
 * nn_conv2d_csr_s8_padded_size() wide, padded with the input zero point (as
 * padding reads, see the conventions), so their inner loops have no bounds
 * checks; then row_step = padded_w * C_IN. Every sparse format shares this
 * layout, the buffer size and these two functions.
 *
 * They compute tiles of 4 consecutive output pixels (NN_CONV_TILE) at once,
 * so each weight and its index are decoded once per tile: in raster order
 * across row ends when they read in place (a [T, 1, C] map fills its
 * tiles), within one output row when they read a band. They write a
 * tile's pixels channel by channel: once they write any byte of output
 * pixel q + 4 they read no input that only windows 0..q cover (the
 * compiler moves overlapping outputs 3 pixels further away for them).
 */
/*
 * csr with windows of up to NN_CSR_TILE_WINDOW_MAX values (KH * KW * C_IN)
 * stores each nonzero's position in the window instead of its offset:
 *   index[k] = (ky * KW + kx) * C_IN + c_in
 * (index_u8 when every position fits a byte, else index_u16: 3x3x32
 * windows) and gathers the windows of 8 output pixels into a 4.5 KiB stack buffer
 * before computing them (conv2d_csr_s8.c); larger windows store the
 * offsets above. harness/compiler/encode.py keeps the same limit.
 */
#define NN_CSR_TILE_WINDOW_MAX 288
nn_hwc nn_conv2d_csr_s8_padded_size(const nn_window *window);
int32_t nn_conv2d_csr_s8_get_buffer_size(const nn_conv2d_params *params);
nn_status nn_conv2d_csr_s8(const nn_conv2d_params *params, const int8_t *input,
                           const nn_csr_s8 *weights, const int32_t *bias, int8_t *output,
                           int8_t *buffer);
nn_status nn_conv2d_delta4_s8(const nn_conv2d_params *params, const int8_t *input,
                              const nn_delta4_s8 *weights, const int32_t *bias, int8_t *output,
                              int8_t *buffer);
nn_status nn_conv2d_bitmask_s8(const nn_conv2d_params *params, const int8_t *input,
                               const nn_bitmask_s8 *weights, const int32_t *bias, int8_t *output,
                               int8_t *buffer);
nn_status nn_conv2d_block4_s8(const nn_conv2d_params *params, const int8_t *input,
                              const nn_block4_s8 *weights, const int32_t *bias, int8_t *output,
                              int8_t *buffer);

/*
 * N:M weights over the window's (ky, kx, c_in) order; every group of 4
 * inputs lies inside one kernel row (4 | KW * C_IN when dilation_w is 1
 * or KW is 1, else 4 | C_IN). Windows as the sparse layout above, in tiles
 * of NN_CONV_TILE pixels. `buffer` (never NULL, 4-byte aligned,
 * nn_conv2d_nm_s8_get_buffer_size() bytes) holds the band (when windows
 * pad), the tile's slot table (every unit's input pairs of the 4 windows;
 * used on DSP cores) and where each group of a window starts.
 */
int32_t nn_conv2d_nm_s8_get_buffer_size(const nn_conv2d_params *params, const nn_nm_s8 *weights);
nn_status nn_conv2d_nm_s8(const nn_conv2d_params *params, const int8_t *input, const nn_nm_s8 *weights,
                          const int32_t *bias, int8_t *output, int8_t *buffer);

/* ---- DEPTHWISE_CONV_2D -----------------------------------------------------
 * input [1, H, W, C_IN], weights [1, KH, KW, C_OUT] (the .tflite's), bias
 * [C_OUT], output [1, OH, OW, C_OUT] with C_OUT = C_IN * depth_multiplier;
 * output channel c_in * depth_multiplier + m reads input channel c_in only.
 */
typedef struct {
    nn_window window;
    int32_t depth_multiplier;
    nn_requant requant;
} nn_depthwise_conv2d_params;

/*
 * Dense weights in groups of 4 output channels, widened to int16 and paired
 * the way SXTB16 widens 4 input bytes: for group g and tap t = ky * KW + kx,
 *   weights[2 * (g * KH * KW + t) + j] = w(t, 4g + j) in bits 0-15
 *                                      | w(t, 4g + j + 2) in bits 16-31,
 * j = 0, 1, channels past C_OUT zero (harness/compiler/encode_depthwise.py).
 * Both depthwise kernels requantize through a per-channel table they build
 * on the stack at each call, 12 bytes per channel for up to 256 channels
 * (3 KiB; depthwise_util.h), so their stack use is about 3.3 KiB.
 */
nn_status nn_depthwise_conv2d_s8(const nn_depthwise_conv2d_params *params, const int8_t *input,
                                 const int32_t *weights, const int32_t *bias, int8_t *output);

/*
 * CSR weights, one row per output channel: index_u8[k] = ky * KW + kx, the
 * nonzero's tap (index_u16 is NULL). The buffer (size below: C_IN, or 0
 * when every window lies inside the image) holds the zero points that taps
 * in the padding read. Windows of up to NN_DEPTHWISE_CSR_MAX_TAPS taps.
 */
#define NN_DEPTHWISE_CSR_MAX_TAPS 64
int32_t nn_depthwise_conv2d_csr_s8_get_buffer_size(const nn_depthwise_conv2d_params *params);
nn_status nn_depthwise_conv2d_csr_s8(const nn_depthwise_conv2d_params *params,
                                     const int8_t *input, const nn_csr_s8 *weights,
                                     const int32_t *bias, int8_t *output, int8_t *buffer);

/* ---- MAX_POOL_2D, AVERAGE_POOL_2D -----------------------------------------
 * input [1, H, W, C], output [1, OH, OW, C], same quantization on both.
 * Padding is ignored: the average divides by the number of pixels inside
 * the image, rounding half away from zero. Dilation must be 1.
 */
typedef struct {
    nn_window window;
    int32_t act_min, act_max;
} nn_pool2d_params;

nn_status nn_max_pool2d_s8(const nn_pool2d_params *params, const int8_t *input, int8_t *output);
nn_status nn_avg_pool2d_s8(const nn_pool2d_params *params, const int8_t *input, int8_t *output);

/* ---- SOFTMAX ---------------------------------------------------------------
 * input and output [rows, depth], depth < 512 (TFLM's limit too); output
 * scale 1/256, zero point -128.
 * input_multiplier / input_left_shift scale beta * input_scale into the
 * Q5.26 argument of exp(); differences below diff_min give probability 0.
 */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} nn_softmax_params;

nn_status nn_softmax_s8(const nn_softmax_params *params, const int8_t *input, int8_t *output);

/* ---- ADD, MUL --------------------------------------------------------------
 * Elementwise, with broadcasting: the output walks nn_broadcast.dims in
 * row-major order and reads each input at its own strides, 0 along a
 * dimension where that input has size 1.
 */
typedef struct {
    int32_t dims[4];          /* output shape, padded in front with 1s */
    int32_t input1_stride[4]; /* input1 elements per step along each output dimension */
    int32_t input2_stride[4];
} nn_broadcast;

/*
 * Both inputs are rescaled to a common scale with left_shift bits of
 * headroom, added, and the sum rescaled to the output; every multiplier is
 * Q31 with a shift <= 0.
 */
typedef struct {
    nn_broadcast shape;
    int32_t input1_offset, input2_offset; /* minus the input zero points */
    int32_t output_offset;                /* the output zero point */
    int32_t left_shift;                   /* 20, as TFLM */
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} nn_add_params;

nn_status nn_add_s8(const nn_add_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output);

/* (input1 + offset1) * (input2 + offset2) rescaled by input1_scale * input2_scale / output_scale. */
typedef struct {
    nn_broadcast shape;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} nn_mul_params;

nn_status nn_mul_s8(const nn_mul_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output);

/* ---- PAD, PADV2 ------------------------------------------------------------
 * Up to 4-D, shapes padded in front with 1s; input and output share their
 * quantization.
 */
typedef struct {
    int32_t input_dims[4];
    int32_t output_dims[4];
    int32_t before[4];  /* padding before each dimension; the rest goes after */
    int32_t pad_value;  /* the output zero point, or PADV2's constant */
} nn_pad_params;

nn_status nn_pad_s8(const nn_pad_params *params, const int8_t *input, int8_t *output);

/* ---- CONCATENATION ---------------------------------------------------------
 * Inputs joined along one axis, bytes copied as they are (TFLM does not
 * requantize; the converter gives every input the output's quantization).
 * Each input is outer chunks of chunk[i] bytes: the product of its
 * dimensions from the axis on.
 */
typedef struct {
    int32_t outer; /* product of the dimensions before the axis */
    int32_t count; /* number of inputs */
    const int32_t *chunk;
} nn_concatenation_params;

nn_status nn_concatenation_s8(const nn_concatenation_params *params, const int8_t *const *inputs,
                              int8_t *output);

/* ---- MEAN ------------------------------------------------------------------
 * Over adjacent axes: input viewed as [outer, reduced, inner], output
 * [outer, inner]: out = requantize(sum of (input - input zero point))
 * + output zero point, the multiplier being input_scale / output_scale
 * divided by the reduced count.
 */
typedef struct {
    int32_t outer, reduced, inner;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift; /* Q31 (may be below 2^30) and a power of two */
} nn_mean_params;

nn_status nn_mean_s8(const nn_mean_params *params, const int8_t *input, int8_t *output);

/* ---- LOGISTIC --------------------------------------------------------------
 * Output scale 1/256, zero point -128. The input, minus its zero point, is
 * rescaled to a Q4.27 argument; beyond input_range_radius the output
 * saturates.
 */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier; /* Q31 */
    int32_t input_left_shift;
} nn_logistic_params;

nn_status nn_logistic_s8(const nn_logistic_params *params, const int8_t *input, int8_t *output);

#endif /* NN_KERNELS_H */
