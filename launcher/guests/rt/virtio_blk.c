/*
 * The virtio block driver: one synchronous request at a time, outhdr + data + status.
 *
 * The launcher checks a request's shape (spec 8): at least one device-readable and one
 * device-writable descriptor, the first exactly the 24-byte outhdr, the last the status byte.
 * A read puts the data buffer on the writable side; a write on the readable side.
 */
#include "virtio_blk.h"

struct blk_outhdr {
	uint32_t type; /* VIRTIO_BLK_T_IN / _OUT */
	uint32_t ioprio;
	uint64_t sector;
	uint64_t id;
};

_Static_assert(sizeof(struct blk_outhdr) == VIRTIO_BLK_OUTHDR_BYTES, "virtio_blk_outhdr is 24 bytes");

struct blk_request {
	struct blk_outhdr hdr;
	volatile uint8_t status;
	struct vblk *blk;
};

bool vblk_init(struct vblk *blk, struct virtio_device *dev)
{
	blk->dev = dev;
	blk->capacity = 0;
	blk->seg_max = 0;
	blk->reads = blk->writes = blk->errors = 0;
	virtio_add_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	/* We issue no barriers, so we ack no features; capacity is mandatory. */
	virtio_features(dev, VIRTIO_BLK_F_FEATURES, 0);
	if (!virtio_config_read(dev, VIRTIO_BLK_F_CAPACITY, &blk->capacity, sizeof(blk->capacity)) ||
	    !virtqueue_find(dev, &blk->vq, true)) {
		virtio_add_status(dev, VIRTIO_CONFIG_S_FAILED);
		return false;
	}
	virtio_config_read(dev, VIRTIO_BLK_F_SEG_MAX, &blk->seg_max, sizeof(blk->seg_max));
	virtio_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	return true;
}

static bool request_used(void *arg)
{
	return virtqueue_has_used(&((struct blk_request *)arg)->blk->vq);
}

int vblk_rw(struct vblk *blk, bool write, uint64_t sector, void *buf, uint32_t count,
	    virtio_wait_fn wait)
{
	static uint64_t next_id;
	struct blk_request req = {
		.hdr = {write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0, sector, ++next_id},
		.status = 0xFF,
		.blk = blk,
	};
	struct vbuf chain[3] = {
		{&req.hdr, sizeof(req.hdr)},
		{buf, count * SECTOR_SIZE},
		{(const void *)&req.status, 1},
	};
	uint32_t len;

	if (count == 0 || sector >= blk->capacity || count > blk->capacity - sector)
		return -1;
	/* A write's data is read by the device (out), a read's is written by it (in). */
	if (!virtqueue_add(&blk->vq, chain, write ? 2 : 1, write ? 1 : 2, &req))
		return -1;
	virtqueue_kick(&blk->vq);
	while (!virtqueue_has_used(&blk->vq)) {
		if (wait)
			wait(request_used, &req);
		else
			hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	}
	if (virtqueue_get(&blk->vq, &len) != &req)
		return -1;
	if (write)
		blk->writes++;
	else
		blk->reads++;
	if (req.status != VIRTIO_BLK_S_OK)
		blk->errors++;
	return req.status;
}
