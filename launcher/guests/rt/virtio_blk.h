/*
 * The virtio block device (spec 9, device id 2): one queue; each request is a chain of the
 * 24-byte outhdr, the data, and a 1-byte status the launcher writes.
 *
 * Requests here are synchronous: vblk_rw() submits one, kicks the launcher, and calls the wait
 * function it was given until the request is used (the launcher raises the queue's irq then, so
 * a guest can sleep in HALT meanwhile).
 */
#ifndef VIRTIO_BLK_H
#define VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"

struct vblk {
	struct virtio_device *dev;
	struct virtqueue vq;
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t seg_max;  /* 0 when the device did not say */
	uint32_t reads, writes, errors;
};

/* Read the device's config (capacity, seg_max), take its queue, and say DRIVER_OK. */
bool vblk_init(struct vblk *blk, struct virtio_device *dev);
/*
 * Read (write = false) or write `count` sectors at `sector` from/into `buf`; `wait` is called
 * while the request is outstanding (0: poll).  Returns the device's status (VIRTIO_BLK_S_OK,
 * _IOERR, _UNSUPP) or -1 when the request is out of range or the ring refused it.
 */
int vblk_rw(struct vblk *blk, bool write, uint64_t sector, void *buf, uint32_t count,
	    virtio_wait_fn wait);

#endif
