/*
 * virtio as Linux 2.6.24 spoke it to lguest (spec 9): the guest's side of the device page and of
 * the rings.  The launcher describes its devices on one page just above guest RAM; the drivers
 * (virtio_console.c, virtio_blk.c, virtio_net.c) find their device there, read its config fields,
 * and then talk to the launcher through rings of descriptors, kicking it with NOTIFY.
 *
 * This is the 2.6.24 format, not the later one: no feature bytes or queue count in the device
 * descriptor; each virtqueue is a config field, and reading a field marks it consumed.
 *
 * The drivers know nothing of page tables: whoever calls virtio_scan() passes a function that
 * maps guest-physical pages above RAM (the device page, the rings) somewhere the guest can reach.
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "lguest.h"

/* Map `pages` guest-physical pages starting at `phys`; return their virtual address (or 0). */
typedef void *(*virtio_map_fn)(uint32_t phys, uint32_t pages);

/* --- The device page ------------------------------------------------------------------------- */

/* One device descriptor on the device page: u8 type, u8 config_len, u8 status, then config TLVs. */
struct virtio_device {
	volatile uint8_t *desc; /* in the device page */
	uint8_t type;           /* VIRTIO_ID_* */
};

#define VIRTIO_MAX_DEVICES 16

/* Map the device page at `phys` and record every descriptor on it; returns how many. */
int virtio_scan(uint32_t phys, virtio_map_fn map);
/* The `nth` (from 0) device of `type`, or 0. */
struct virtio_device *virtio_find(uint8_t type, int nth);
/* Every device seen by virtio_scan(), for listing. */
int virtio_devices(struct virtio_device **list);

/* OR status bits (VIRTIO_CONFIG_S_*) into the descriptor, as 2.6.24's lg_set_status did. */
void virtio_add_status(struct virtio_device *dev, uint8_t bits);
uint8_t virtio_status(const struct virtio_device *dev);

/*
 * Find the next unconsumed config field of `type`, mark it consumed (type |= 0x80) and return
 * a pointer to its data with its length in *len, or 0 when there is none left.
 */
volatile uint8_t *virtio_config_find(struct virtio_device *dev, uint8_t type, uint8_t *len);
/* Copy a field of exactly `len` bytes into `out`; false if absent or of another size. */
bool virtio_config_read(struct virtio_device *dev, uint8_t type, void *out, uint8_t len);
/*
 * Feature field `type` (split in halves: offered bits, then the guest's acks): ack every offered
 * bit in `wanted` and return the acked set (0 when the device has no such field).
 */
uint32_t virtio_features(struct virtio_device *dev, uint8_t type, uint32_t wanted);

/* --- Rings (the 2.6.24 layout: descriptors, avail, used on the next page) --------------------- */

struct vring_desc {
	uint64_t addr; /* guest-physical */
	uint32_t len;
	uint16_t flags; /* VRING_DESC_F_NEXT, VRING_DESC_F_WRITE */
	uint16_t next;
};

struct vring_avail {
	uint16_t flags; /* VRING_AVAIL_F_NO_INTERRUPT */
	uint16_t idx;
	uint16_t ring[];
};

struct vring_used_elem {
	uint32_t id; /* head of the chain */
	uint32_t len; /* bytes the device wrote into the chain */
};

struct vring_used {
	uint16_t flags; /* VRING_USED_F_NO_NOTIFY */
	uint16_t idx;
	struct vring_used_elem ring[];
};

#define VIRTQUEUE_MAX 256

struct virtqueue {
	uint16_t num; /* entries: a power of two */
	uint16_t irq; /* the launcher raises this one when it used a buffer (unless NO_INTERRUPT) */
	uint32_t pfn; /* the ring's first page: NOTIFY(pfn << 12) kicks the launcher */
	volatile struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
	uint16_t free_head; /* free descriptors are chained through `next` */
	uint16_t num_free;
	uint16_t added;     /* made available since the last kick */
	uint16_t last_used; /* the next used entry this side will look at */
	void *cookie[VIRTQUEUE_MAX]; /* per chain head: what the caller gave virtqueue_add() */
	uint32_t kicks, completions;
};

/* One piece of a buffer chain, by virtual address (the guest's own memory). */
struct vbuf {
	const void *addr;
	uint32_t len;
};

/*
 * Take the device's next VIRTQUEUE field, map its ring and make it ready.  With `interrupts`
 * false the avail ring says NO_INTERRUPT, as 2.6.24 did for queues without a callback.
 */
bool virtqueue_find(struct virtio_device *dev, struct virtqueue *vq, bool interrupts);
/*
 * Chain `out` device-readable buffers then `in` device-writable ones and make the chain
 * available (the launcher sees it after virtqueue_kick()).  False if the ring is too full.
 */
bool virtqueue_add(struct virtqueue *vq, const struct vbuf *bufs, unsigned out, unsigned in,
		   void *cookie);
/* Publish what was added and NOTIFY the launcher unless it said NO_NOTIFY. */
void virtqueue_kick(struct virtqueue *vq);
/* The next chain the launcher finished: its cookie, with the bytes written in *len; or 0. */
void *virtqueue_get(struct virtqueue *vq, uint32_t *len);
/* Whether virtqueue_get() has something to return. */
bool virtqueue_has_used(const struct virtqueue *vq);

/* What the drivers do while waiting for the launcher; they pass a condition to re-check. */
typedef void (*virtio_wait_fn)(bool (*done)(void *), void *arg);

#endif
