// CB indices, semaphores and the work layout shared by the fused SwiGLU reader, compute and writer kernels.
//
// The output [M/32, N/32] tiles are cut into blocks of mb x nb tiles (edge blocks are smaller): block (i, j) is
// block row i, block column j. A block is computed K block by K block: the reader brings x[block rows, K block]
// (mb x kb tiles, index r * kb + i) and W1 / W3[K block, block columns] (kb x nb tiles, index i * nb + j) once, and
// the compute kernel reuses them from L1 for every output subblock of the block (one row of up to w tiles: gate in
// DST[0, w), up in DST[w, 2w)). Between K blocks the fp32 partial sums wait in cb_part_gate / cb_part_up (reloaded
// into DST exactly: unpack-to-dest fp32).
//
// Cores form groups of group_size (a column segment of the grid, program.py) that share block columns, i.e. the
// same W1 / W3 tiles. Group (column c, part p) of `columns` x `parts` groups takes block columns c, c + columns,
// ...; for each, it goes through its part of the block rows in rounds: in round r member s computes block row
// (r * parts + p) * group_size + s (parts > 1 when there are fewer block columns than groups, so that every core
// has work). The group's sender (member 0) reads each W K block from DRAM once and multicasts it into the same CB
// pages of the other members (semaphore handshake in reader.cpp), so a W tile is read once per group round
// instead of once per block row. A member whose block row of a round lies past the last one still receives the
// round's W blocks (and drops them): the members' CB write pointers stay in step, which the multicast needs (one
// destination address for all). A round without any block (the sender's row past the last) is skipped by all.
#pragma once
#include <stdint.h>

constexpr uint32_t cb_x = 0;    // activations: one K block of the block's rows (mb x kb)
constexpr uint32_t cb_w1 = 1;   // gate weights: K block x block columns (kb x nb)
constexpr uint32_t cb_w3 = 2;   // up weights: K block x block columns (kb x nb)
constexpr uint32_t cb_out = 16;
constexpr uint32_t cb_part_gate = 24;  // fp32 partial sums of x W1 between K blocks
constexpr uint32_t cb_part_up = 25;    // fp32 partial sums of x W3 between K blocks

constexpr uint32_t sem_w_ready = 0;  // on a sender: members ready for the next W K block
constexpr uint32_t sem_w_valid = 1;  // on a member: the W K block has landed (the sender's copy: multicast source)

struct SwigluBlock {
    uint32_t row0, col0, rows, cols;  // first output tile row / column, and the block's size in tiles
};

// Block (i, j) of an mt x nt tile grid cut into mb x nb blocks.
inline SwigluBlock swiglu_block(uint32_t i, uint32_t j, uint32_t mt, uint32_t nt, uint32_t mb, uint32_t nb) {
    SwigluBlock s;
    s.row0 = i * mb;
    s.col0 = j * nb;
    s.rows = mt - s.row0 < mb ? mt - s.row0 : mb;
    s.cols = nt - s.col0 < nb ? nt - s.col0 : nb;
    return s;
}

// This core's place in the layout: runtime args 0..7 of all three kernels.
struct SwigluLayout {
    uint32_t blocks_m, blocks_n, column, columns, part, parts, member, group_size;
    uint32_t rounds() const { return (blocks_m + group_size * parts - 1) / (group_size * parts); }
    uint32_t block_row(uint32_t round) const { return (round * parts + part) * group_size + member; }
    // A round whose first block row lies past the last one has no block for any member: the group skips it.
    bool round_used(uint32_t round) const { return (round * parts + part) * group_size < blocks_m; }
};

inline SwigluLayout swiglu_layout() {
    return {get_arg_val<uint32_t>(0), get_arg_val<uint32_t>(1), get_arg_val<uint32_t>(2), get_arg_val<uint32_t>(3),
            get_arg_val<uint32_t>(4), get_arg_val<uint32_t>(5), get_arg_val<uint32_t>(6), get_arg_val<uint32_t>(7)};
}
