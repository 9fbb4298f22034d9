/*
 * The device page and the rings (spec 9), as 2.6.24's lguest_device.c and virtio_ring.c had them.
 *
 * The launcher wrote a list of device descriptors on the page at guest-physical `mem` (just above
 * RAM): {u8 type, u8 config_len, u8 status, config[config_len]}, ended by type 0.  Each config is
 * a run of TLVs; a device's virtqueues are VIRTQUEUE fields {u16 num, u16 irq, u32 pfn}, taken
 * in order because reading a field ORs 0x80 into its type (so the launcher can see what the
 * driver looked at, and the next lookup finds the next field of that type).
 *
 * A ring is `num` descriptors, then the avail ring, then (on the next page) the used ring.  The
 * guest owns the descriptors and avail; the launcher owns used.  This guest runs on one CPU and
 * the launcher only touches the ring while the guest is stopped in the Host (a NOTIFY, a break, a
 * halt), so compiler barriers are the only ordering needed.
 */
#include "virtio.h"

static struct virtio_device devices[VIRTIO_MAX_DEVICES];
static int device_count;

/* --- The device page ------------------------------------------------------------------------- */

static virtio_map_fn map_pages;

int virtio_scan(uint32_t phys, virtio_map_fn map)
{
	volatile uint8_t *page = map(phys, 1);
	unsigned off = 0;

	map_pages = map;
	device_count = 0;
	if (!page)
		return 0;
	/* Each descriptor is 3 bytes of header and its config; a zero type ends the list. */
	while (off + DEVICE_DESC_HEADER <= PAGE_SIZE && page[off] != 0 &&
	       device_count < VIRTIO_MAX_DEVICES) {
		devices[device_count].desc = page + off;
		devices[device_count].type = page[off];
		device_count++;
		off += DEVICE_DESC_HEADER + page[off + 1];
	}
	return device_count;
}

struct virtio_device *virtio_find(uint8_t type, int nth)
{
	for (int i = 0; i < device_count; i++)
		if (devices[i].type == type && nth-- == 0)
			return &devices[i];
	return 0;
}

int virtio_devices(struct virtio_device **list)
{
	*list = devices;
	return device_count;
}

void virtio_add_status(struct virtio_device *dev, uint8_t bits)
{
	dev->desc[2] |= bits;
}

uint8_t virtio_status(const struct virtio_device *dev)
{
	return dev->desc[2];
}

volatile uint8_t *virtio_config_find(struct virtio_device *dev, uint8_t type, uint8_t *len)
{
	volatile uint8_t *config = dev->desc + DEVICE_DESC_HEADER;
	unsigned config_len = dev->desc[1];

	for (unsigned i = 0; i + 2 <= config_len; i += 2 + config[i + 1]) {
		if (config[i] == type) {
			config[i] |= CONFIG_TLV_CONSUMED;
			*len = config[i + 1];
			return config + i + 2;
		}
	}
	return 0;
}

bool virtio_config_read(struct virtio_device *dev, uint8_t type, void *out, uint8_t len)
{
	uint8_t found_len;
	volatile uint8_t *data = virtio_config_find(dev, type, &found_len);
	uint8_t *dst = out;

	if (!data || found_len != len)
		return false;
	for (unsigned i = 0; i < len; i++)
		dst[i] = data[i];
	return true;
}

uint32_t virtio_features(struct virtio_device *dev, uint8_t type, uint32_t wanted)
{
	uint8_t len;
	volatile uint8_t *field = virtio_config_find(dev, type, &len);
	uint32_t acked = 0;

	if (!field)
		return 0;
	/* Offered bits fill the first half of the field; bit b is acked by setting bit b + len*4. */
	for (unsigned bit = 0; bit < 32 && bit < len * 4u; bit++) {
		if (!(wanted & (1u << bit)) || !(field[bit / 8] & (1u << (bit % 8))))
			continue;
		unsigned ack = bit + len * 4u;
		field[ack / 8] |= (uint8_t)(1u << (ack % 8));
		acked |= 1u << bit;
	}
	return acked;
}

/* --- Rings ----------------------------------------------------------------------------------- */

/* Descriptors and avail fill the first pages; used starts at the next VRING_ALIGN boundary. */
static uint32_t vring_used_offset(uint32_t num)
{
	uint32_t before_used = VRING_DESC_BYTES * num + 2 * (2 + num);
	return (before_used + VRING_ALIGN - 1) & ~(uint32_t)(VRING_ALIGN - 1);
}

static uint32_t vring_bytes(uint32_t num)
{
	return vring_used_offset(num) + 4 + 8 * num;
}

bool virtqueue_find(struct virtio_device *dev, struct virtqueue *vq, bool interrupts)
{
	struct {
		uint16_t num, irq;
		uint32_t pfn;
	} config;
	uint8_t *base;

	if (!virtio_config_read(dev, VIRTIO_CONFIG_F_VIRTQUEUE, &config, sizeof(config)))
		return false;
	/* A ring index wraps with `% num` below: num must be a power of two we can track. */
	if (config.num == 0 || (config.num & (config.num - 1)) || config.num > VIRTQUEUE_MAX)
		return false;
	uint32_t bytes = vring_bytes(config.num);
	base = map_pages(config.pfn << PAGE_SHIFT, (bytes + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!base)
		return false;

	vq->num = config.num;
	vq->irq = config.irq;
	vq->pfn = config.pfn;
	vq->desc = (volatile struct vring_desc *)base;
	vq->avail = (volatile struct vring_avail *)(base + VRING_DESC_BYTES * config.num);
	vq->used = (volatile struct vring_used *)(base + vring_used_offset(config.num));
	for (unsigned i = 0; i + 1 < config.num; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->num_free = config.num;
	vq->added = 0;
	vq->last_used = vq->used->idx;
	vq->kicks = vq->completions = 0;
	vq->avail->flags = interrupts ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	return true;
}

bool virtqueue_add(struct virtqueue *vq, const struct vbuf *bufs, unsigned out, unsigned in,
		   void *cookie)
{
	unsigned total = out + in;
	uint16_t head = vq->free_head, i = head;

	if (total == 0 || total > vq->num_free)
		return false;
	for (unsigned n = 0; n < total; n++) {
		vq->desc[i].addr = __pa(bufs[n].addr); /* buffers live in linearly mapped RAM */
		vq->desc[i].len = bufs[n].len;
		vq->desc[i].flags = (uint16_t)((n + 1 < total ? VRING_DESC_F_NEXT : 0) |
					       (n >= out ? VRING_DESC_F_WRITE : 0));
		i = vq->desc[i].next;
	}
	vq->free_head = i;
	vq->num_free = (uint16_t)(vq->num_free - total);
	vq->cookie[head] = cookie;
	/* The chain goes in the avail ring now; the index moves (and the launcher sees it) at kick. */
	vq->avail->ring[(uint16_t)(vq->avail->idx + vq->added) % vq->num] = head;
	vq->added++;
	return true;
}

void virtqueue_kick(struct virtqueue *vq)
{
	barrier();
	vq->avail->idx = (uint16_t)(vq->avail->idx + vq->added);
	vq->added = 0;
	barrier();
	if (!(vq->used->flags & VRING_USED_F_NO_NOTIFY)) {
		vq->kicks++;
		hcall(LHCALL_NOTIFY, vq->pfn << PAGE_SHIFT, 0, 0);
	}
}

bool virtqueue_has_used(const struct virtqueue *vq)
{
	return vq->last_used != vq->used->idx;
}

void *virtqueue_get(struct virtqueue *vq, uint32_t *len)
{
	if (!virtqueue_has_used(vq))
		return 0;
	barrier();
	volatile struct vring_used_elem *elem = &vq->used->ring[vq->last_used % vq->num];
	uint32_t head = elem->id;
	*len = elem->len;
	vq->last_used++;
	if (head >= vq->num)
		return 0;

	/* Give the chain's descriptors back to the free list. */
	uint16_t i = (uint16_t)head;
	unsigned freed = 1;
	while (vq->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vq->desc[i].next;
		freed++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)head;
	vq->num_free = (uint16_t)(vq->num_free + freed);
	vq->completions++;

	void *cookie = vq->cookie[head];
	vq->cookie[head] = 0;
	return cookie;
}
