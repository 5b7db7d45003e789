/*
 * fatmcap.h - capture device ABI of MIRA's Fore-style ATM capture driver.
 *
 * No historical Fore driver had a capture device node; this header defines
 * ours, after the PCA-200E firmware's view of the receive path: every
 * record carries the 4-byte cell header without HEC, and statistics come
 * as big-endian 64-bit counter blocks. Device nodes are /dev/fatmN.
 *
 * Every ioctl is _IOR/_IOW/_IOWR('F', n, struct) or _IO('F', n) with a
 * fixed-size, pointer-free, explicitly padded struct, so the ABI is the
 * same for 32- and 64-bit callers and works through FUSE's restricted
 * ioctls. The Go mirror of this file is package drivers/fore/fatm; a cgo
 * test checks that sizes and offsets agree.
 *
 * Data path, preferred: mmap(fd, 0, info.ring_size) maps the receive ring:
 * a struct fatm_ring header, then a data area of records. The device
 * writes records at head and advances head (release); the reader consumes
 * at tail and advances tail (release). head and tail are byte counts that
 * only grow; a record starts at (count % data_size) from the data area and
 * never wraps: when fewer than sizeof(struct fatm_rec) bytes remain before
 * the end, or a record has FATM_REC_WRAP, the reader skips to the start.
 * FATMIOC_WAIT blocks until head != tail (poll() POLLIN where the device
 * implements poll).
 *
 * Fallback: read() returns one record (struct fatm_rec then its data) per
 * call; EAGAIN when none is ready on an O_NONBLOCK descriptor; 0 when the
 * device's cell source has ended (simulated devices only).
 */
#ifndef MIRA_FATMCAP_H
#define MIRA_FATMCAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define FATM_ABI_VERSION 1

/* FATMIOC_GETINFO */
struct fatm_info {
	__u32 version;      /* FATM_ABI_VERSION */
	__u8  vpi_bits;     /* 8 (UNI) or 12 (NNI) */
	__u8  vci_bits;     /* up to 16 */
	__u8  nni;          /* 1: cell headers are NNI */
	__u8  pad0;
	__u32 ring_size;    /* bytes to mmap; 0: no ring, use read() */
	__u32 max_filters;  /* VPI/VCI filter slots */
	__u32 max_snaplen;  /* largest snaplen in AAL5 mode */
	__u32 pad1;
};

/* FATMIOC_SETMODE */
#define FATM_MODE_CELLS      1 /* every cell: 48-byte payload records */
#define FATM_MODE_FIRST_CELL 2 /* first cell of each AAL5 PDU only */
#define FATM_MODE_AAL5       3 /* reassembled AAL5 SDUs, CRC checked */
#define FATM_MODE_PROMISC    0x1 /* flags: ignore the filters */
struct fatm_mode {
	__u32 mode;
	__u32 flags;
	__u32 snaplen;      /* 0: whole frames */
	__u32 pad0;
};

/* FATMIOC_ADDFILTER, FATMIOC_DELFILTER: a cell is captured when
 * (vpi & vpi_mask) == (filter.vpi & vpi_mask) and likewise for the VCI,
 * for any filter (unless promiscuous). */
struct fatm_filter {
	__u16 vpi;
	__u16 vci;
	__u16 vpi_mask;
	__u16 vci_mask;
};

/* FATMIOC_GETSTATS: big-endian counters, like the firmware's blocks. */
struct fatm_stats {
	__be64 cells;             /* cells received (all kinds) */
	__be64 hec_corrected;     /* single-bit header errors corrected */
	__be64 hec_uncorrected;   /* cells discarded for header errors */
	__be64 idle_cells;        /* idle and unassigned cells */
	__be64 oam_cells;         /* F4 and F5 OAM cells */
	__be64 vpi_vci_drops;     /* cells not selected by the filters */
	__be64 aal5_pdus;         /* AAL5 PDUs reassembled correctly */
	__be64 aal5_crc_errors;   /* AAL5 PDUs with a bad CRC-32 */
	__be64 aal5_drops;        /* AAL5 PDUs lost: length, oversize, timeout */
	__be64 records;           /* records delivered to the reader */
	__be64 ring_drops;        /* records lost because the ring was full */
	__be64 truncated;         /* records cut by the snaplen */
};

/* FATMIOC_WAIT */
#define FATM_WAIT_READY 0 /* head != tail or a record is readable */
#define FATM_WAIT_TIMEOUT 1
#define FATM_WAIT_EOF 2   /* the cell source ended (simulated devices) */
struct fatm_wait {
	__u32 timeout_ms;
	__u32 status;       /* out: FATM_WAIT_* */
};

/* Ring header at offset 0 of the mapping (64 bytes). */
struct fatm_ring {
	__u64 head;         /* written by the device */
	__u64 tail;         /* written by the reader */
	__u32 data_off;     /* offset of the data area in the mapping */
	__u32 data_size;    /* bytes in the data area, a multiple of 8 */
	__u64 drops;        /* records the device could not store */
	__u8  pad[32];
};

/* Record header (24 bytes, host byte order), then caplen data bytes,
 * padded to a multiple of 8. */
#define FATM_DIR_UNKNOWN 0
#define FATM_DIR_A       1 /* splitter side A -> B */
#define FATM_DIR_B       2 /* splitter side B -> A */
#define FATM_REC_CRC_OK        0x01 /* AAL5 CRC-32 checked and good */
#define FATM_REC_TRUNC         0x02 /* caplen < wirelen (snaplen) */
#define FATM_REC_HEC_CORRECTED 0x04 /* a header bit was corrected */
#define FATM_REC_FIRST_CELL    0x08 /* only the PDU's first cell */
#define FATM_REC_WRAP          0x80 /* ring marker: continue at the start */
#define FATM_AAL_RAW 0
#define FATM_AAL_5   5
struct fatm_rec {
	__u64 ts_ns;        /* capture time, ns since the Unix epoch */
	__u32 cellhdr;      /* header word without HEC (of the last cell) */
	__u16 caplen;       /* data bytes that follow */
	__u16 wirelen;      /* SDU or payload length on the line */
	__u8  dir;          /* FATM_DIR_* */
	__u8  flags;        /* FATM_REC_* */
	__u8  aal;          /* FATM_AAL_* */
	__u8  pad0;
	__u32 reclen;       /* header + data + padding */
};

#define FATMIOC_GETINFO   _IOR('F', 1, struct fatm_info)
#define FATMIOC_SETMODE   _IOW('F', 2, struct fatm_mode)
#define FATMIOC_ADDFILTER _IOW('F', 3, struct fatm_filter)
#define FATMIOC_DELFILTER _IOW('F', 4, struct fatm_filter)
#define FATMIOC_CLRFILTER _IO('F', 5)
#define FATMIOC_GETSTATS  _IOR('F', 6, struct fatm_stats)
#define FATMIOC_WAIT      _IOWR('F', 7, struct fatm_wait)

#endif /* MIRA_FATMCAP_H */
